from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import ort_outputs, random_features, write_onnx
from inferneo_worker.errors import (
    ErrorCode,
    InternalError,
    LoadFailedError,
    ModelNotReadyError,
)
from inferneo_worker.model_config import ModelConfig, load_model_config, parse_text_format
from inferneo_worker.runners import InferRequest, TensorSpec
from inferneo_worker.runners.onnx_runner import OnnxRunner


def _runner(repository: Path, model: str, version: str = "1") -> OnnxRunner:
    config = load_model_config(repository / model / "config.pbtxt", default_name=model)
    return OnnxRunner(
        config, version, repository / model / version / "model.onnx", intra_op_threads=1
    )


def _custom(tmp_path: Path, config_text: str, model_file: Path) -> OnnxRunner:
    config = ModelConfig.from_dict(parse_text_format(config_text), default_name="custom")
    return OnnxRunner(config, "1", model_file, intra_op_threads=2)


def _request(outputs: tuple[str, ...] = (), **inputs: npt.NDArray[Any]) -> InferRequest:
    return InferRequest(inputs=inputs, outputs=outputs)


def test_classifier_metadata(built_repository: Path) -> None:
    metadata = _runner(built_repository, "classifier").metadata
    assert metadata.platform == "onnxruntime_onnx"
    assert metadata.backend == "onnxruntime"
    assert metadata.max_batch_size == 64
    assert metadata.inputs == (TensorSpec("features", "FP32", (-1, 16)),)
    assert metadata.outputs == (
        TensorSpec("probabilities", "FP32", (-1, 3)),
        TensorSpec("label", "INT64", (-1, 1)),
    )


@pytest.mark.parametrize("version", ["1", "2"])
def test_batched_requests_match_onnx_runtime(built_repository: Path, version: str) -> None:
    runner = _runner(built_repository, "classifier", version)
    batches = [random_features(rows, 16, seed=rows) for rows in (1, 5, 3)]
    report = runner.infer([_request(features=b) for b in batches])
    assert report.executions == 1, "requests with the same non-batch shape run as one call"
    assert report.rows == 9
    assert report.compute_ns > 0
    model_file = built_repository / "classifier" / version / "model.onnx"
    for batch, response in zip(batches, report.responses, strict=True):
        assert response.error is None
        expected = ort_outputs(model_file, {"features": batch})
        assert set(response.outputs) == {"probabilities", "label"}
        np.testing.assert_allclose(
            response.outputs["probabilities"], expected["probabilities"], rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(response.outputs["label"], expected["label"])
        assert response.outputs["label"].shape == (batch.shape[0], 1)


def test_versions_differ(built_repository: Path) -> None:
    features = random_features(4, 16, seed=7)
    one = _runner(built_repository, "classifier", "1").infer([_request(features=features)])
    two = _runner(built_repository, "classifier", "2").infer([_request(features=features)])
    assert not np.allclose(
        one.responses[0].outputs["probabilities"], two.responses[0].outputs["probabilities"]
    )


def test_requested_outputs_are_honoured(built_repository: Path) -> None:
    runner = _runner(built_repository, "classifier")
    features = random_features(2, 16, seed=3)
    report = runner.infer(
        [_request(("label",), features=features), _request(("probabilities",), features=features)]
    )
    assert list(report.responses[0].outputs) == ["label"]
    assert list(report.responses[1].outputs) == ["probabilities"]
    assert report.executions == 1


def test_batches_are_cut_at_max_batch_size(built_repository: Path) -> None:
    runner = _runner(built_repository, "classifier")
    batches = [random_features(30, 16, seed=i) for i in range(3)]
    report = runner.infer([_request(features=b) for b in batches])
    assert report.executions == 2
    assert report.rows == 90
    expected = ort_outputs(
        built_repository / "classifier/1/model.onnx", {"features": np.concatenate(batches)}
    )
    got = np.concatenate([r.outputs["probabilities"] for r in report.responses])
    np.testing.assert_allclose(got, expected["probabilities"], rtol=1e-5, atol=1e-6)


def test_wide_and_tiny_models(built_repository: Path) -> None:
    for model, width in (("mlp_wide", 512), ("mlp_tiny", 256)):
        runner = _runner(built_repository, model)
        assert runner.metadata.inputs == (TensorSpec("INPUT0", "FP32", (-1, width)),)
        assert runner.metadata.outputs == (TensorSpec("OUTPUT0", "FP32", (-1, 10)),)
        features = random_features(4, width, seed=width)
        report = runner.infer([_request(INPUT0=features[:1]), _request(INPUT0=features[1:])])
        expected = ort_outputs(built_repository / model / "1/model.onnx", {"INPUT0": features})
        got = np.concatenate([r.outputs["OUTPUT0"] for r in report.responses])
        np.testing.assert_allclose(got, expected["OUTPUT0"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (_request(features=np.zeros((2, 16), dtype=np.float64)), "datatype FP64, the model"),
        (_request(features=np.zeros((2, 15), dtype=np.float32)), r"shape \[2, 15\]"),
        (_request(features=np.zeros((65, 16), dtype=np.float32)), "batch size 65"),
        (_request(features=np.zeros((0, 16), dtype=np.float32)), "batch size 0"),
        (_request(features=np.zeros((), dtype=np.float32)), "needs a batch dimension"),
        (_request(), "missing input"),
        (
            _request(features=np.zeros((1, 16), np.float32), extra=np.zeros(1, np.float32)),
            "unexpected input 'extra'",
        ),
        (_request(("nope",), features=np.zeros((1, 16), np.float32)), "unknown requested output"),
    ],
)
def test_invalid_requests_fail_alone(
    built_repository: Path, request_: InferRequest, fragment: str
) -> None:
    runner = _runner(built_repository, "classifier")
    good = random_features(2, 16, seed=1)
    report = runner.infer([request_, _request(features=good)])
    error = report.responses[0].error
    assert error is not None
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert re.search(fragment, error.message)
    assert report.responses[1].error is None
    assert report.rows == 2


def test_non_batching_model_runs_each_request(tmp_path: Path) -> None:
    one = numpy_helper.from_array(np.ones((2, 3), dtype=np.float32), "one")
    model_file = write_onnx(
        tmp_path / "add.onnx",
        [helper.make_node("Add", ["X", "one"], ["Y"])],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 3])],
        [one],
    )
    # No inputs/outputs in the config: they come from the graph.
    runner = _custom(tmp_path, "max_batch_size: 0", model_file)
    assert runner.metadata.inputs == (TensorSpec("X", "FP32", (2, 3)),)
    assert runner.metadata.outputs == (TensorSpec("Y", "FP32", (2, 3)),)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    report = runner.infer([_request(X=x), _request(X=x * 2)])
    assert report.executions == 2
    assert report.rows == 2
    np.testing.assert_array_equal(report.responses[1].outputs["Y"], x * 2 + 1)


def test_different_non_batch_shapes_run_separately(tmp_path: Path) -> None:
    model_file = write_onnx(
        tmp_path / "sum.onnx",
        [helper.make_node("ReduceSum", ["X", "axes"], ["Y"], keepdims=1)],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["b", "n"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["b", 1])],
        [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")],
    )
    config = """
        max_batch_size: 8
        input { name: "X" data_type: TYPE_FP32 dims: [ -1 ] }
        output { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] }
    """
    runner = _custom(tmp_path, config, model_file)
    a, b, c = np.ones((2, 3), np.float32), np.ones((1, 5), np.float32), np.ones((1, 3), np.float32)
    report = runner.infer([_request(X=a), _request(X=b), _request(X=c)])
    assert report.executions == 2
    assert [r.outputs["Y"].reshape(-1).tolist() for r in report.responses] == [
        [3.0, 3.0],
        [5.0],
        [3.0],
    ]


def test_string_tensors_and_reshape(tmp_path: Path) -> None:
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
    config = """
        max_batch_size: 4
        input [ { name: "S" data_type: TYPE_STRING dims: [ 1 ] },
                { name: "X" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 2, 2 ] } } ]
        output [ { name: "T" data_type: TYPE_STRING dims: [ 1 ] },
                 { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 2, 2 ] } } ]
    """
    runner = _custom(tmp_path, config, model_file)
    assert runner.metadata.inputs[1] == TensorSpec("X", "FP32", (-1, 4))
    text = np.array([[b"caf\xc3\xa9"], [b"x"]], dtype=object)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    bad = np.array([[b"\xff"]], dtype=object)
    report = runner.infer([_request(S=text, X=x), _request(S=bad, X=np.zeros((1, 4), np.float32))])
    assert report.responses[0].outputs["T"].tolist() == [["café"], ["x"]]
    np.testing.assert_array_equal(report.responses[0].outputs["Y"], x)
    error = report.responses[1].error
    assert error is not None
    assert "UTF-8" in error.message


def test_non_batching_reshape(tmp_path: Path) -> None:
    model_file = write_onnx(
        tmp_path / "id.onnx",
        [helper.make_node("Identity", ["X"], ["Y"])],
        [helper.make_tensor_value_info("X", TensorProto.INT32, [2, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [2, 2])],
    )
    config = """
        input { name: "X" data_type: TYPE_INT32 dims: [ 4 ] reshape { shape: [ 2, 2 ] } }
        output { name: "Y" data_type: TYPE_INT32 dims: [ 4 ] reshape { shape: [ 2, 2 ] } }
    """
    runner = _custom(tmp_path, config, model_file)
    x = np.arange(4, dtype=np.int32)
    np.testing.assert_array_equal(runner.infer([_request(X=x)]).responses[0].outputs["Y"], x)


def test_run_failure_fails_the_call(tmp_path: Path) -> None:
    shape = numpy_helper.from_array(np.array([1, 4], dtype=np.int64), "shape")
    model_file = write_onnx(
        tmp_path / "reshape.onnx",
        [helper.make_node("Reshape", ["X", "shape"], ["Y"])],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["b", 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])],
        [shape],
    )
    config = """
        max_batch_size: 8
        input { name: "X" data_type: TYPE_FP32 dims: [ 4 ] }
        output { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] }
    """
    runner = _custom(tmp_path, config, model_file)
    assert runner.infer([_request(X=np.ones((1, 4), np.float32))]).responses[0].error is None
    with pytest.raises(InternalError, match="ONNX Runtime failed running model 'custom'"):
        runner.infer([_request(X=np.ones((2, 4), np.float32))])


def test_output_without_batch_dimension_is_internal(tmp_path: Path) -> None:
    model_file = write_onnx(
        tmp_path / "total.onnx",
        [helper.make_node("ReduceSum", ["X"], ["Y"], keepdims=0)],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["b", 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [])],
    )
    runner = _custom(tmp_path, "max_batch_size: 8", model_file)
    with pytest.raises(InternalError, match="no batch dimension"):
        runner.infer([_request(X=np.ones((2, 4), np.float32))])


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        (
            'max_batch_size: 8 input { name: "Z" data_type: TYPE_FP32 dims: [4] }',
            "config input 'Z' is not a input of the ONNX graph",
        ),
        (
            'max_batch_size: 8 input { name: "X" data_type: TYPE_INT32 dims: [4] }',
            "is TYPE_INT32 but the ONNX graph has tensor(float)",
        ),
        (
            'max_batch_size: 0 input { name: "X" data_type: TYPE_FP32 dims: [4] }',
            "has 1 non-batch dimension(s)",
        ),
        (
            'max_batch_size: 8 output { name: "Q" data_type: TYPE_FP32 dims: [4] }',
            "config output 'Q' is not a output",
        ),
    ],
)
def test_config_must_match_the_graph(tmp_path: Path, config: str, fragment: str) -> None:
    model_file = write_onnx(
        tmp_path / "two.onnx",
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, ["b", 4]),
            helper.make_tensor_value_info("W", TensorProto.FLOAT, ["b", 4]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["b", 4])],
    )
    with pytest.raises(LoadFailedError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        _custom(tmp_path, config, model_file)


def test_graph_inputs_missing_from_config(tmp_path: Path) -> None:
    model_file = write_onnx(
        tmp_path / "two.onnx",
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, ["b", 4]),
            helper.make_tensor_value_info("W", TensorProto.FLOAT, ["b", 4]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["b", 4])],
    )
    config = 'max_batch_size: 8 input { name: "X" data_type: TYPE_FP32 dims: [4] }'
    with pytest.raises(LoadFailedError, match="needs input\\(s\\) W"):
        _custom(tmp_path, config, model_file)


def test_unservable_graph_types(tmp_path: Path) -> None:
    model_file = write_onnx(
        tmp_path / "complex.onnx",
        [helper.make_node("Identity", ["X"], ["Y"])],
        [helper.make_tensor_value_info("X", TensorProto.COMPLEX64, [2])],
        [helper.make_tensor_value_info("Y", TensorProto.COMPLEX64, [2])],
    )
    with pytest.raises(LoadFailedError):
        _custom(tmp_path, "max_batch_size: 0", model_file)


def test_corrupt_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(LoadFailedError, match="ONNX Runtime cannot load") as caught:
        _custom(tmp_path, "", broken)
    assert caught.value.model == "custom"
    assert caught.value.version == "1"


def test_closed_runner_is_not_ready(built_repository: Path) -> None:
    runner = _runner(built_repository, "classifier")
    runner.close()
    runner.close()
    with pytest.raises(ModelNotReadyError):
        runner.infer([_request(features=random_features(1, 16, seed=0))])
