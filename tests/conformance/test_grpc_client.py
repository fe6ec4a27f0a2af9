"""NVIDIA's `tritonclient.grpc` (2.51) against Inferneo's `inference.GRPCInferenceService`.

The same checks as over HTTP, through Triton's own gRPC stubs: tensors travel as
`raw_input_contents` / `raw_output_contents`, errors as gRPC status codes, and the streaming RPC
(`ModelStreamInfer`) answers every request on the one stream, and streams an LLM's text piece by
piece as Triton's vLLM backend does.
"""

from __future__ import annotations

import asyncio
import json
import queue
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aiogrpcclient
from tritonclient.utils import InferenceServerException

from conftest import Inferneo, OnnxOracle, features


@pytest.fixture(scope="module")
def client(inferneo: Inferneo) -> Iterator[grpcclient.InferenceServerClient]:
    c = grpcclient.InferenceServerClient(inferneo.grpc_url)
    yield c
    c.close()


def classifier_inputs(x: np.ndarray) -> list[grpcclient.InferInput]:
    tensor = grpcclient.InferInput("features", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return [tensor]


def assert_matches_oracle(result: Any, oracle: OnnxOracle, version: str, x: np.ndarray) -> None:
    expected = oracle.run("classifier", version, {"features": x})
    probabilities = result.as_numpy("probabilities")
    label = result.as_numpy("label")
    assert probabilities.dtype == np.float32
    assert label.dtype == np.int64
    np.testing.assert_allclose(probabilities, expected["probabilities"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(label, expected["label"])


def shape(dims: list[str]) -> list[int]:
    """int64 fields come back as strings in protobuf's JSON mapping."""
    return [int(d) for d in dims]


class TestServer:
    def test_live_and_ready(self, client: grpcclient.InferenceServerClient) -> None:
        assert client.is_server_live()
        assert client.is_server_ready()

    def test_metadata(self, client: grpcclient.InferenceServerClient) -> None:
        metadata = client.get_server_metadata(as_json=True)
        assert metadata["name"] == "inferneo"
        assert metadata["version"]
        assert "model_repository" in metadata["extensions"]


class TestModels:
    def test_model_metadata(self, client: grpcclient.InferenceServerClient) -> None:
        metadata = client.get_model_metadata("classifier", as_json=True)
        assert metadata["name"] == "classifier"
        assert set(metadata["versions"]) == {"1", "2"}
        assert metadata["platform"] == "onnxruntime_onnx"
        [tensor] = metadata["inputs"]
        assert (tensor["name"], tensor["datatype"], shape(tensor["shape"])) == (
            "features",
            "FP32",
            [-1, 16],
        )
        assert {o["name"]: (o["datatype"], shape(o["shape"])) for o in metadata["outputs"]} == {
            "probabilities": ("FP32", [-1, 3]),
            "label": ("INT64", [-1, 1]),
        }

    def test_model_config(self, client: grpcclient.InferenceServerClient) -> None:
        config = client.get_model_config("classifier", as_json=True)["config"]
        assert config["name"] == "classifier"
        assert config["max_batch_size"] == 64
        [tensor] = config["input"]
        assert (tensor["name"], tensor["data_type"], shape(tensor["dims"])) == (
            "features",
            "TYPE_FP32",
            [16],
        )
        assert [o["name"] for o in config["output"]] == ["probabilities", "label"]
        # The protobuf form decodes with Triton's own model_config_pb2.
        typed = client.get_model_config("text_stats").config
        assert typed.backend == "python"
        assert typed.max_batch_size == 8

    def test_model_ready(self, client: grpcclient.InferenceServerClient) -> None:
        assert client.is_model_ready("classifier")
        assert client.is_model_ready("classifier", model_version="2")
        assert not client.is_model_ready("no-such-model")


class TestInfer:
    @pytest.mark.parametrize("version", ["1", "2"])
    def test_classifier_matches_onnx_runtime(
        self, client: grpcclient.InferenceServerClient, oracle: OnnxOracle, version: str
    ) -> None:
        x = features(4, seed=40 + int(version))
        result = client.infer(
            "classifier",
            classifier_inputs(x),
            model_version=version,
            outputs=[
                grpcclient.InferRequestedOutput("probabilities"),
                grpcclient.InferRequestedOutput("label"),
            ],
            request_id=f"grpc-{version}",
        )
        response = result.get_response()
        assert response.model_name == "classifier"
        assert response.model_version == version
        assert response.id == f"grpc-{version}"
        assert_matches_oracle(result, oracle, version, x)

    def test_one_requested_output(
        self, client: grpcclient.InferenceServerClient, oracle: OnnxOracle
    ) -> None:
        x = features(2, seed=41)
        result = client.infer(
            "classifier", classifier_inputs(x), outputs=[grpcclient.InferRequestedOutput("label")]
        )
        assert [o.name for o in result.get_response().outputs] == ["label"]
        expected = oracle.run("classifier", "2", {"features": x})["label"]
        np.testing.assert_array_equal(result.as_numpy("label"), expected)

    def test_bytes_model(self, client: grpcclient.InferenceServerClient) -> None:
        words = ["hello", "grüße", "", "ünïcödé text"]
        tensor = grpcclient.InferInput("TEXT", [len(words), 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[w.encode()] for w in words], dtype=np.object_))
        result = client.infer("text_stats", [tensor])
        assert [u[0].decode() for u in result.as_numpy("UPPER")] == [w.upper() for w in words]
        np.testing.assert_array_equal(
            result.as_numpy("LENGTH"), np.array([[len(w)] for w in words], dtype=np.int32)
        )

    def test_benchmark_model_with_gzip(
        self, client: grpcclient.InferenceServerClient, oracle: OnnxOracle
    ) -> None:
        x = features(3, seed=42, width=256)
        tensor = grpcclient.InferInput("INPUT0", [3, 256], "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer("mlp_tiny", [tensor], compression_algorithm="gzip")
        expected = oracle.run("mlp_tiny", "1", {"INPUT0": x})["OUTPUT0"]
        np.testing.assert_allclose(result.as_numpy("OUTPUT0"), expected, rtol=1e-5, atol=1e-5)

    def test_async_infer(
        self, client: grpcclient.InferenceServerClient, oracle: OnnxOracle
    ) -> None:
        xs = [features(1 + i % 3, seed=500 + i) for i in range(8)]
        done: queue.Queue[tuple[int, Any, Any]] = queue.Queue()
        for i, x in enumerate(xs):
            client.async_infer(
                "classifier",
                classifier_inputs(x),
                callback=lambda result, error, i=i: done.put((i, result, error)),
                model_version="1",
            )
        for _ in xs:
            i, result, error = done.get(timeout=30)
            assert error is None, error
            assert_matches_oracle(result, oracle, "1", xs[i])

    def test_stream_infer(
        self, client: grpcclient.InferenceServerClient, oracle: OnnxOracle
    ) -> None:
        xs = {f"s{i}": features(1 + i % 4, seed=600 + i) for i in range(10)}
        done: queue.Queue[tuple[Any, Any]] = queue.Queue()
        client.start_stream(callback=lambda result, error: done.put((result, error)))
        try:
            for request_id, x in xs.items():
                client.async_stream_infer(
                    "classifier", classifier_inputs(x), model_version="2", request_id=request_id
                )
            # An error on the stream comes back on the stream, and the stream goes on.
            bad = grpcclient.InferInput("features", [1, 3], "FP32")
            bad.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
            client.async_stream_infer("classifier", [bad], request_id="bad")
            errors = []
            seen: set[str] = set()
            for _ in range(len(xs) + 1):
                result, error = done.get(timeout=30)
                if error is not None:
                    errors.append(error)
                    continue
                request_id = result.get_response().id
                seen.add(request_id)
                assert_matches_oracle(result, oracle, "2", xs[request_id])
            assert seen == set(xs)
            assert len(errors) == 1
            assert isinstance(errors[0], InferenceServerException)
            assert "features" in errors[0].message()
        finally:
            client.stop_stream()

    def test_asyncio_client(self, inferneo: Inferneo, oracle: OnnxOracle) -> None:
        xs = [features(2, seed=700 + i) for i in range(6)]

        async def run() -> list[Any]:
            async with aiogrpcclient.InferenceServerClient(inferneo.grpc_url) as aio:
                assert await aio.is_server_ready()
                inputs = []
                for x in xs:
                    tensor = aiogrpcclient.InferInput("features", list(x.shape), "FP32")
                    tensor.set_data_from_numpy(x)
                    inputs.append([tensor])
                return list(
                    await asyncio.gather(
                        *(aio.infer("classifier", i, model_version="1") for i in inputs)
                    )
                )

        for x, result in zip(xs, asyncio.run(run()), strict=True):
            assert_matches_oracle(result, oracle, "1", x)


class TestRepository:
    def test_index_unload_load(self, client: grpcclient.InferenceServerClient) -> None:
        index = client.get_model_repository_index(as_json=True)["models"]
        states = {(m["name"], m.get("version")): m.get("state") for m in index}
        for key in [("classifier", "1"), ("classifier", "2"), ("text_stats", "1")]:
            assert states[key] == "READY", states

        client.unload_model("text_stats")
        assert not client.is_model_ready("text_stats")
        client.load_model("text_stats")
        assert client.is_model_ready("text_stats")

    def test_load_of_an_unknown_model_fails(self, client: grpcclient.InferenceServerClient) -> None:
        with pytest.raises(InferenceServerException) as err:
            client.load_model("no-such-model")
        assert "no-such-model" in err.value.message()


class TestStatistics:
    def test_counts_follow_inference(self, client: grpcclient.InferenceServerClient) -> None:
        def version_stats() -> dict[str, int]:
            stats = client.get_inference_statistics("classifier", "1", as_json=True)["model_stats"]
            assert [(s["name"], s["version"]) for s in stats] == [("classifier", "1")]
            s = stats[0]
            return {
                "inference_count": int(s.get("inference_count", 0)),
                "execution_count": int(s.get("execution_count", 0)),
                "success": int(s["inference_stats"]["success"].get("count", 0)),
            }

        before = version_stats()
        for rows in (2, 2, 1):
            client.infer("classifier", classifier_inputs(features(rows, seed=rows)), "1")
        after = version_stats()
        assert after["inference_count"] - before["inference_count"] == 5
        assert after["success"] - before["success"] == 3
        assert 1 <= after["execution_count"] - before["execution_count"] <= 3


class TestErrors:
    def test_unknown_model(self, client: grpcclient.InferenceServerClient) -> None:
        with pytest.raises(InferenceServerException) as err:
            client.infer("no-such-model", classifier_inputs(features(1, seed=1)))
        assert err.value.status() == "StatusCode.NOT_FOUND"
        assert "no-such-model" in err.value.message()
        with pytest.raises(InferenceServerException) as err:
            client.get_model_metadata("no-such-model")
        assert "no-such-model" in err.value.message()

    def test_wrong_shape(self, client: grpcclient.InferenceServerClient) -> None:
        with pytest.raises(InferenceServerException) as err:
            client.infer("classifier", classifier_inputs(features(2, seed=1, width=15)))
        assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "features" in err.value.message()
        assert "shape" in err.value.message()

    def test_wrong_datatype(self, client: grpcclient.InferenceServerClient) -> None:
        tensor = grpcclient.InferInput("features", [1, 16], "INT32")
        tensor.set_data_from_numpy(np.zeros((1, 16), dtype=np.int32))
        with pytest.raises(InferenceServerException) as err:
            client.infer("classifier", [tensor])
        assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "INT32" in err.value.message()

    def test_unknown_input(self, client: grpcclient.InferenceServerClient) -> None:
        tensor = grpcclient.InferInput("not_features", [1, 16], "FP32")
        tensor.set_data_from_numpy(features(1, seed=1))
        with pytest.raises(InferenceServerException) as err:
            client.infer("classifier", [tensor])
        assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "not_features" in err.value.message()


class TestRoutes:
    def test_infer_through_a_route(
        self, inferneo: Inferneo, client: grpcclient.InferenceServerClient, oracle: OnnxOracle
    ) -> None:
        route = f"conformance-grpc-{uuid.uuid4().hex[:8]}"
        status, body = inferneo.admin(
            "PUT",
            f"/routes/{route}",
            {
                "arms": [
                    {"name": "stable", "model": "classifier", "version": "1", "weight": 50},
                    {"name": "canary", "model": "classifier", "version": "2", "weight": 50},
                ],
                "sticky": True,
            },
        )
        assert status == 200, body
        try:
            assert client.is_model_ready(route)
            served: set[str] = set()
            for i in range(24):
                x = features(1, seed=800 + i)
                result = client.infer(route, classifier_inputs(x))
                response = result.get_response()
                assert response.model_name == "classifier"
                served.add(response.model_version)
                assert_matches_oracle(result, oracle, response.model_version, x)
            assert served == {"1", "2"}, "a 50/50 split served one version 24 times"

            # The sticky key travels as gRPC metadata.
            keyed = {
                client.infer(
                    route,
                    classifier_inputs(features(1, seed=i)),
                    headers={"x-inferneo-route-key": "user-7"},
                )
                .get_response()
                .model_version
                for i in range(6)
            }
            assert len(keyed) == 1
        finally:
            status, body = inferneo.admin("DELETE", f"/routes/{route}")
            assert status in (200, 204), body


def llm_inputs(prompt: str, stream: bool) -> list[grpcclient.InferInput]:
    """`text_input` and `stream`, the inputs of Triton's vLLM backend that smollm2 declares too."""
    text = grpcclient.InferInput("text_input", [1], "BYTES")
    text.set_data_from_numpy(np.array([prompt.encode()], dtype=np.object_))
    flag = grpcclient.InferInput("stream", [1], "BOOL")
    flag.set_data_from_numpy(np.array([stream], dtype=bool))
    return [text, flag]


def http_generate(inferneo: Inferneo, body: dict[str, Any]) -> str:
    """What Inferneo's HTTP generate answers: the text gRPC must stream."""
    request = urllib.request.Request(
        f"http://{inferneo.http_url}/v2/models/smollm2/generate",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        text: str = json.loads(response.read())["text_output"]
        return text


class TestLlmStream:
    """SmolLM2 (loaded on first use) through tritonclient's streaming API, as with Triton + vLLM."""

    PROMPT = "The capital of France is"
    SAMPLING: ClassVar[dict[str, Any]] = {"max_tokens": 8, "temperature": 0.0}

    def _stream(
        self, client: grpcclient.InferenceServerClient, stream: bool, empty_final: bool
    ) -> list[Any]:
        """One request on a fresh stream; the results up to the one marked final."""
        done: queue.Queue[tuple[Any, Any]] = queue.Queue()
        client.start_stream(callback=lambda result, error: done.put((result, error)))
        try:
            client.async_stream_infer(
                "smollm2",
                llm_inputs(self.PROMPT, stream),
                request_id="llm-1",
                outputs=[grpcclient.InferRequestedOutput("text_output")],
                parameters=self.SAMPLING,
                enable_empty_final_response=empty_final,
            )
            results = []
            while True:
                result, error = done.get(timeout=60)
                assert error is None, error
                results.append(result)
                if result.get_response().parameters["triton_final_response"].bool_param:
                    return results
        finally:
            client.stop_stream()

    @staticmethod
    def _text(result: Any) -> str:
        out = result.as_numpy("text_output")
        return "" if out is None else "".join(b.decode() for b in out)

    def test_streams_pieces_then_an_empty_final_response(
        self, inferneo: Inferneo, client: grpcclient.InferenceServerClient
    ) -> None:
        expected = http_generate(
            inferneo,
            {
                "text_input": self.PROMPT,
                "exclude_input_in_output": True,
                "parameters": self.SAMPLING,
            },
        )
        results = self._stream(client, stream=True, empty_final=True)
        assert len(results) >= 3
        for r in results:
            response = r.get_response()
            assert (response.model_name, response.id) == ("smollm2", "llm-1")
        assert len(results[-1].get_response().outputs) == 0
        assert "".join(self._text(r) for r in results[:-1]) == expected
        assert expected.startswith(" Paris")

        # Without the empty final response, the last piece says it is the last.
        pieces = self._stream(client, stream=True, empty_final=False)
        assert "".join(self._text(r) for r in pieces) == expected
        assert len(pieces[-1].get_response().outputs) == 1

    def test_stream_false_answers_once_and_infer_is_refused(
        self, client: grpcclient.InferenceServerClient
    ) -> None:
        [whole] = self._stream(client, stream=False, empty_final=True)
        assert self._text(whole).startswith(self.PROMPT + " Paris")
        with pytest.raises(InferenceServerException) as caught:
            client.infer("smollm2", llm_inputs(self.PROMPT, False))
        assert caught.value.status() == "StatusCode.UNIMPLEMENTED"
        assert "decoupled transaction policy" in caught.value.message()
