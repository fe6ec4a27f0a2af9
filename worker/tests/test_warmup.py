"""inferneo_worker.warmup: the data of each sample, how often it runs, and how it fails."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from conftest import bytes_tensor_data
from inferneo_worker.errors import ErrorCode, InternalError, InvalidArgumentError
from inferneo_worker.model_config import ModelConfig, parse_text_format
from inferneo_worker.runners import (
    BatchReport,
    BatchRequest,
    InferRequest,
    InferResponse,
    ModelMetadata,
    RunReport,
)
from inferneo_worker.warmup import WarmupError, run_warmup


class RecordingRunner:
    """A runner that records every ``infer`` call; call number ``n`` (from 0) answers each of its
    requests with ``answers[n]`` (or raises it), other calls succeed."""

    def __init__(self, answers: dict[int, InferResponse | Exception] | None = None) -> None:
        self.calls: list[list[InferRequest]] = []
        self.answers = answers or {}

    @property
    def metadata(self) -> ModelMetadata:
        return ModelMetadata("fake", "fake", 0, (), ())

    def infer(self, requests: Sequence[InferRequest]) -> RunReport:
        answer = self.answers.get(len(self.calls), InferResponse(outputs={}))
        self.calls.append(list(requests))
        if isinstance(answer, Exception):
            raise answer
        return RunReport([answer] * len(requests), executions=1, compute_ns=1, rows=1)

    def infer_batch(self, batch: BatchRequest) -> BatchReport:
        raise AssertionError("warm-up sends its samples through infer")

    def close(self) -> None:
        pass


def _config(warmup: str, max_batch_size: int = 8) -> ModelConfig:
    text = f'name: "m" max_batch_size: {max_batch_size}\n{warmup}'
    return ModelConfig.from_dict(parse_text_format(text), default_name="m")


def _sample(name: str, inputs: str, batch_size: int = 1, count: int = 0) -> str:
    return f'model_warmup {{ name: "{name}" batch_size: {batch_size} count: {count}\n{inputs} }}\n'


def _input(key: str, data_type: str, dims: Sequence[int], data: str) -> str:
    return (
        f'inputs {{ key: "{key}" value: {{ data_type: {data_type} '
        f"dims: [ {', '.join(map(str, dims))} ] {data} }} }}\n"
    )


def _run(config: ModelConfig, model_dir: Path | None = None) -> RecordingRunner:
    runner = RecordingRunner()
    run_warmup(runner, config, version="1", model_dir=model_dir or Path("/nonexistent"))
    return runner


def test_each_sample_runs_count_times_with_batch_size_requests() -> None:
    config = _config(
        _sample("a", _input("x", "TYPE_FP32", [2], "zero_data: true"), batch_size=3, count=2)
        + _sample("b", _input("x", "TYPE_FP32", [2], "random_data: true"))
        + _sample("skipped", _input("x", "TYPE_FP32", [2], "zero_data: true"), batch_size=0)
    )
    runner = RecordingRunner()
    elapsed = run_warmup(runner, config, version="1", model_dir=Path("/nonexistent"))
    assert elapsed >= 0
    assert [len(call) for call in runner.calls] == [3, 3, 1]
    first = runner.calls[0]
    # Triton duplicates the inputs: every request of a sample holds the same (read-only) data.
    assert all(r.inputs["x"] is first[0].inputs["x"] for r in first)
    assert runner.calls[1][0].inputs["x"] is first[0].inputs["x"]
    assert not first[0].inputs["x"].flags.writeable
    assert first[0].outputs == ()


def test_no_samples_no_calls() -> None:
    assert _run(_config("")).calls == []


@pytest.mark.parametrize(
    ("data_type", "dtype"),
    [
        ("TYPE_BOOL", np.bool_),
        ("TYPE_UINT8", np.uint8),
        ("TYPE_UINT16", np.uint16),
        ("TYPE_UINT32", np.uint32),
        ("TYPE_UINT64", np.uint64),
        ("TYPE_INT8", np.int8),
        ("TYPE_INT16", np.int16),
        ("TYPE_INT32", np.int32),
        ("TYPE_INT64", np.int64),
        ("TYPE_FP16", np.float16),
        ("TYPE_FP32", np.float32),
        ("TYPE_FP64", np.float64),
        ("TYPE_STRING", np.object_),
    ],
)
def test_zero_and_random_data_shapes_and_dtypes(data_type: str, dtype: type) -> None:
    config = _config(
        _sample(
            "s",
            _input("zero", data_type, [3, 4], "zero_data: true")
            + _input("random", data_type, [3, 4], "random_data: true"),
            batch_size=2,
        )
    )
    ((first, second),) = _run(config).calls
    zero, random = first.inputs["zero"], first.inputs["random"]
    for array in (zero, random):
        assert array.shape == (1, 3, 4), "one batch row per request"
        assert array.dtype == np.dtype(dtype)
    if data_type == "TYPE_STRING":
        assert zero.tolist() == [[[b""] * 4] * 3]
        items = random.reshape(-1).tolist()
        assert all(isinstance(b, bytes) and 1 <= len(b) <= 16 and b.isalnum() for b in items)
        assert len(set(items)) > 1
    else:
        assert not zero.any()
        if data_type.startswith("TYPE_FP"):
            assert ((random >= 0) & (random < 1)).all()
        assert len(np.unique(random)) > 1
    assert second.inputs["random"] is random


def test_random_data_is_reproducible() -> None:
    config = _config(_sample("s", _input("x", "TYPE_INT32", [8], "random_data: true")))
    one, two = _run(config).calls[0][0], _run(config).calls[0][0]
    np.testing.assert_array_equal(one.inputs["x"], two.inputs["x"])


def test_non_batching_models_get_dims_as_the_shape() -> None:
    config = _config(
        _sample("s", _input("x", "TYPE_FP32", [2, 3], "zero_data: true"), batch_size=2),
        max_batch_size=0,
    )
    ((first, second),) = _run(config).calls
    assert first.inputs["x"].shape == (2, 3)
    assert second.inputs["x"].shape == (2, 3)


def test_input_data_file(tmp_path: Path) -> None:
    warmup = tmp_path / "warmup"
    warmup.mkdir()
    values = np.arange(6, dtype="<f4")
    # Triton reads as many bytes as the input needs and ignores the rest.
    (warmup / "floats.bin").write_bytes(values.tobytes() + b"extra")
    (warmup / "text.bin").write_bytes(bytes_tensor_data([b"hello", b"", b"warm"]))
    (warmup / "flags.bin").write_bytes(bytes([0, 1]))
    config = _config(
        _sample(
            "files",
            _input("f", "TYPE_FP32", [2, 3], 'input_data_file: "floats.bin"')
            + _input("t", "TYPE_STRING", [3], 'input_data_file: "text.bin"')
            + _input("b", "TYPE_BOOL", [2], 'input_data_file: "flags.bin"'),
            batch_size=2,
        )
    )
    ((request, _),) = _run(config, tmp_path).calls
    np.testing.assert_array_equal(request.inputs["f"], values.reshape(1, 2, 3))
    assert request.inputs["t"].tolist() == [[b"hello", b"", b"warm"]]
    assert request.inputs["b"].tolist() == [[False, True]]


@pytest.mark.parametrize(
    ("files", "data", "fragment"),
    [
        ({}, 'input_data_file: "missing.bin"', "cannot read input_data_file .*missing.bin"),
        ({"short.bin": b"\0" * 15}, 'input_data_file: "short.bin"', "has 15 bytes.* needs 16"),
        ({}, 'input_data_file: "../config.pbtxt"', "outside"),
    ],
)
def test_input_data_file_errors(
    tmp_path: Path, files: dict[str, bytes], data: str, fragment: str
) -> None:
    (tmp_path / "warmup").mkdir()
    (tmp_path / "config.pbtxt").write_text("")
    for name, content in files.items():
        (tmp_path / "warmup" / name).write_bytes(content)
    config = _config(_sample("from_file", _input("x", "TYPE_FP32", [4], data)))
    with pytest.raises(WarmupError, match=fragment) as caught:
        _run(config, tmp_path)
    assert caught.value.sample == "from_file"
    assert "warm-up sample 'from_file' of model 'm' version 1 failed" in caught.value.message


def test_input_data_file_content_errors(tmp_path: Path) -> None:
    (tmp_path / "warmup").mkdir()
    (tmp_path / "warmup" / "text.bin").write_bytes(struct.pack("<I", 9) + b"short")
    (tmp_path / "warmup" / "flags.bin").write_bytes(bytes([0, 2]))
    text = _config(_sample("t", _input("t", "TYPE_STRING", [1], 'input_data_file: "text.bin"')))
    with pytest.raises(WarmupError, match=r"text\.bin: tensor 't': BYTES element 0 declares 9"):
        _run(text, tmp_path)
    flags = _config(_sample("b", _input("b", "TYPE_BOOL", [2], 'input_data_file: "flags.bin"')))
    with pytest.raises(WarmupError, match="must be 0 or 1"):
        _run(flags, tmp_path)


def test_sample_data_errors() -> None:
    variable = _config(_sample("var", _input("x", "TYPE_FP32", [-1, 4], "zero_data: true")))
    with pytest.raises(WarmupError, match=r"dims \[-1, 4\]: a warm-up sample must give every"):
        _run(variable)
    bf16 = _config(_sample("bf", _input("x", "TYPE_BF16", [4], "zero_data: true")))
    with pytest.raises(WarmupError, match="BF16 is not supported") as caught:
        _run(bf16)
    assert caught.value.code is ErrorCode.LOAD_FAILED
    assert (caught.value.model, caught.value.version) == ("m", "1")


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (InferResponse.failed(InvalidArgumentError("input 'x' has shape [1, 4]")), "has shape"),
        (InternalError("ONNX Runtime failed"), "ONNX Runtime failed"),
        (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
    ],
)
def test_failures_of_the_call_name_the_sample(
    answer: InferResponse | Exception, fragment: str
) -> None:
    config = _config(
        _sample("fine", _input("x", "TYPE_FP32", [4], "zero_data: true"))
        + _sample("bad", _input("x", "TYPE_FP32", [4], "zero_data: true"), batch_size=2)
    )
    runner = RecordingRunner({1: answer})
    with pytest.raises(WarmupError) as caught:
        run_warmup(runner, config, version="3", model_dir=Path("/nonexistent"))
    assert caught.value.sample == "bad"
    assert fragment in caught.value.reason
    assert caught.value.message.startswith("warm-up sample 'bad' of model 'm' version 3 failed:")
    # Two requests with the same error: reported once.
    assert caught.value.reason.count(fragment) == 1
