"""The whole-batch form of ``infer``: one tensor per input holding every request's rows, ``rows``
per request, one tensor per output back (docs/worker-protocol.md)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from onnx import TensorProto, helper

from conftest import (
    Orchestrator,
    ServerThread,
    bytes_tensor_data,
    ort_outputs,
    random_features,
    write_model,
    write_onnx,
)
from inferneo_worker.errors import ErrorCode, InternalError, InvalidArgumentError, WorkerError
from inferneo_worker.model_config import ModelConfig, load_model_config, parse_text_format
from inferneo_worker.model_host import ModelHost
from inferneo_worker.runners import BatchRequest, InferRequest
from inferneo_worker.runners.onnx_runner import OnnxRunner
from inferneo_worker.runners.python_runner import PythonRunner

StartServer = Callable[..., ServerThread]

_DTYPES = {"FP32": "<f4", "INT64": "<i8", "INT32": "<i4"}


def _tensor(name: str, array: npt.NDArray[Any], datatype: str = "FP32") -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype,
        "shape": list(array.shape),
        "data": np.ascontiguousarray(array, dtype=_DTYPES[datatype]).tobytes(),
    }


def _text(*rows: bytes) -> dict[str, Any]:
    return {
        "name": "TEXT",
        "datatype": "BYTES",
        "shape": [len(rows), 1],
        "data": bytes_tensor_data(rows),
    }


def _decode(tensor: dict[str, Any]) -> npt.NDArray[Any]:
    return np.frombuffer(tensor["data"], dtype=_DTYPES[tensor["datatype"]]).reshape(tensor["shape"])


def _onnx_runner(repository: Path, model: str, version: str = "1") -> OnnxRunner:
    config = load_model_config(repository / model / "config.pbtxt", default_name=model)
    return OnnxRunner(
        config, version, repository / model / version / "model.onnx", intra_op_threads=1
    )


def _python_runner(repository: Path, name: str) -> PythonRunner:
    model_dir = repository / name
    config = load_model_config(model_dir / "config.pbtxt", default_name=name)
    return PythonRunner(config, "1", model_dir / "1" / "model.py", model_dir=model_dir)


def _split(array: npt.NDArray[Any], rows: list[int]) -> list[npt.NDArray[Any]]:
    return np.split(array, np.cumsum(rows)[:-1])


# -- ONNX runner ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_onnx_batch_matches_onnx_runtime_and_the_requests_form(
    built_repository: Path, version: str
) -> None:
    runner = _onnx_runner(built_repository, "classifier", version)
    rows = [4, 1, 2]
    features = random_features(sum(rows), 16, seed=21)
    report = runner.infer_batch(BatchRequest({"features": features}, tuple(rows)))
    assert report.error is None
    assert (report.executions, report.rows) == (1, 7)
    assert report.compute_ns > 0
    assert list(report.outputs) == ["probabilities", "label"]
    expected = ort_outputs(
        built_repository / "classifier" / version / "model.onnx", {"features": features}
    )
    for name in ("probabilities", "label"):
        np.testing.assert_array_equal(report.outputs[name], expected[name])
    # The same rows as separate requests run as the same one batch: the very same numbers.
    separate = runner.infer([InferRequest({"features": part}) for part in _split(features, rows)])
    for name in ("probabilities", "label"):
        np.testing.assert_array_equal(
            np.concatenate([r.outputs[name] for r in separate.responses]), report.outputs[name]
        )


def test_onnx_batch_inputs_are_not_copied(
    built_repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _onnx_runner(built_repository, "mlp_tiny")
    received = np.frombuffer(random_features(21, 256, seed=3).tobytes(), dtype="<f4")
    batch = received.reshape(21, 256)
    fed: list[npt.NDArray[Any]] = []
    session = runner._session
    original = session.run

    def run(names: list[str], feeds: dict[str, npt.NDArray[Any]]) -> Any:
        fed.extend(feeds.values())
        return original(names, feeds)

    monkeypatch.setattr(session, "run", run)
    report = runner.infer_batch(BatchRequest({"INPUT0": batch}, (1,) * 21))
    assert fed[0] is batch, "the received view goes to ONNX Runtime as it is"
    assert report.outputs["OUTPUT0"].shape == (21, 10)


def test_onnx_batch_requested_outputs(built_repository: Path) -> None:
    runner = _onnx_runner(built_repository, "classifier")
    features = random_features(3, 16, seed=5)
    report = runner.infer_batch(
        BatchRequest({"features": features}, (2, 1), outputs=("label", "probabilities", "label"))
    )
    assert list(report.outputs) == ["label", "probabilities"], "in the order asked, once each"
    only = runner.infer_batch(BatchRequest({"features": features}, (3,), outputs=("label",)))
    assert list(only.outputs) == ["label"]
    np.testing.assert_array_equal(only.outputs["label"], report.outputs["label"])


def test_onnx_batch_strings_and_reshape(tmp_path: Path) -> None:
    model_file = write_onnx(
        tmp_path / "strings.onnx",
        [helper.make_node("Identity", ["S"], ["T"]), helper.make_node("Identity", ["X"], ["Y"])],
        [
            helper.make_tensor_value_info("S", TensorProto.STRING, ["b", 1]),
            helper.make_tensor_value_info("X", TensorProto.FLOAT, ["b", 2, 2]),
        ],
        [
            helper.make_tensor_value_info("T", TensorProto.STRING, ["b", 1]),
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["b", 2, 2]),
        ],
    )
    config = ModelConfig.from_dict(
        parse_text_format(
            """
            max_batch_size: 4
            input [ { name: "S" data_type: TYPE_STRING dims: [ 1 ] },
                    { name: "X" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 2, 2 ] } } ]
            output [ { name: "T" data_type: TYPE_STRING dims: [ 1 ] },
                     { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 2, 2 ] } } ]
            """
        ),
        default_name="strings",
    )
    runner = OnnxRunner(config, "1", model_file, intra_op_threads=1)
    text = np.array([[b"caf\xc3\xa9"], [b"x"], [b"y"]], dtype=object)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    report = runner.infer_batch(BatchRequest({"S": text, "X": x}, (2, 1)))
    assert report.outputs["T"].tolist() == [["café"], ["x"], ["y"]]
    np.testing.assert_array_equal(report.outputs["Y"], x)
    assert report.outputs["Y"].shape == (3, 4)
    bad = np.array([[b"\xff"]], dtype=object)
    with pytest.raises(InvalidArgumentError, match="UTF-8"):
        runner.infer_batch(BatchRequest({"S": bad, "X": x[:1]}, (1,)))


def test_onnx_batch_output_without_batch_dimension_is_internal(tmp_path: Path) -> None:
    model_file = write_onnx(
        tmp_path / "total.onnx",
        [helper.make_node("ReduceSum", ["X"], ["Y"], keepdims=0)],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["b", 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [])],
    )
    config = ModelConfig.from_dict(parse_text_format("max_batch_size: 8"), default_name="total")
    runner = OnnxRunner(config, "1", model_file, intra_op_threads=1)
    with pytest.raises(InternalError, match="no batch dimension"):
        runner.infer_batch(BatchRequest({"X": np.ones((2, 4), np.float32)}, (1, 1)))


def test_onnx_batch_after_close_is_not_ready(built_repository: Path) -> None:
    runner = _onnx_runner(built_repository, "classifier")
    runner.close()
    with pytest.raises(WorkerError) as caught:
        runner.infer_batch(BatchRequest({"features": random_features(1, 16, seed=1)}, (1,)))
    assert caught.value.code is ErrorCode.MODEL_NOT_READY


# -- validation (shared by the runners) -----------------------------------------------------------


def _features(rows: int, width: int = 16, dtype: Any = np.float32) -> npt.NDArray[Any]:
    return np.zeros((rows, width), dtype=dtype)


@pytest.mark.parametrize(
    ("batch", "fragment"),
    [
        (
            BatchRequest({"features": _features(3), "extra": _features(3)}, (3,)),
            "unexpected input 'extra'",
        ),
        (BatchRequest({}, (1,)), "missing input(s) features"),
        (
            BatchRequest({"features": _features(2, dtype=np.float64)}, (2,)),
            "input 'features' has datatype FP64, the model expects FP32",
        ),
        (
            BatchRequest({"features": _features(2, width=15)}, (1, 1)),
            "input 'features' has shape [2, 15], the model expects [2, 16]",
        ),
        (
            BatchRequest({"features": _features(3)}, (1, 1)),
            "input 'features' has shape [3, 16]: its first dimension must be the batch's 2 rows",
        ),
        (
            BatchRequest({"features": np.zeros((), np.float32)}, (1,)),
            "input 'features' has shape []: its first dimension must be the batch's 1 rows",
        ),
        (BatchRequest({"features": _features(1)}, (1, 0)), "batch.rows[1] is 0"),
        (BatchRequest({"features": _features(1)}, (2, -1)), "batch.rows[1] is -1"),
        (BatchRequest({"features": _features(1)}, ()), "at least one request"),
        (
            BatchRequest({"features": _features(65)}, (60, 5)),
            "the batch has 65 rows (the sum of batch.rows); the model accepts 1 to 64",
        ),
        (
            BatchRequest({"features": _features(1)}, (1,), outputs=("nope",)),
            "unknown requested output 'nope'",
        ),
    ],
)
def test_batch_validation(built_repository: Path, batch: BatchRequest, fragment: str) -> None:
    runner = _onnx_runner(built_repository, "classifier")
    with pytest.raises(InvalidArgumentError) as caught:
        runner.infer_batch(batch)
    assert fragment in caught.value.message
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT


def test_batch_form_needs_a_batching_model(tmp_path: Path) -> None:
    model_file = write_onnx(
        tmp_path / "id.onnx",
        [helper.make_node("Identity", ["X"], ["Y"])],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
    )
    config = ModelConfig.from_dict(parse_text_format(""), default_name="id")
    runner = OnnxRunner(config, "1", model_file, intra_op_threads=1)
    with pytest.raises(InvalidArgumentError, match="needs a model that batches"):
        runner.infer_batch(BatchRequest({"X": np.zeros(2, np.float32)}, (2,)))


# -- Python runner --------------------------------------------------------------------------------

_ECHO_CONFIG = """
    name: "{name}"
    backend: "python"
    max_batch_size: {max_batch_size}
    input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ 2 ] }} ]
    output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ 2 ] }},
             {{ name: "DOUBLE" data_type: TYPE_INT32 dims: [ 2 ] }} ]
"""

# Keeps the arrays and requested outputs it was given, answers each request with OUT = IN and
# DOUBLE = 2 × IN; a row whose first value is negative makes its response one of the misbehaviours
# below, chosen by that value.
_ECHO_MODEL = """
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def initialize(self, args):
            self.seen = []
            self.requested = []

        def execute(self, requests):
            responses = []
            for request in requests:
                data = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
                self.seen.append(data)
                self.requested.append(request.requested_output_names())
                code = int(data[0, 0])
                outputs = [pb_utils.Tensor("OUT", data), pb_utils.Tensor("DOUBLE", data * 2)]
                if code == -1:
                    error = pb_utils.TritonError(
                        "row -1 is refused", pb_utils.TritonError.INVALID_ARG
                    )
                    responses.append(pb_utils.InferenceResponse([], error=error))
                elif code == -2:
                    responses.append(
                        pb_utils.InferenceResponse([], error=pb_utils.TritonError("model bug"))
                    )
                elif code == -3:  # one row too many
                    responses.append(pb_utils.InferenceResponse(
                        [pb_utils.Tensor("OUT", np.concatenate([data, data])), outputs[1]]
                    ))
                elif code == -4:  # a scalar
                    responses.append(pb_utils.InferenceResponse(
                        [pb_utils.Tensor("OUT", np.ones((), np.int32)), outputs[1]]
                    ))
                elif code == -5:  # another dtype than the other responses
                    responses.append(pb_utils.InferenceResponse(
                        [pb_utils.Tensor("OUT", data.astype(np.int64)), outputs[1]]
                    ))
                elif code == -6:  # OUT missing
                    responses.append(pb_utils.InferenceResponse([outputs[1]]))
                elif code == -7:  # other non-batch dimensions
                    wide = np.concatenate([data, data], axis=1)
                    responses.append(
                        pb_utils.InferenceResponse([pb_utils.Tensor("OUT", wide), outputs[1]])
                    )
                elif code == -8:
                    responses.append("not a response")
                else:
                    responses.append(pb_utils.InferenceResponse(outputs))
            return responses
"""


def _echo(repository: Path, name: str = "echo", max_batch_size: int = 8) -> Path:
    return write_model(
        repository,
        name,
        _ECHO_CONFIG.format(name=name, max_batch_size=max_batch_size),
        {"1/model.py": _ECHO_MODEL},
    )


def test_python_batch_is_split_into_views_and_put_back_together(tmp_path: Path) -> None:
    _echo(tmp_path)
    runner = _python_runner(tmp_path, "echo")
    batch = np.arange(12, dtype=np.int32).reshape(6, 2)
    report = runner.infer_batch(BatchRequest({"IN": batch}, (3, 1, 2)))
    assert report.error is None
    assert (report.executions, report.rows) == (1, 6)
    assert list(report.outputs) == ["OUT", "DOUBLE"]
    np.testing.assert_array_equal(report.outputs["OUT"], batch)
    np.testing.assert_array_equal(report.outputs["DOUBLE"], batch * 2)
    model = runner._free[0].model
    assert [part.shape[0] for part in model.seen] == [3, 1, 2]
    assert all(np.shares_memory(part, batch) for part in model.seen), "views, not copies"
    np.testing.assert_array_equal(np.concatenate(model.seen), batch)

    model.seen.clear()
    one = runner.infer_batch(BatchRequest({"IN": batch[:2]}, (2,), outputs=("DOUBLE",)))
    assert list(one.outputs) == ["DOUBLE"]
    np.testing.assert_array_equal(one.outputs["DOUBLE"], batch[:2] * 2)
    assert model.requested[-1] == ["DOUBLE"]
    runner.close()


def test_python_batch_matches_the_requests_form(built_repository: Path) -> None:
    runner = _python_runner(built_repository, "text_stats")
    rows = [b"gr\xc3\xbc\xc3\x9fe", b"ok", b"abc"]
    text = np.array([[row] for row in rows], dtype=object)
    report = runner.infer_batch(BatchRequest({"TEXT": text}, (2, 1)))
    separate = runner.infer([InferRequest({"TEXT": text[:2]}), InferRequest({"TEXT": text[2:]})])
    for name in ("UPPER", "LENGTH"):
        expected = np.concatenate([r.outputs[name] for r in separate.responses])
        np.testing.assert_array_equal(report.outputs[name], expected)
    assert report.outputs["UPPER"].reshape(-1).tolist() == ["GRÜSSE".encode(), b"OK", b"ABC"]
    runner.close()


@pytest.mark.parametrize(
    ("code", "error_code", "fragment"),
    [
        (-1, ErrorCode.INVALID_ARGUMENT, "row -1 is refused"),
        (-2, ErrorCode.INTERNAL, "model bug"),
        (-3, ErrorCode.INTERNAL, "returned output 'OUT' of shape [2, 2] for request 1"),
        (-4, ErrorCode.INTERNAL, "returned output 'OUT' of shape [] for request 1"),
        (-5, ErrorCode.INTERNAL, "returned a int64 array for output 'OUT' for request 1"),
        (-6, ErrorCode.INTERNAL, "returned no output 'OUT' for request 1"),
        (-7, ErrorCode.INTERNAL, "returned outputs 'OUT' that cannot be put back together"),
        (-8, ErrorCode.INTERNAL, "returned str where an InferenceResponse was expected"),
    ],
)
def test_python_batch_fails_as_a_whole(
    tmp_path: Path, code: int, error_code: ErrorCode, fragment: str
) -> None:
    _echo(tmp_path)
    runner = _python_runner(tmp_path, "echo")
    batch = np.array([[1, 2], [code, 0], [5, 6]], dtype=np.int32)
    report = runner.infer_batch(BatchRequest({"IN": batch}, (1, 1, 1)))
    assert report.error is not None
    assert report.error.code is error_code
    assert fragment in report.error.message
    assert (report.executions, report.rows, report.outputs) == (1, 0, {})
    runner.close()


def test_python_batch_requested_output_missing_is_internal(tmp_path: Path) -> None:
    _echo(tmp_path)
    runner = _python_runner(tmp_path, "echo")
    batch = np.array([[1, 2], [-6, 0]], dtype=np.int32)
    report = runner.infer_batch(BatchRequest({"IN": batch}, (1, 1), outputs=("OUT",)))
    assert report.error is not None
    assert "did not return requested output(s) OUT" in report.error.message


def test_python_batch_validation_and_execute_failure(tmp_path: Path) -> None:
    _echo(tmp_path)
    _echo(tmp_path, "flat", max_batch_size=0)
    write_model(
        tmp_path,
        "raises",
        _ECHO_CONFIG.format(name="raises", max_batch_size=4),
        {
            "1/model.py": textwrap.dedent(
                """
                class TritonPythonModel:
                    def execute(self, requests):
                        raise RuntimeError("boom")
                """
            )
        },
    )
    runner = _python_runner(tmp_path, "echo")
    with pytest.raises(InvalidArgumentError, match="first dimension must be the batch's 2 rows"):
        runner.infer_batch(BatchRequest({"IN": np.zeros((3, 2), np.int32)}, (1, 1)))
    with pytest.raises(InvalidArgumentError, match="the model accepts 1 to 8"):
        runner.infer_batch(BatchRequest({"IN": np.zeros((9, 2), np.int32)}, (9,)))
    with pytest.raises(InvalidArgumentError, match="needs a model that batches"):
        _python_runner(tmp_path, "flat").infer_batch(
            BatchRequest({"IN": np.zeros((1, 2), np.int32)}, (1,))
        )
    with pytest.raises(InternalError, match="raised RuntimeError: boom"):
        _python_runner(tmp_path, "raises").infer_batch(
            BatchRequest({"IN": np.zeros((1, 2), np.int32)}, (1,))
        )
    runner.close()
    with pytest.raises(WorkerError) as caught:
        runner.infer_batch(BatchRequest({"IN": np.zeros((1, 2), np.int32)}, (1,)))
    assert caught.value.code is ErrorCode.MODEL_NOT_READY


# -- model host: statistics -----------------------------------------------------------------------


def test_host_counts_batches_like_requests(model_repository: Path) -> None:
    _echo(model_repository)
    host = ModelHost(model_repository)
    host.load("classifier", "1")
    host.load("echo", "1")
    outputs = host.infer_batch(
        "classifier", "1", BatchRequest({"features": random_features(5, 16, seed=8)}, (2, 3))
    )
    assert outputs["label"].shape == (5, 1)
    host.infer("classifier", "1", [InferRequest({"features": random_features(2, 16, seed=9)})])
    with pytest.raises(InvalidArgumentError):
        host.infer_batch("classifier", "1", BatchRequest({"features": _features(2)}, (1,)))
    # A model-made error fails the call after the model ran: an execution, no rows.
    with pytest.raises(WorkerError, match="row -1 is refused"):
        host.infer_batch(
            "echo", "1", BatchRequest({"IN": np.array([[-1, 0], [1, 1]], np.int32)}, (1, 1))
        )
    host.infer_batch("echo", "1", BatchRequest({"IN": np.ones((3, 2), np.int32)}, (1, 2)))
    stats = {(s.model, s.inference_count, s.execution_count) for s in host.stats()}
    assert stats == {("classifier", 7, 2), ("echo", 3, 2)}
    with pytest.raises(WorkerError) as caught:
        host.infer_batch("classifier", "2", BatchRequest({}, (1,)))
    assert caught.value.code is ErrorCode.MODEL_NOT_READY
    host.close()


# -- over the wire --------------------------------------------------------------------------------


def _infer_batch(
    orchestrator: Orchestrator,
    identity: bytes,
    model: str,
    inputs: list[dict[str, Any]],
    rows: list[int],
    outputs: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    batch: dict[str, Any] = {"inputs": inputs, "rows": rows, **extra}
    if outputs is not None:
        batch["outputs"] = outputs
    return orchestrator.call(
        identity, {"type": "infer", "model": model, "version": "1", "batch": batch}
    )


def test_batch_form_over_the_wire(
    model_repository: Path, orchestrator: Orchestrator, start_server: StartServer
) -> None:
    start_server(model_repository)
    identity, _ = orchestrator.handshake()
    for model in ("classifier", "mlp_tiny", "text_stats"):
        loaded = orchestrator.call(identity, {"type": "load", "model": model, "version": "1"})
        assert loaded["type"] == "result"

    rows = [1] * 21
    parts = [random_features(1, 256, seed=i) for i in range(21)]
    batch = np.concatenate(parts)
    reply = _infer_batch(orchestrator, identity, "mlp_tiny", [_tensor("INPUT0", batch)], rows, [])
    assert reply["type"] == "result"
    assert set(reply) == {"type", "id", "batch"}
    (output,) = reply["batch"]["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("OUTPUT0", "FP32", [21, 10])
    expected = ort_outputs(model_repository / "mlp_tiny/1/model.onnx", {"INPUT0": batch})
    np.testing.assert_array_equal(_decode(output), expected["OUTPUT0"])
    # The requests form gives the same rows, split.
    separate = orchestrator.call(
        identity,
        {
            "type": "infer",
            "model": "mlp_tiny",
            "version": "1",
            "requests": [{"inputs": [_tensor("INPUT0", p)]} for p in parts],
        },
    )
    np.testing.assert_array_equal(
        np.concatenate([_decode(r["outputs"][0]) for r in separate["responses"]]), _decode(output)
    )

    features = random_features(6, 16, seed=4)
    reply = _infer_batch(
        orchestrator, identity, "classifier", [_tensor("features", features)], [3, 2, 1], ["label"]
    )
    assert [t["name"] for t in reply["batch"]["outputs"]] == ["label"]
    expected = ort_outputs(model_repository / "classifier/1/model.onnx", {"features": features})
    label = reply["batch"]["outputs"][0]
    assert label["datatype"] == "INT64"
    np.testing.assert_array_equal(_decode(label), expected["label"])

    text = _infer_batch(orchestrator, identity, "text_stats", [_text(b"ab", b"c\xc3\xa9")], [1, 1])
    upper, length = text["batch"]["outputs"]
    assert upper["data"] == bytes_tensor_data([b"AB", "CÉ".encode()])
    assert _decode(length).reshape(-1).tolist() == [2, 2]
    refused = _infer_batch(orchestrator, identity, "text_stats", [_text(b"ok", b"\xff")], [1, 1])
    assert refused["type"] == "error"
    assert refused["code"] == "INVALID_ARGUMENT"
    assert "TEXT is not valid UTF-8" in refused["message"]

    stats = orchestrator.call(identity, {"type": "stats"})
    counts = {s["model"]: (s["inference_count"], s["execution_count"]) for s in stats["models"]}
    assert counts == {"mlp_tiny": (42, 2), "classifier": (6, 1), "text_stats": (2, 2)}


@pytest.mark.parametrize(
    ("batch", "code", "fragment"),
    [
        ("nope", "INVALID_ARGUMENT", "'batch' must be a map"),
        ({"inputs": [], "rows": "1"}, "INVALID_ARGUMENT", "batch.rows must be a list of integers"),
        ({"inputs": [], "rows": [1, True]}, "INVALID_ARGUMENT", "batch.rows must be a list"),
        ({"inputs": {}, "rows": [1]}, "INVALID_ARGUMENT", "batch.inputs must be a list"),
        (
            {"inputs": [], "rows": [1], "outputs": "label"},
            "INVALID_ARGUMENT",
            "batch.outputs must be a list of output names",
        ),
        (
            {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 16]}], "rows": [1]},
            "INVALID_ARGUMENT",
            "tensor 'features': 'data' must be MessagePack bin",
        ),
        (
            {"inputs": [_tensor("features", _features(1))] * 2, "rows": [1]},
            "INVALID_ARGUMENT",
            "batch: input 'features' is given twice",
        ),
        (
            {"inputs": [[1]], "rows": [1]},
            "INVALID_ARGUMENT",
            "batch.inputs[0]: a tensor must be a map",
        ),
        (
            {"inputs": [_tensor("features", _features(3))], "rows": [1, 1]},
            "INVALID_ARGUMENT",
            "first dimension must be the batch's 2 rows",
        ),
        (
            {"inputs": [_tensor("features", _features(1))], "rows": [1, 0]},
            "INVALID_ARGUMENT",
            "batch.rows[1] is 0",
        ),
        (
            {"inputs": [_tensor("features", _features(70))], "rows": [70]},
            "INVALID_ARGUMENT",
            "the model accepts 1 to 64",
        ),
        (
            {"inputs": [_tensor("features", _features(1), "INT32")], "rows": [1]},
            "INVALID_ARGUMENT",
            "datatype INT32, the model expects FP32",
        ),
        (
            {"inputs": [_tensor("pixels", _features(1))], "rows": [1]},
            "INVALID_ARGUMENT",
            "unexpected input 'pixels'",
        ),
        (
            {"inputs": [_tensor("features", _features(1, width=8))], "rows": [1]},
            "INVALID_ARGUMENT",
            "has shape [1, 8], the model expects [1, 16]",
        ),
    ],
)
def test_batch_form_errors_over_the_wire(
    model_repository: Path,
    orchestrator: Orchestrator,
    start_server: StartServer,
    batch: object,
    code: str,
    fragment: str,
) -> None:
    start_server(model_repository)
    identity, _ = orchestrator.handshake()
    orchestrator.call(identity, {"type": "load", "model": "classifier", "version": "1"})
    reply = orchestrator.call(
        identity, {"type": "infer", "model": "classifier", "version": "1", "batch": batch}
    )
    assert reply["type"] == "error"
    assert reply["code"] == code
    assert fragment in reply["message"]
    stats = orchestrator.call(identity, {"type": "stats"})
    assert stats["models"][0]["inference_count"] == 0
    assert stats["models"][0]["execution_count"] == 0


def test_batch_form_whole_call_errors(
    model_repository: Path, orchestrator: Orchestrator, start_server: StartServer
) -> None:
    start_server(model_repository)
    identity, _ = orchestrator.handshake()
    features = _tensor("features", _features(1))
    both = orchestrator.call(
        identity,
        {
            "type": "infer",
            "model": "classifier",
            "version": "1",
            "requests": [],
            "batch": {"inputs": [features], "rows": [1]},
        },
    )
    assert both["code"] == "INVALID_ARGUMENT"
    assert "'requests' or 'batch', not both" in both["message"]
    not_loaded = _infer_batch(orchestrator, identity, "classifier", [features], [1])
    assert not_loaded["code"] == "MODEL_NOT_READY"
    unknown = _infer_batch(orchestrator, identity, "nope", [features], [1])
    assert unknown["code"] == "NOT_FOUND"
