from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import ort_outputs, random_features, write_model
from inferneo_worker.errors import (
    ErrorCode,
    InvalidArgumentError,
    LoadFailedError,
    ModelNotReadyError,
    NotFoundError,
    UnavailableError,
    UnsupportedError,
    WorkerError,
)
from inferneo_worker.model_config import ModelConfigError
from inferneo_worker.model_host import ModelHost, ModelStats
from inferneo_worker.runners import InferRequest


def _features(rows: int, seed: int = 0) -> InferRequest:
    return InferRequest({"features": random_features(rows, 16, seed)})


def test_load_infer_stats_unload(model_repository: Path) -> None:
    host = ModelHost(model_repository)
    loaded = host.load("classifier", "2")
    assert (loaded.model, loaded.version) == ("classifier", "2")
    assert loaded.metadata.max_batch_size == 64
    assert loaded.memory_bytes >= 0
    assert host.loaded() == [("classifier", "2")]

    requests = [_features(3, seed=1), _features(2, seed=2)]
    responses = host.infer("classifier", "2", requests)
    expected = ort_outputs(
        model_repository / "classifier/2/model.onnx",
        {"features": np.concatenate([r.inputs["features"] for r in requests])},
    )
    np.testing.assert_allclose(
        np.concatenate([r.outputs["probabilities"] for r in responses]),
        expected["probabilities"],
        rtol=1e-5,
        atol=1e-6,
    )
    host.infer("classifier", "2", [_features(1)])
    (stats,) = host.stats()
    assert isinstance(stats, ModelStats)
    assert (stats.inference_count, stats.execution_count) == (6, 2)
    assert stats.compute_ns > 0
    assert stats.to_wire() == {
        "model": "classifier",
        "version": "2",
        "inference_count": 6,
        "execution_count": 2,
        "compute_ns": stats.compute_ns,
    }

    host.unload("classifier", "2")
    assert host.loaded() == []
    assert host.stats() == []
    host.unload("classifier", "2")  # unloading something not loaded succeeds
    host.unload("../elsewhere", "latest")
    with pytest.raises(ModelNotReadyError):
        host.infer("classifier", "2", [_features(1)])


def test_loading_twice_returns_the_loaded_version(model_repository: Path) -> None:
    host = ModelHost(model_repository)
    first = host.load("classifier", "1")
    assert host.load("classifier", "1") is first
    host.close()


def test_concurrent_loads_of_one_version_load_once(model_repository: Path) -> None:
    host = ModelHost(model_repository)
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(host.load("mlp_tiny", "1")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert all(r is results[0] for r in results)
    host.close()


def test_both_classifier_versions_are_served(model_repository: Path) -> None:
    host = ModelHost(model_repository)
    host.load("classifier", "1")
    host.load("classifier", "2")
    assert sorted(host.loaded()) == [("classifier", "1"), ("classifier", "2")]
    host.close()
    assert host.loaded() == []
    host.close()  # idempotent
    with pytest.raises(UnavailableError, match="shutting down"):
        host.load("classifier", "1")


def test_python_model(model_repository: Path) -> None:
    host = ModelHost(model_repository)
    assert host.load("text_stats", "1").metadata.backend == "python"
    (response,) = host.infer(
        "text_stats", "1", [InferRequest({"TEXT": np.array([[b"abc"]], dtype=object)})]
    )
    assert response.outputs["UPPER"].tolist() == [[b"ABC"]]
    assert host.stats()[0].inference_count == 1
    host.close()


@pytest.mark.parametrize(
    ("model", "version", "error", "fragment"),
    [
        ("nope", "1", NotFoundError, "'nope' is not in the repository"),
        ("classifier", "3", NotFoundError, "has no version 3 in the repository \\(it has 1, 2\\)"),
        ("classifier", "latest", NotFoundError, "versions are decimal numbers"),
        ("../classifier", "1", InvalidArgumentError, "invalid model name"),
        (".hidden", "1", InvalidArgumentError, "invalid model name"),
        ("", "1", InvalidArgumentError, "invalid model name"),
    ],
)
def test_load_lookup_errors(
    model_repository: Path, model: str, version: str, error: type[WorkerError], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        ModelHost(model_repository).load(model, version)


def test_version_policy_limits_versions(tmp_path: Path, built_repository: Path) -> None:
    repository = tmp_path / "repo"
    shutil.copytree(built_repository / "mlp_tiny", repository / "mlp_tiny")
    shutil.copytree(repository / "mlp_tiny" / "1", repository / "mlp_tiny" / "2")
    host = ModelHost(repository)
    with pytest.raises(NotFoundError, match="not served by its version_policy \\(latest\\)"):
        host.load("mlp_tiny", "1")
    assert host.load("mlp_tiny", "2").version == "2"
    host.close()


def test_models_allowed_by_the_worker(model_repository: Path) -> None:
    host = ModelHost(model_repository, models=["text_stats"])
    with pytest.raises(NotFoundError, match="not one of the models this worker hosts"):
        host.load("classifier", "1")
    host.load("text_stats", "1")
    host.close()


def test_infer_errors(model_repository: Path) -> None:
    host = ModelHost(model_repository)
    with pytest.raises(ModelNotReadyError) as not_ready:
        host.infer("classifier", "1", [])
    assert (not_ready.value.model, not_ready.value.version) == ("classifier", "1")
    with pytest.raises(NotFoundError):
        host.infer("classifier", "7", [])
    with pytest.raises(NotFoundError):
        host.infer("ghost", "1", [])


def test_load_failures(model_repository: Path, built_repository: Path) -> None:
    host = ModelHost(model_repository)
    (model_repository / "no_config" / "1").mkdir(parents=True)
    with pytest.raises(LoadFailedError, match=r"has no config\.pbtxt"):
        host.load("no_config", "1")

    write_model(model_repository, "bad_syntax", "name: [", {"1/model.py": "x = 1"})
    with pytest.raises(ModelConfigError) as syntax:
        host.load("bad_syntax", "1")
    assert syntax.value.code is ErrorCode.LOAD_FAILED
    assert syntax.value.line == 1

    write_model(model_repository, "renamed", 'name: "other" backend: "python"', {"1/x": ""})
    with pytest.raises(LoadFailedError, match="names the model 'other'"):
        host.load("renamed", "1")

    write_model(model_repository, "no_file", 'platform: "onnxruntime_onnx"', {"1/readme": ""})
    with pytest.raises(LoadFailedError, match=r"has no model\.onnx"):
        host.load("no_file", "1")

    write_model(model_repository, "trt", 'platform: "tensorrt_plan"', {"1/model.plan": ""})
    with pytest.raises(UnsupportedError, match="tensorrt_plan") as unsupported:
        host.load("trt", "1")
    assert unsupported.value.feature == "tensorrt_plan"

    write_model(model_repository, "empty", "", {"1/readme": ""})
    with pytest.raises(UnsupportedError, match="\\(none\\)"):
        host.load("empty", "1")

    write_model(
        model_repository,
        "crash",
        'backend: "python"',
        {"1/model.py": "class TritonPythonModel:\n    def __init__(self):\n        1 / 0\n"},
    )
    with pytest.raises(LoadFailedError, match="ZeroDivisionError"):
        host.load("crash", "1")
    assert host.loaded() == []


def test_runner_is_guessed_without_platform(tmp_path: Path, built_repository: Path) -> None:
    repository = tmp_path / "repo"
    (repository / "guess_onnx" / "1").mkdir(parents=True)
    shutil.copy(built_repository / "mlp_tiny/1/model.onnx", repository / "guess_onnx/1/model.onnx")
    (repository / "guess_onnx" / "config.pbtxt").write_text("max_batch_size: 128")
    write_model(
        repository,
        "guess_python",
        "",
        {"1/model.py": "class TritonPythonModel:\n    pass\n"},
    )
    host = ModelHost(repository)
    assert host.load("guess_onnx", "1").metadata.platform == "onnxruntime_onnx"
    assert host.load("guess_python", "1").metadata.backend == "python"
    host.close()


def test_default_model_filename(tmp_path: Path, built_repository: Path) -> None:
    repository = tmp_path / "repo"
    (repository / "named" / "1").mkdir(parents=True)
    shutil.copy(built_repository / "mlp_tiny/1/model.onnx", repository / "named/1/net.onnx")
    (repository / "named" / "config.pbtxt").write_text(
        'backend: "onnxruntime" max_batch_size: 4 default_model_filename: "net.onnx"'
    )
    host = ModelHost(repository)
    assert host.load("named", "1").metadata.backend == "onnxruntime"
    host.close()


def test_memory_budget(model_repository: Path) -> None:
    host = ModelHost(model_repository, memory_budget_bytes=1 << 20)
    with pytest.raises(UnavailableError, match="exceed the worker's memory budget of 1 MiB"):
        host.load("mlp_wide", "1")
    assert host.loaded() == []
    assert ErrorCode.UNAVAILABLE is UnavailableError("x").code
    roomy = ModelHost(model_repository, memory_budget_bytes=1 << 40)
    roomy.load("mlp_tiny", "1")
    roomy.close()


def test_unload_waits_for_python_calls(model_repository: Path) -> None:
    host = ModelHost(model_repository)
    host.load("text_stats", "1")
    host.unload("text_stats", "1")
    with pytest.raises(ModelNotReadyError):
        host.infer("text_stats", "1", [])
    assert host.repository == model_repository
