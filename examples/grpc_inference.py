"""Inferneo over gRPC with NVIDIA's own client, unchanged: ``tritonclient.grpc``.

Run while ``npm start`` runs (``pip install tritonclient[grpc]``; ``npm test`` keeps it in
``.venv-triton``)::

    python examples/grpc_inference.py --url localhost:8001

It reads server and model metadata, runs the classifier with numpy tensors (sent as
``raw_input_contents``), the BYTES model, and a bidirectional stream of requests.
"""

from __future__ import annotations

import argparse
import queue

import numpy as np
import tritonclient.grpc as grpcclient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="localhost:8001", help="host:port of Inferneo's gRPC API")
    args = parser.parse_args()

    client = grpcclient.InferenceServerClient(url=args.url)
    meta = client.get_server_metadata()
    print(f"server: {meta.name} {meta.version}, ready: {client.is_server_ready()}")
    model = client.get_model_metadata("classifier")
    first = model.inputs[0]
    print(f"classifier versions {list(model.versions)}, input {first.name} {list(first.shape)}")

    features = np.random.default_rng(7).standard_normal((4, 16), dtype=np.float32)
    tensor = grpcclient.InferInput("features", list(features.shape), "FP32")
    tensor.set_data_from_numpy(features)
    for version in ("1", "2"):
        result = client.infer("classifier", [tensor], model_version=version, request_id=version)
        response = result.get_response()
        labels = result.as_numpy("label").ravel().tolist()
        shape = result.as_numpy("probabilities").shape
        print(f"classifier v{response.model_version} (id {response.id}): labels {labels}, {shape}")

    text = np.array([[b"hello inferneo"], ["grüße".encode()]], dtype=np.object_)
    text_input = grpcclient.InferInput("TEXT", list(text.shape), "BYTES")
    text_input.set_data_from_numpy(text)
    result = client.infer("text_stats", [text_input])
    upper = [b.decode() for b in result.as_numpy("UPPER").ravel()]
    print(f"text_stats: {upper}, lengths {result.as_numpy('LENGTH').ravel().tolist()}")

    # A stream: each request gets its own response (or error), matched by id.
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    for i in range(3):
        client.async_stream_infer("classifier", [tensor], request_id=f"s{i}")
    got = sorted(answers.get(timeout=30)[0].get_response().id for _ in range(3))
    client.stop_stream()
    print(f"stream: answered {got}")


if __name__ == "__main__":
    main()
