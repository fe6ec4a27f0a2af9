"""Basic inference against a running Inferneo (`npm start`) from Python, with the standard library
and numpy only: a binary-tensor request (Triton's binary extension) whose answer is compared with
ONNX Runtime run locally on the same model file.

    .venv/bin/python examples/basic_inference.py [--url http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPOSITORY = Path(__file__).resolve().parent.parent / "model-repository"


def infer_binary(url: str, model: str, version: str, x: np.ndarray) -> dict[str, np.ndarray]:
    raw = np.ascontiguousarray(x, dtype="<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "datatype": "FP32",
                    "shape": list(x.shape),
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    request = urllib.request.Request(
        f"{url}/v2/models/{model}/versions/{version}/infer",
        data=header + raw,
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
        },
    )
    with urllib.request.urlopen(request) as response:
        body = response.read()
        header_length = int(response.headers["Inference-Header-Content-Length"])
    meta = json.loads(body[:header_length])
    outputs: dict[str, np.ndarray] = {}
    offset = header_length
    for out in meta["outputs"]:
        size = out["parameters"]["binary_data_size"]
        dtype = {"FP32": "<f4", "INT64": "<i8"}[out["datatype"]]
        outputs[out["name"]] = np.frombuffer(body[offset : offset + size], dtype=dtype).reshape(out["shape"])
        offset += size
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=os.environ.get("INFERNEO_URL", "http://127.0.0.1:8000"))
    args = parser.parse_args()
    x = np.random.default_rng(7).standard_normal((4, 16), dtype=np.float32)
    for version in ("1", "2"):
        got = infer_binary(args.url, "classifier", version, x)
        session = ort.InferenceSession(str(REPOSITORY / "classifier" / version / "model.onnx"))
        expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"features": x})))
        same = np.allclose(got["probabilities"], expected["probabilities"], rtol=1e-6, atol=1e-7)
        labels = got["label"].ravel().tolist()
        print(f"classifier v{version}: labels {labels}; matches local ONNX Runtime: {same}")
        if not same or labels != expected["label"].ravel().tolist():
            raise SystemExit(f"classifier v{version}: Inferneo's answer differs from ONNX Runtime's")


if __name__ == "__main__":
    main()
