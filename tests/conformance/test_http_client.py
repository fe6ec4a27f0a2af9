"""NVIDIA's `tritonclient.http` (2.51) against Inferneo's HTTP API, unmodified.

Every call here is one a Triton user makes; the answers must be what Triton's client expects, and
the numbers what ONNX Runtime computes on the same model file.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient
import tritonclient.http.aio as aiohttpclient
from tritonclient.utils import InferenceServerException

from conftest import Inferneo, OnnxOracle, features


@pytest.fixture(scope="module")
def client(inferneo: Inferneo) -> Iterator[httpclient.InferenceServerClient]:
    c = httpclient.InferenceServerClient(inferneo.http_url, concurrency=4)
    yield c
    c.close()


def classifier_inputs(x: np.ndarray, binary: bool) -> list[httpclient.InferInput]:
    tensor = httpclient.InferInput("features", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    return [tensor]


def classifier_outputs(binary: bool) -> list[httpclient.InferRequestedOutput]:
    return [
        httpclient.InferRequestedOutput("probabilities", binary_data=binary),
        httpclient.InferRequestedOutput("label", binary_data=binary),
    ]


def assert_matches_oracle(
    result: httpclient.InferResult, oracle: OnnxOracle, version: str, x: np.ndarray
) -> None:
    expected = oracle.run("classifier", version, {"features": x})
    probabilities = result.as_numpy("probabilities")
    label = result.as_numpy("label")
    assert probabilities.dtype == np.float32
    assert label.dtype == np.int64
    np.testing.assert_allclose(probabilities, expected["probabilities"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(label, expected["label"])


class TestServer:
    def test_live_and_ready(self, client: httpclient.InferenceServerClient) -> None:
        assert client.is_server_live()
        assert client.is_server_ready()

    def test_metadata(self, client: httpclient.InferenceServerClient) -> None:
        metadata = client.get_server_metadata()
        assert metadata["name"] == "inferneo"
        assert metadata["version"]
        for extension in ("binary_tensor_data", "model_repository", "statistics"):
            assert extension in metadata["extensions"]


class TestModels:
    def test_model_metadata(self, client: httpclient.InferenceServerClient) -> None:
        metadata = client.get_model_metadata("classifier")
        assert metadata["name"] == "classifier"
        assert set(metadata["versions"]) == {"1", "2"}
        assert metadata["platform"] == "onnxruntime_onnx"
        assert metadata["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 16]}]
        assert {o["name"]: (o["datatype"], o["shape"]) for o in metadata["outputs"]} == {
            "probabilities": ("FP32", [-1, 3]),
            "label": ("INT64", [-1, 1]),
        }
        text = client.get_model_metadata("text_stats", model_version="1")
        assert text["versions"] == ["1"]
        assert text["inputs"] == [{"name": "TEXT", "datatype": "BYTES", "shape": [-1, 1]}]

    def test_model_config(self, client: httpclient.InferenceServerClient) -> None:
        config = client.get_model_config("classifier")
        assert config["name"] == "classifier"
        assert config["max_batch_size"] == 64
        assert config["input"] == [{"name": "features", "data_type": "TYPE_FP32", "dims": [16]}]
        assert [o["name"] for o in config["output"]] == ["probabilities", "label"]
        assert "dynamic_batching" in config

    def test_model_ready(self, client: httpclient.InferenceServerClient) -> None:
        assert client.is_model_ready("classifier")
        assert client.is_model_ready("classifier", model_version="1")
        assert not client.is_model_ready("no-such-model")


class TestInfer:
    @pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
    @pytest.mark.parametrize("version", ["1", "2"])
    def test_classifier_matches_onnx_runtime(
        self,
        client: httpclient.InferenceServerClient,
        oracle: OnnxOracle,
        binary: bool,
        version: str,
    ) -> None:
        x = features(5, seed=int(version) * 10 + binary)
        result = client.infer(
            "classifier",
            classifier_inputs(x, binary),
            model_version=version,
            outputs=classifier_outputs(binary),
            request_id=f"req-{version}-{binary}",
        )
        response = result.get_response()
        assert response["model_name"] == "classifier"
        assert response["model_version"] == version
        assert response["id"] == f"req-{version}-{binary}"
        # Binary outputs travel after the JSON header, JSON ones inline.
        for output in response["outputs"]:
            assert ("binary_data_size" in output.get("parameters", {})) == binary
            assert ("data" in output) == (not binary)
        assert_matches_oracle(result, oracle, version, x)

    def test_highest_version_serves_without_a_version(
        self, client: httpclient.InferenceServerClient, oracle: OnnxOracle
    ) -> None:
        x = features(1, seed=3)
        result = client.infer("classifier", classifier_inputs(x, True))
        assert result.get_response()["model_version"] == "2"
        assert_matches_oracle(result, oracle, "2", x)

    def test_benchmark_model_with_gzip_request(
        self, client: httpclient.InferenceServerClient, oracle: OnnxOracle
    ) -> None:
        x = features(3, seed=4, width=256)
        tensor = httpclient.InferInput("INPUT0", [3, 256], "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer("mlp_tiny", [tensor], request_compression_algorithm="gzip")
        expected = oracle.run("mlp_tiny", "1", {"INPUT0": x})["OUTPUT0"]
        np.testing.assert_allclose(result.as_numpy("OUTPUT0"), expected, rtol=1e-5, atol=1e-5)

    @pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
    def test_bytes_model(self, client: httpclient.InferenceServerClient, binary: bool) -> None:
        words = ["hello", "grüße", "", "ünïcödé text"]
        text = np.array([[w.encode()] for w in words], dtype=np.object_)
        tensor = httpclient.InferInput("TEXT", [len(words), 1], "BYTES")
        tensor.set_data_from_numpy(text, binary_data=binary)
        outputs = [
            httpclient.InferRequestedOutput("UPPER", binary_data=binary),
            httpclient.InferRequestedOutput("LENGTH", binary_data=binary),
        ]
        result = client.infer("text_stats", [tensor], outputs=outputs)
        upper = result.as_numpy("UPPER")
        assert [u[0].decode() if isinstance(u[0], bytes) else u[0] for u in upper] == [
            w.upper() for w in words
        ]
        np.testing.assert_array_equal(
            result.as_numpy("LENGTH"), np.array([[len(w)] for w in words], dtype=np.int32)
        )

    def test_scheduling_parameters(self, client: httpclient.InferenceServerClient) -> None:
        result = client.infer(
            "classifier", classifier_inputs(features(1, seed=5), True), priority=1
        )
        assert result.as_numpy("label").shape == (1, 1)

    def test_async_infer(
        self, client: httpclient.InferenceServerClient, oracle: OnnxOracle
    ) -> None:
        xs = [features(1 + i % 3, seed=100 + i) for i in range(8)]
        pending = [
            client.async_infer("classifier", classifier_inputs(x, i % 2 == 0), model_version="1")
            for i, x in enumerate(xs)
        ]
        for x, request in zip(xs, pending, strict=True):
            assert_matches_oracle(request.get_result(timeout=30), oracle, "1", x)

    def test_asyncio_client(self, inferneo: Inferneo, oracle: OnnxOracle) -> None:
        xs = [features(2, seed=200 + i) for i in range(6)]

        async def run() -> list[httpclient.InferResult]:
            async with aiohttpclient.InferenceServerClient(inferneo.http_url) as aio:
                assert await aio.is_server_ready()
                inputs: list[list[aiohttpclient.InferInput]] = []
                for x in xs:
                    tensor = aiohttpclient.InferInput("features", list(x.shape), "FP32")
                    tensor.set_data_from_numpy(x)
                    inputs.append([tensor])
                return list(
                    await asyncio.gather(
                        *(aio.infer("classifier", i, model_version="2") for i in inputs)
                    )
                )

        for x, result in zip(xs, asyncio.run(run()), strict=True):
            assert_matches_oracle(result, oracle, "2", x)


class TestRepository:
    def test_index_unload_load(self, client: httpclient.InferenceServerClient) -> None:
        index = client.get_model_repository_index()
        entries = {(m["name"], m.get("version")): m for m in index}
        for key in [
            ("classifier", "1"),
            ("classifier", "2"),
            ("mlp_wide", "1"),
            ("text_stats", "1"),
        ]:
            assert entries[key]["state"] == "READY", entries

        client.unload_model("mlp_wide")
        assert not client.is_model_ready("mlp_wide")
        after = {
            (m["name"], m.get("version")): m["state"] for m in client.get_model_repository_index()
        }
        assert after[("mlp_wide", "1")] != "READY"

        client.load_model("mlp_wide")
        assert client.is_model_ready("mlp_wide")
        ready = client.get_model_repository_index()
        assert ("mlp_wide", "1") in {(m["name"], m.get("version")) for m in ready}

    def test_load_of_an_unknown_model_fails(self, client: httpclient.InferenceServerClient) -> None:
        with pytest.raises(InferenceServerException) as err:
            client.load_model("no-such-model")
        assert "no-such-model" in err.value.message()


class TestStatistics:
    def test_counts_follow_inference(self, client: httpclient.InferenceServerClient) -> None:
        def version_stats() -> dict[str, int]:
            stats = client.get_inference_statistics("classifier", model_version="1")["model_stats"]
            assert [(s["name"], s["version"]) for s in stats] == [("classifier", "1")]
            s = stats[0]
            return {
                "inference_count": s["inference_count"],
                "execution_count": s["execution_count"],
                "success": s["inference_stats"]["success"]["count"],
            }

        before = version_stats()
        for rows in (1, 3, 2):
            client.infer("classifier", classifier_inputs(features(rows, seed=rows), True), "1")
        after = version_stats()
        assert after["inference_count"] - before["inference_count"] == 6
        assert after["success"] - before["success"] == 3
        assert 1 <= after["execution_count"] - before["execution_count"] <= 3

    def test_all_models(self, client: httpclient.InferenceServerClient) -> None:
        names = {s["name"] for s in client.get_inference_statistics()["model_stats"]}
        assert {"classifier", "mlp_tiny", "mlp_wide", "text_stats"} <= names


class TestErrors:
    def test_unknown_model(self, client: httpclient.InferenceServerClient) -> None:
        x = features(1, seed=1)
        with pytest.raises(InferenceServerException) as err:
            client.infer("no-such-model", classifier_inputs(x, True))
        assert err.value.status() == "404"
        assert "no-such-model" in err.value.message()
        with pytest.raises(InferenceServerException) as err:
            client.get_model_metadata("no-such-model")
        assert "no-such-model" in err.value.message()

    def test_unknown_version(self, client: httpclient.InferenceServerClient) -> None:
        with pytest.raises(InferenceServerException) as err:
            client.infer("classifier", classifier_inputs(features(1, seed=1), True), "9")
        assert err.value.status() == "404"
        assert "9" in err.value.message()

    def test_wrong_shape(self, client: httpclient.InferenceServerClient) -> None:
        with pytest.raises(InferenceServerException) as err:
            client.infer("classifier", classifier_inputs(features(2, seed=1, width=15), True))
        assert err.value.status() == "400"
        assert "features" in err.value.message()
        assert "shape" in err.value.message()

    def test_wrong_datatype(self, client: httpclient.InferenceServerClient) -> None:
        tensor = httpclient.InferInput("features", [1, 16], "INT32")
        tensor.set_data_from_numpy(np.zeros((1, 16), dtype=np.int32))
        with pytest.raises(InferenceServerException) as err:
            client.infer("classifier", [tensor])
        assert err.value.status() == "400"
        assert "INT32" in err.value.message()
        assert "FP32" in err.value.message()

    def test_unknown_input_and_output(self, client: httpclient.InferenceServerClient) -> None:
        tensor = httpclient.InferInput("not_features", [1, 16], "FP32")
        tensor.set_data_from_numpy(features(1, seed=1))
        with pytest.raises(InferenceServerException) as err:
            client.infer("classifier", [tensor])
        assert err.value.status() == "400"
        assert "not_features" in err.value.message()

        with pytest.raises(InferenceServerException) as err:
            client.infer(
                "classifier",
                classifier_inputs(features(1, seed=1), True),
                outputs=[httpclient.InferRequestedOutput("nope_output")],
            )
        assert err.value.status() == "400"
        assert "nope_output" in err.value.message()


class TestRoutes:
    def test_infer_through_a_route(
        self, inferneo: Inferneo, client: httpclient.InferenceServerClient, oracle: OnnxOracle
    ) -> None:
        route = f"conformance-{uuid.uuid4().hex[:8]}"
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
            metadata = client.get_model_metadata(route)
            assert metadata["name"] == route
            assert metadata["inputs"][0]["name"] == "features"
            assert client.is_model_ready(route)

            served: set[str] = set()
            for i in range(24):
                x = features(1, seed=300 + i)
                result = client.infer(route, classifier_inputs(x, True))
                response = result.get_response()
                assert response["model_name"] == "classifier"
                served.add(response["model_version"])
                assert_matches_oracle(result, oracle, response["model_version"], x)
            assert served == {"1", "2"}, "a 50/50 split served one version 24 times"

            # The sticky key travels as an HTTP header set through the client.
            keyed = {
                client.infer(
                    route,
                    classifier_inputs(features(1, seed=i), True),
                    headers={"x-inferneo-route-key": "user-42"},
                ).get_response()["model_version"]
                for i in range(6)
            }
            assert len(keyed) == 1
        finally:
            status, body = inferneo.admin("DELETE", f"/routes/{route}")
            assert status in (200, 204), body
