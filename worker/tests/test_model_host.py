from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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
from inferneo_worker.runners import InferRequest, RunReport
from inferneo_worker.runners.onnx_runner import OnnxRunner
from inferneo_worker.warmup import WarmupError


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


# -- warm-up ------------------------------------------------------------------------------------

# A Python model that echoes IN as OUT, logs every execute call (its requests' input shapes, dtypes
# and values) to calls.jsonl in its model directory, raises for a negative IN, and leaves a
# "finalized" file when finalized.
RECORDING_MODEL = """
    import json
    import os

    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def initialize(self, args):
            self.dir = args["model_repository"]

        def execute(self, requests):
            record = []
            for request in requests:
                data = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
                text = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy()
                record.append([list(data.shape), str(data.dtype), data.tolist(),
                               list(text.shape), [t.decode() for t in text.reshape(-1)]])
            with open(os.path.join(self.dir, "calls.jsonl"), "a") as log:
                log.write(json.dumps(record) + "\\n")
            for request in requests:
                data = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
                if (data < 0).any():
                    raise ValueError("negative input")
            return [
                pb_utils.InferenceResponse(
                    [pb_utils.Tensor("OUT", pb_utils.get_input_tensor_by_name(r, "IN").as_numpy())]
                )
                for r in requests
            ]

        def finalize(self):
            with open(os.path.join(self.dir, "finalized"), "w") as f:
                f.write("yes")
"""

RECORDING_CONFIG = """
    backend: "python"
    max_batch_size: 4
    input [ { name: "IN" data_type: TYPE_FP32 dims: [ 2 ] },
            { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] } ]
    output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] } ]
"""


def _recording_model(repository: Path, name: str, warmup: str) -> Path:
    return write_model(repository, name, RECORDING_CONFIG + warmup, {"1/model.py": RECORDING_MODEL})


def _calls(model_dir: Path) -> list[Any]:
    log = model_dir / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_warmup_runs_each_sample_count_times_before_the_load_returns(tmp_path: Path) -> None:
    model_dir = _recording_model(
        tmp_path,
        "recorder",
        """
        model_warmup [
          {
            name: "zeros"
            batch_size: 3
            count: 2
            inputs { key: "IN" value { data_type: TYPE_FP32 dims: [ 2 ] zero_data: true } }
            inputs { key: "TEXT" value { data_type: TYPE_STRING dims: [ 1 ] zero_data: true } }
          },
          {
            name: "random"
            batch_size: 1
            inputs { key: "IN" value { data_type: TYPE_FP32 dims: [ 2 ] random_data: true } }
            inputs { key: "TEXT" value { data_type: TYPE_STRING dims: [ 1 ] random_data: true } }
          }
        ]
        """,
    )
    host = ModelHost(tmp_path)
    loaded = host.load("recorder", "1")
    assert loaded.warmup_ms > 0
    calls = _calls(model_dir)
    # "zeros" twice (3 requests of one row each, in one execute call), then "random" once.
    assert [len(call) for call in calls] == [3, 3, 1]
    assert calls[0][0] == [[1, 2], "float32", [[0.0, 0.0]], [1, 1], [""]]
    (random,) = calls[2]
    assert random[:2] == [[1, 2], "float32"]
    assert all(0 <= x < 1 for x in random[2][0])
    assert random[3] == [1, 1]
    assert 1 <= len(random[4][0]) <= 16
    # Warm-up is not traffic: the statistics start at zero.
    (stats,) = host.stats()
    assert (stats.inference_count, stats.execution_count) == (0, 0)
    assert host.load("recorder", "1") is loaded, "loading again does not warm up again"
    assert len(_calls(model_dir)) == 3
    host.close()


def test_a_failing_warmup_fails_the_load_and_finalizes_the_model(tmp_path: Path) -> None:
    (tmp_path / "failing" / "warmup").mkdir(parents=True)
    np.array([1.0, -1.0], dtype="<f4").tofile(tmp_path / "failing" / "warmup" / "negative.bin")
    model_dir = _recording_model(
        tmp_path,
        "failing",
        """
        model_warmup {
          name: "fine"
          batch_size: 1
          inputs { key: "IN" value { data_type: TYPE_FP32 dims: [ 2 ] zero_data: true } }
          inputs { key: "TEXT" value { data_type: TYPE_STRING dims: [ 1 ] zero_data: true } }
        }
        model_warmup {
          name: "negative"
          batch_size: 2
          inputs { key: "IN" value { data_type: TYPE_FP32 dims: [ 2 ]
                                     input_data_file: "negative.bin" } }
          inputs { key: "TEXT" value { data_type: TYPE_STRING dims: [ 1 ] zero_data: true } }
        }
        """,
    )
    host = ModelHost(tmp_path)
    with pytest.raises(WarmupError) as caught:
        host.load("failing", "1")
    assert caught.value.code is ErrorCode.LOAD_FAILED
    assert caught.value.sample == "negative"
    assert "warm-up sample 'negative' of model 'failing' version 1 failed" in caught.value.message
    assert "ValueError: negative input" in caught.value.message
    assert [len(call) for call in _calls(model_dir)] == [1, 2]
    assert (model_dir / "finalized").read_text() == "yes"
    assert host.loaded() == []
    assert host.stats() == []
    with pytest.raises(ModelNotReadyError):
        host.infer("failing", "1", [])


def test_onnx_warmup_goes_through_the_batching_runner(
    model_repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports: list[tuple[int, RunReport]] = []
    original = OnnxRunner.infer

    def recording_infer(self: OnnxRunner, requests: Sequence[InferRequest]) -> RunReport:
        report = original(self, requests)
        reports.append((len(requests), report))
        return report

    monkeypatch.setattr(OnnxRunner, "infer", recording_infer)
    host = ModelHost(model_repository)
    loaded = host.load("classifier", "1")
    # The bundled classifier: "zeros_batch_4" (4 requests run as one batch of 4 rows), then
    # "random_batch_1" twice.
    assert [(n, r.executions, r.rows) for n, r in reports] == [(4, 1, 4), (1, 1, 1), (1, 1, 1)]
    assert all(resp.error is None for _, r in reports for resp in r.responses)
    assert loaded.warmup_ms > 0
    host.close()


def test_a_failing_onnx_warmup_names_the_sample(tmp_path: Path, built_repository: Path) -> None:
    model_dir = tmp_path / "classifier"
    shutil.copytree(built_repository / "classifier", model_dir)
    config = model_dir / "config.pbtxt"
    config.write_text(
        config.read_text()
        + """
        model_warmup {
          name: "too_narrow"
          batch_size: 2
          inputs { key: "features" value { data_type: TYPE_FP32 dims: [ 15 ] zero_data: true } }
        }
        """
    )
    host = ModelHost(tmp_path)
    with pytest.raises(LoadFailedError, match=r"warm-up sample 'too_narrow'.*shape \[1, 15\]"):
        host.load("classifier", "2")
    assert host.loaded() == []
    host.close()


# -- source ---------------------------------------------------------------------------------------


def test_load_from_a_source_directory(tmp_path: Path, model_repository: Path) -> None:
    # A staging copy of the classifier under another directory name, with a version 3 that the
    # repository does not have.
    source = tmp_path / "staging" / "classifier-candidate"
    source.mkdir(parents=True)
    shutil.copy(model_repository / "classifier" / "config.pbtxt", source / "config.pbtxt")
    shutil.copytree(model_repository / "classifier" / "2", source / "3")
    host = ModelHost(model_repository)
    loaded = host.load("classifier", "3", source=str(source))
    assert (loaded.model, loaded.version) == ("classifier", "3")
    assert loaded.warmup_ms > 0
    assert host.loaded() == [("classifier", "3")]
    request = _features(2, seed=5)
    (response,) = host.infer("classifier", "3", [request])
    expected = ort_outputs(source / "3" / "model.onnx", dict(request.inputs))
    np.testing.assert_allclose(response.outputs["probabilities"], expected["probabilities"])
    # Keyed by (model, version): loading it again, with or without the source, is a no-op.
    assert host.load("classifier", "3") is loaded
    host.unload("classifier", "3")
    with pytest.raises(NotFoundError, match="not in the repository"):
        host.infer("classifier", "3", [request])
    host.close()


def test_a_relative_source_is_taken_from_the_working_directory(
    tmp_path: Path, model_repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(model_repository.parent)
    host = ModelHost(tmp_path / "empty-repository")
    loaded = host.load("classifier", "1", source=f"{model_repository.name}/classifier")
    assert loaded.version == "1"
    with pytest.raises(NotFoundError, match=f"source {tmp_path}/nowhere of model 'classifier'"):
        host.load("classifier", "2", source="nowhere")
    host.close()


def test_a_source_model_not_in_the_repository_with_warmup_data(
    tmp_path: Path, built_repository: Path
) -> None:
    source = tmp_path / "elsewhere"
    (source / "1").mkdir(parents=True)
    shutil.copy(built_repository / "mlp_tiny/1/model.onnx", source / "1/model.onnx")
    (source / "warmup").mkdir()
    np.ones(256, dtype="<f4").tofile(source / "warmup" / "ones.bin")
    (source / "config.pbtxt").write_text(
        """
        platform: "onnxruntime_onnx"
        max_batch_size: 8
        model_warmup {
          name: "ones"
          batch_size: 8
          inputs { key: "INPUT0" value { data_type: TYPE_FP32 dims: [ 256 ]
                                         input_data_file: "ones.bin" } }
        }
        """
    )
    repository = tmp_path / "repository"
    repository.mkdir()
    host = ModelHost(repository)
    assert host.load("fresh", "1", source=str(source)).metadata.max_batch_size == 8
    assert host.loaded() == [("fresh", "1")]
    host.close()


def test_source_errors(
    tmp_path: Path, model_repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = ModelHost(model_repository)
    missing = tmp_path / "missing"
    with pytest.raises(NotFoundError, match=f"source {missing} of model 'classifier' is not a"):
        host.load("classifier", "1", source=str(missing))
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(NotFoundError, match=f"source {a_file} .* readable directory"):
        host.load("classifier", "1", source=str(a_file))

    source = tmp_path / "source"
    (source / "1").mkdir(parents=True)
    with pytest.raises(LoadFailedError, match=rf"has no config\.pbtxt in source {source}"):
        host.load("classifier", "1", source=str(source))
    shutil.copy(model_repository / "classifier" / "config.pbtxt", source / "config.pbtxt")
    with pytest.raises(NotFoundError, match=rf"has no version 9 in source {source} \(it has 1\)"):
        host.load("classifier", "9", source=str(source))

    with monkeypatch.context() as patch:
        patch.setattr(os, "access", lambda *_args, **_kwargs: False)
        with pytest.raises(NotFoundError, match=f"source {source} .* readable directory"):
            host.load("classifier", "1", source=str(source))

    def unlistable(_self: Path) -> Iterator[Path]:
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patch:
        patch.setattr(Path, "iterdir", unlistable)
        with pytest.raises(NotFoundError, match=f"cannot list {source} .*Permission denied"):
            host.load("classifier", "1", source=str(source))

    only_text = ModelHost(model_repository, models=["text_stats"])
    with pytest.raises(NotFoundError, match="not one of the models this worker hosts"):
        only_text.load("classifier", "1", source=str(source))
    assert host.loaded() == []
