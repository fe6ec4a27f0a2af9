"""text_stats: upper-cases each TEXT element and counts its Unicode characters.

Written for Triton's Python backend and runs unchanged there and in the Inferneo worker. A request
with text that is not valid UTF-8 gets an error response of its own; the other requests of the
same batch are answered normally.
"""

import json
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils


def _output_dtype(config: dict[str, Any], name: str) -> Any:
    output = pb_utils.get_output_config_by_name(config, name)
    if output is None:
        raise pb_utils.TritonModelException(f"config.pbtxt declares no output {name}")
    return pb_utils.triton_string_to_numpy(output["data_type"])


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        # Output dtypes come from the config, so that changing config.pbtxt is enough.
        self.upper_dtype = _output_dtype(config, "UPPER")
        self.length_dtype = _output_dtype(config, "LENGTH")

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = []
        for request in requests:
            tensor = pb_utils.get_input_tensor_by_name(request, "TEXT")
            if tensor is None:  # the server checks required inputs first; this is for the types
                error = pb_utils.TritonError("TEXT is missing", pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
                continue
            text = tensor.as_numpy()
            try:
                decoded = [bytes(item).decode("utf-8") for item in text.reshape(-1)]
            except UnicodeDecodeError as exc:
                error = pb_utils.TritonError(
                    f"TEXT is not valid UTF-8: {exc}", pb_utils.TritonError.INVALID_ARG
                )
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
                continue
            upper = np.array(
                [s.upper().encode("utf-8") for s in decoded], dtype=self.upper_dtype
            ).reshape(text.shape)
            length = np.array([len(s) for s in decoded], dtype=self.length_dtype).reshape(
                text.shape
            )
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("UPPER", upper),
                        pb_utils.Tensor("LENGTH", length),
                    ]
                )
            )
        return responses

    def finalize(self) -> None:
        pass
