"""A Triton Python-backend model that runs the ONNX file of its version directory with ONNX Runtime.

The Triton test repository (tests/support/triton-repository.ts) copies this file to
`<model>/<version>/model.py` beside a `model.onnx` taken from Inferneo's own model repository, so
that Triton serves the very weights the ONNX oracle and the Python workers use. Outputs are cast to
the types the model's config declares; inputs are passed on as they come (numpy views, no copies).
"""

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [
            (o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config["output"]
        ]

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = []
        for request in requests:
            feed = {
                name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                for name in self.inputs
            }
            results = self.session.run([name for name, _ in self.outputs], feed)
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(value, dtype=dtype))
                for (name, dtype), value in zip(self.outputs, results, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
