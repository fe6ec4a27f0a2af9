from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from conftest import WORKER_DIR, write_model
from inferneo_worker.errors import ErrorCode, InternalError, LoadFailedError, ModelNotReadyError
from inferneo_worker.model_config import load_model_config
from inferneo_worker.runners import InferRequest, TensorSpec, pb_utils
from inferneo_worker.runners.python_runner import PythonRunner

ECHO_CONFIG = """
    name: "{name}"
    backend: "python"
    max_batch_size: 4
    input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ 2 ] }} ]
    output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ 2 ] }},
             {{ name: "DOUBLE" data_type: TYPE_INT32 dims: [ 2 ] }} ]
    {extra}
"""

# Records what the worker passes to it in files next to the model, so tests can check them.
ECHO_MODEL = """
    import json
    import os
    import threading
    import time

    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def initialize(self, args):
            self.dir = os.path.dirname(__file__)
            with open(os.path.join(self.dir, "init-" + args["model_instance_name"]), "w") as f:
                json.dump(args, f)

        def execute(self, requests):
            with open(os.path.join(self.dir, "executions"), "a") as f:
                f.write(f"{len(requests)} {threading.get_ident()}\\n")
            delay = float(os.environ.get("ECHO_DELAY", "0"))
            time.sleep(delay)
            responses = []
            for request in requests:
                data = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
                responses.append(pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor("OUT", data),
                    pb_utils.Tensor("DOUBLE", data * 2),
                ]))
            return responses

        def finalize(self):
            with open(os.path.join(self.dir, "finalized"), "a") as f:
                f.write("x")
"""


def _load(repository: Path, name: str, version: str = "1") -> PythonRunner:
    model_dir = repository / name
    config = load_model_config(model_dir / "config.pbtxt", default_name=name)
    return PythonRunner(config, version, model_dir / version / "model.py", model_dir=model_dir)


def _echo(repository: Path, name: str = "echo", extra: str = "", model: str = ECHO_MODEL) -> Path:
    return write_model(
        repository, name, ECHO_CONFIG.format(name=name, extra=extra), {"1/model.py": model}
    )


def _ints(*rows: list[int]) -> npt.NDArray[Any]:
    return np.array(rows, dtype=np.int32)


def _text(*items: bytes) -> npt.NDArray[Any]:
    return np.array([[item] for item in items], dtype=object)


def test_text_stats(built_repository: Path) -> None:
    runner = _load(built_repository, "text_stats")
    assert runner.metadata.backend == "python"
    assert runner.metadata.platform == "python"
    assert runner.metadata.inputs == (TensorSpec("TEXT", "BYTES", (-1, 1)),)
    assert runner.metadata.outputs == (
        TensorSpec("UPPER", "BYTES", (-1, 1)),
        TensorSpec("LENGTH", "INT32", (-1, 1)),
    )
    texts = ["héllo wörld", "", "straße", "日本語"]
    good = _text(*(t.encode() for t in texts))
    report = runner.infer(
        [
            InferRequest({"TEXT": good}),
            InferRequest({"TEXT": _text(b"ok", b"\xff\xfe")}),
            InferRequest({"TEXT": _text(b"abc")}, outputs=("LENGTH",)),
        ]
    )
    assert report.executions == 1, "all requests go to one execute() call"
    first = report.responses[0].outputs
    assert first["UPPER"].reshape(-1).tolist() == [t.upper().encode() for t in texts]
    assert first["LENGTH"].dtype == np.int32
    assert first["LENGTH"].reshape(-1).tolist() == [len(t) for t in texts]
    assert first["LENGTH"].shape == (4, 1)
    error = report.responses[1].error
    assert error is not None
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert "not valid UTF-8" in error.message
    assert list(report.responses[2].outputs) == ["LENGTH"]
    assert report.rows == 5
    runner.close()


def test_initialize_gets_tritons_args(tmp_path: Path) -> None:
    model_dir = _echo(tmp_path, extra="instance_group [ { count: 2 kind: KIND_CPU } ]")
    runner = _load(tmp_path, "echo")
    names = sorted(p.name for p in (model_dir / "1").glob("init-*"))
    assert names == ["init-echo_0_0", "init-echo_0_1"]
    args = json.loads((model_dir / "1" / "init-echo_0_0").read_text())
    assert set(args) == {
        "model_config",
        "model_instance_kind",
        "model_instance_name",
        "model_instance_device_id",
        "model_repository",
        "model_version",
        "model_name",
    }
    assert args["model_name"] == "echo"
    assert args["model_version"] == "1"
    assert args["model_instance_kind"] == "CPU"
    assert args["model_instance_device_id"] == "0"
    assert args["model_repository"] == str(model_dir)
    config = json.loads(args["model_config"])
    assert config["max_batch_size"] == 4
    assert pb_utils.get_output_config_by_name(config, "DOUBLE") == {
        "name": "DOUBLE",
        "data_type": "TYPE_INT32",
        "dims": [2],
        "is_shape_tensor": False,
        "label_filename": "",
    }
    runner.close()
    assert (model_dir / "1" / "finalized").read_text() == "xx", "finalize once per instance"


def test_named_instance_groups(tmp_path: Path) -> None:
    model_dir = _echo(tmp_path, extra='instance_group [ { name: "g" count: 1 }, { count: 1 } ]')
    _load(tmp_path, "echo").close()
    assert sorted(p.name for p in (model_dir / "1").glob("init-*")) == [
        "init-echo_1_0",
        "init-g_0",
    ]


def test_validation_and_requested_outputs(tmp_path: Path) -> None:
    _echo(tmp_path)
    runner = _load(tmp_path, "echo")
    report = runner.infer(
        [
            InferRequest({"IN": _ints([1, 2])}, outputs=("DOUBLE",)),
            InferRequest({"IN": np.zeros((1, 3), np.int32)}),
            InferRequest({"IN": _ints([3, 4], [5, 6])}),
        ]
    )
    assert list(report.responses[0].outputs) == ["DOUBLE"]
    assert report.responses[0].outputs["DOUBLE"].tolist() == [[2, 4]]
    error = report.responses[1].error
    assert error is not None
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert report.responses[2].outputs["OUT"].tolist() == [[3, 4], [5, 6]]
    assert (report.rows, report.executions) == (3, 1)
    all_invalid = runner.infer([InferRequest({})])
    assert all_invalid.executions == 0
    assert all_invalid.responses[0].error is not None
    runner.close()


MODEL_TEMPLATE = """
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
{body}
"""


def _custom(tmp_path: Path, body: str, name: str = "custom") -> PythonRunner:
    indented = "\n".join(" " * 12 + line for line in body.strip().splitlines())
    _echo(tmp_path, name=name, model=MODEL_TEMPLATE.format(body=indented))
    return _load(tmp_path, name)


def _one_request() -> list[InferRequest]:
    return [InferRequest({"IN": _ints([1, 2])})]


def test_execute_exception_fails_the_call(tmp_path: Path) -> None:
    runner = _custom(tmp_path, 'raise ValueError("model exploded")')
    with pytest.raises(InternalError, match="raised ValueError: model exploded"):
        runner.infer(_one_request())
    runner.close()  # no finalize defined: fine


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("return None", "must return a list of 1 InferenceResponse, got None"),
        ("return []", "got 0 items"),
    ],
)
def test_wrong_number_of_responses(tmp_path: Path, body: str, fragment: str) -> None:
    runner = _custom(tmp_path, body)
    with pytest.raises(InternalError, match=fragment):
        runner.infer(_one_request())


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ('return ["nope"]', ErrorCode.INTERNAL, "returned str where an InferenceResponse"),
        (
            'return [pb_utils.InferenceResponse([], error=pb_utils.TritonError("bad"))]',
            ErrorCode.INTERNAL,
            "bad",
        ),
        (
            "return [pb_utils.InferenceResponse([], pb_utils.TritonError("
            '"gone", pb_utils.TritonError.NOT_FOUND))]',
            ErrorCode.NOT_FOUND,
            "gone",
        ),
        (
            "return [pb_utils.InferenceResponse([], pb_utils.TritonError("
            '"busy", pb_utils.TritonError.UNAVAILABLE))]',
            ErrorCode.UNAVAILABLE,
            "busy",
        ),
        (
            "return [pb_utils.InferenceResponse([], pb_utils.TritonError("
            '"no", pb_utils.TritonError.UNSUPPORTED))]',
            ErrorCode.UNSUPPORTED,
            "no",
        ),
        (
            "return [pb_utils.InferenceResponse("
            '[pb_utils.Tensor("OUT", np.zeros(2, np.complex64))])]',
            ErrorCode.INTERNAL,
            "complex64",
        ),
    ],
)
def test_per_response_errors(tmp_path: Path, body: str, code: ErrorCode, fragment: str) -> None:
    runner = _custom(tmp_path, body)
    report = runner.infer(_one_request())
    error = report.responses[0].error
    assert error is not None
    assert error.code is code
    assert fragment in error.message
    assert report.rows == 0


def test_missing_requested_output(tmp_path: Path) -> None:
    runner = _custom(
        tmp_path,
        'return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.zeros((1, 2), np.int32))])]',
    )
    report = runner.infer([InferRequest({"IN": _ints([1, 2])}, outputs=("OUT", "DOUBLE"))])
    error = report.responses[0].error
    assert error is not None
    assert "did not return requested output(s) DOUBLE" in error.message


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ("raise ImportError('no such package')", "importing .* raised ImportError"),
        ("x = 1", "does not define class TritonPythonModel"),
        (
            "class TritonPythonModel:\n"
            "    def initialize(self, args):\n"
            "        raise RuntimeError('no')",
            "initialize\\(\\) of model 'broken' raised RuntimeError: no",
        ),
    ],
)
def test_load_failures(tmp_path: Path, model: str, fragment: str) -> None:
    _echo(tmp_path, name="broken", model=model)
    modules_before = set(sys.modules)
    with pytest.raises(LoadFailedError, match=fragment) as caught:
        _load(tmp_path, "broken")
    assert caught.value.model == "broken"
    assert not any(m.startswith("inferneo_model_broken") for m in set(sys.modules) - modules_before)


def test_initialize_failure_finalizes_instances_already_initialized(tmp_path: Path) -> None:
    model = """
        import os

        class TritonPythonModel:
            def initialize(self, args):
                if args["model_instance_name"].endswith("_1"):
                    raise RuntimeError("second instance fails")

            def finalize(self):
                with open(os.path.join(os.path.dirname(__file__), "finalized"), "a") as f:
                    f.write("x")
    """
    model_dir = _echo(tmp_path, extra="instance_group { count: 2 }", model=model)
    with pytest.raises(LoadFailedError, match="second instance fails"):
        _load(tmp_path, "echo")
    assert (model_dir / "1" / "finalized").read_text() == "x"


def test_failing_finalize_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = """
        class TritonPythonModel:
            def finalize(self):
                raise RuntimeError("finalize broke")
    """
    _echo(tmp_path, model=model)
    _load(tmp_path, "echo").close()
    assert "finalize broke" in caplog.text


def _infer_in_threads(runner: PythonRunner, count: int) -> tuple[list[threading.Thread], list[str]]:
    outcomes: list[str] = []

    def call() -> None:
        try:
            runner.infer(_one_request())
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, outcomes


def test_close_waits_for_execute_and_refuses_queued_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECHO_DELAY", "0.3")
    model_dir = _echo(tmp_path)
    runner = _load(tmp_path, "echo")
    started = time.monotonic()
    threads, outcomes = _infer_in_threads(runner, 2)
    time.sleep(0.1)  # one call runs execute, the other waits for the single instance
    runner.close()
    assert time.monotonic() - started >= 0.25, "close() waits for the execute in progress"
    assert (model_dir / "1" / "finalized").read_text() == "x"
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ModelNotReadyError", "ok"]
    assert len((model_dir / "1" / "executions").read_text().splitlines()) == 1
    with pytest.raises(ModelNotReadyError):
        runner.infer(_one_request())


def test_one_execute_at_a_time_per_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECHO_DELAY", "0.15")
    _echo(tmp_path)
    runner = _load(tmp_path, "echo")
    started = time.monotonic()
    threads, outcomes = _infer_in_threads(runner, 2)
    for thread in threads:
        thread.join()
    assert outcomes == ["ok", "ok"]
    assert time.monotonic() - started >= 0.3
    runner.close()


def test_two_instances_run_in_parallel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECHO_DELAY", "0.3")
    _echo(tmp_path, extra="instance_group { count: 2 }")
    runner = _load(tmp_path, "echo")
    started = time.monotonic()
    threads, outcomes = _infer_in_threads(runner, 2)
    for thread in threads:
        thread.join()
    assert outcomes == ["ok", "ok"]
    assert time.monotonic() - started < 0.55
    runner.close()


# -- the triton_python_backend_utils shim -----------------------------------------------------


def test_shim_is_importable_under_tritons_name() -> None:
    import triton_python_backend_utils

    # Inside the worker the name is the shim itself, whatever is on sys.path.
    assert triton_python_backend_utils is pb_utils


def test_top_level_module_reexports_the_shim() -> None:
    spec = importlib.util.spec_from_file_location(
        "tpbu_file", WORKER_DIR / "triton_python_backend_utils.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.__all__ == pb_utils.__all__
    for name in pb_utils.__all__:
        assert getattr(module, name) is getattr(pb_utils, name)


def test_tensor() -> None:
    array = np.arange(4, dtype=np.float32)
    tensor = pb_utils.Tensor("x", array)
    assert (tensor.name(), tensor.shape(), tensor.is_cpu()) == ("x", [4], True)
    assert tensor.as_numpy() is array
    assert tensor.triton_dtype() == 11
    with pytest.raises(pb_utils.TritonModelException, match=r"np\.object_"):
        pb_utils.Tensor("s", np.array(["a"]))
    with pytest.raises(pb_utils.TritonModelException, match="numpy array"):
        pb_utils.Tensor("l", [1, 2])  # type: ignore[arg-type]


def test_request_and_response() -> None:
    a = pb_utils.Tensor("a", np.zeros(1))
    request = pb_utils.InferenceRequest(
        inputs=[a], requested_output_names=["o"], request_id="r1", model_name="m"
    )
    assert request.inputs() == [a]
    assert request.requested_output_names() == ["o"]
    assert (request.request_id(), request.correlation_id(), request.flags()) == ("r1", 0, 0)
    assert request.parameters() == "{}"
    assert not request.is_cancelled()
    assert pb_utils.get_input_tensor_by_name(request, "a") is a
    assert pb_utils.get_input_tensor_by_name(request, "b") is None
    for call in (request.exec, request.get_response_sender):
        with pytest.raises(pb_utils.TritonModelException, match="not supported"):
            call()
    with pytest.raises(pb_utils.TritonModelException, match="BLS"):
        __import__("asyncio").run(request.async_exec())

    response = pb_utils.InferenceResponse(output_tensors=[a])
    assert response.output_tensors() == [a]
    assert not response.has_error()
    assert response.error() is None
    assert pb_utils.get_output_tensor_by_name(response, "a") is a
    assert pb_utils.get_output_tensor_by_name(response, "z") is None
    failed = pb_utils.InferenceResponse([], error=pb_utils.TritonError("bad"))
    assert failed.has_error()
    error = failed.error()
    assert error is not None
    assert (error.message(), error.code(), str(error)) == (
        "bad",
        pb_utils.TritonError.INTERNAL,
        "bad",
    )
    assert "bad" in repr(error)
    with pytest.raises(pb_utils.TritonModelException, match="must be a list"):
        pb_utils.InferenceResponse(output_tensors=(a,))  # type: ignore[arg-type]
    assert pb_utils.TritonModelException("m").message() == "m"


def test_type_helpers() -> None:
    config = {"input": [{"name": "A", "data_type": "TYPE_FP16"}], "output": []}
    assert pb_utils.get_input_config_by_name(config, "A") == {"name": "A", "data_type": "TYPE_FP16"}
    assert pb_utils.get_input_config_by_name(config, "B") is None
    assert pb_utils.get_output_config_by_name({}, "A") is None
    assert pb_utils.triton_string_to_numpy("TYPE_STRING") is np.object_
    assert pb_utils.triton_string_to_numpy("TYPE_BOOL") is np.bool_
    assert pb_utils.triton_to_numpy_type(8) is np.int32
    assert pb_utils.triton_to_numpy_type(99) is None
    assert pb_utils.numpy_to_triton_type(np.float32) == 11
    assert pb_utils.numpy_to_triton_type(np.dtype(np.bool_)) == 1
    assert pb_utils.numpy_to_triton_type(np.object_) == 13
    assert pb_utils.numpy_to_triton_type(np.bytes_) == 13
    assert pb_utils.numpy_to_triton_type(np.complex64) is None


def test_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    pb_utils.Logger.log_info("i")
    pb_utils.Logger.log_warn("w")
    pb_utils.Logger.log_error("e")
    pb_utils.Logger.log_verbose("v")
    assert [r.getMessage() for r in caplog.records] == ["i", "w", "e", "v"]
