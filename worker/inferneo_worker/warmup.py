"""Warm-up of a freshly loaded version, as Triton's ``model_warmup`` does it.

Each sample of the config's ``model_warmup`` becomes ``batch_size`` requests of batch size 1 (the
inputs duplicated, as Triton does), and the whole list goes through ``Runner.infer``, the call that
serves real ``infer`` messages: an ONNX model with ``max_batch_size > 0`` therefore runs them as one
batch of ``batch_size`` rows, and a Python model gets them in one ``execute(requests)``. The sample
runs ``count`` times (once when 0). A sample with ``batch_size: 0`` is skipped, as in Triton.

Input data, per ``ModelWarmup.Input``:

* ``zero_data``: zeros; empty strings for ``TYPE_STRING``.
* ``random_data``: random values of the input's type (integers over the type's whole range, 0/1
  for ``TYPE_BOOL``, floats in [0, 1) so that no NaN or infinity reaches model code); for
  ``TYPE_STRING``, random 1-16 character ASCII byte strings, which any text model accepts (Triton
  itself falls back to empty strings there). The generator is seeded: a load is reproducible.
* ``input_data_file``: the raw bytes of ``<model dir>/warmup/<file>`` in row-major order, Triton's
  layout: at least as many bytes as the input needs (the rest is ignored, as in Triton), or for
  ``TYPE_STRING`` exactly the input's elements, each a 4-byte little-endian length then its bytes.

A sample fails when its data cannot be built, when the call raises, or when any response carries an
error; ``run_warmup`` then raises ``WarmupError`` (LOAD_FAILED) naming the sample. Warm-up calls are
not counted in the version's statistics.
"""

from __future__ import annotations

import logging
import math
import string
import time
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from . import wire
from .errors import LoadFailedError, WorkerError
from .model_config import ModelConfig, WarmupInput, WarmupSample
from .runners import InferRequest, Runner

_log = logging.getLogger(__name__)

WARMUP_DIR: Final = "warmup"
"""The folder of a model directory that holds ``input_data_file`` files (Triton's name)."""

_RANDOM_SEED: Final = 0
_RANDOM_STRING_CHARS: Final = np.frombuffer(
    (string.ascii_letters + string.digits).encode("ascii"), dtype=np.uint8
)
_RANDOM_STRING_MAX_LENGTH: Final = 16


class WarmupError(LoadFailedError):
    """A warm-up sample could not be built or did not run cleanly, so the load fails.

    ``sample`` is the sample's ``name`` and ``reason`` what went wrong (without the sample).
    """

    def __init__(self, *, model: str, version: str, sample: str, reason: str) -> None:
        super().__init__(
            f"warm-up sample '{sample}' of model '{model}' version {version} failed: {reason}",
            model=model,
            version=version,
        )
        self.sample = sample
        self.reason = reason


class _SampleError(Exception):
    """Why one sample failed; ``run_warmup`` turns it into ``WarmupError`` naming the sample."""


def run_warmup(
    runner: Runner,
    config: ModelConfig,
    *,
    version: str,
    model_dir: Path,
) -> float:
    """Run every sample of ``config.model_warmup`` through ``runner``; return the milliseconds
    spent. The caller owns ``runner`` and closes it when this raises."""
    rng = np.random.default_rng(_RANDOM_SEED)
    started = time.perf_counter()
    for sample in config.model_warmup:
        if sample.batch_size == 0:
            _log.info(
                "model %s version %s: skipping warm-up sample '%s' (batch_size 0)",
                config.name,
                version,
                sample.name,
            )
            continue
        try:
            _run_sample(runner, sample, config, model_dir, rng)
        except _SampleError as exc:
            raise WarmupError(
                model=config.name, version=version, sample=sample.name, reason=str(exc)
            ) from exc.__cause__
    elapsed_ms = (time.perf_counter() - started) * 1000
    if config.model_warmup:
        _log.info(
            "model %s version %s: %d warm-up sample(s) in %.1f ms",
            config.name,
            version,
            len(config.model_warmup),
            elapsed_ms,
        )
    return elapsed_ms


def _run_sample(
    runner: Runner,
    sample: WarmupSample,
    config: ModelConfig,
    model_dir: Path,
    rng: np.random.Generator,
) -> None:
    requests = _build_requests(sample, config, model_dir, rng)
    for _ in range(sample.iterations):
        try:
            report = runner.infer(requests)
        except WorkerError as exc:
            raise _SampleError(exc.message) from exc
        except Exception as exc:
            raise _SampleError(f"{type(exc).__name__}: {exc}") from exc
        errors = [r.error.message for r in report.responses if r.error is not None]
        if errors:
            # The requests of a sample are copies of each other, so their errors usually are.
            raise _SampleError("; ".join(dict.fromkeys(errors)))


def _build_requests(
    sample: WarmupSample, config: ModelConfig, model_dir: Path, rng: np.random.Generator
) -> list[InferRequest]:
    """The ``batch_size`` requests of ``sample``; they share one read-only array per input, as
    received tensors are read-only views. Raises ``_SampleError`` with the reason when the
    data cannot be built."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    for item in sample.inputs:
        if any(d < 0 for d in item.dims):
            raise _SampleError(
                f"input '{item.name}' has dims {list(item.dims)}: a warm-up sample must give "
                "every variable-size dimension"
            )
        shape = (1, *item.dims) if config.max_batch_size > 0 else item.dims
        array = _input_data(item, shape, model_dir, rng)
        array.flags.writeable = False
        arrays[item.name] = array
    return [InferRequest(inputs=arrays) for _ in range(sample.batch_size)]


def _input_data(
    item: WarmupInput, shape: tuple[int, ...], model_dir: Path, rng: np.random.Generator
) -> npt.NDArray[Any]:
    try:
        dtype = wire.numpy_dtype(item.datatype, tensor=item.name)
    except WorkerError as exc:
        raise _SampleError(exc.message) from None
    if item.data == "input_data_file":
        return _file_data(item, shape, dtype, model_dir)
    if item.datatype == wire.BYTES:
        out = np.empty(shape, dtype=np.object_)
        if item.data == "zero_data":
            out.fill(b"")
        else:
            flat = out.reshape(-1)
            lengths = rng.integers(1, _RANDOM_STRING_MAX_LENGTH, size=flat.size, endpoint=True)
            for index, length in enumerate(lengths):
                flat[index] = rng.choice(_RANDOM_STRING_CHARS, size=length).tobytes()
        return out
    if item.data == "zero_data":
        return np.zeros(shape, dtype=dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape, dtype=np.uint8).astype(np.bool_)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return rng.random(size=shape).astype(dtype)


def _file_data(
    item: WarmupInput, shape: tuple[int, ...], dtype: np.dtype[Any], model_dir: Path
) -> npt.NDArray[Any]:
    folder = model_dir / WARMUP_DIR
    path = folder / item.input_data_file
    if not path.resolve().is_relative_to(folder.resolve()):
        raise _SampleError(
            f"input_data_file {item.input_data_file!r} of input '{item.name}' is outside {folder}"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _SampleError(
            f"cannot read input_data_file {path} of input '{item.name}': {exc.strerror or exc}"
        ) from None
    if item.datatype == wire.BYTES:
        try:
            return wire.to_numpy(wire.Tensor(item.name, wire.BYTES, shape, data))
        except WorkerError as exc:
            raise _SampleError(f"{path}: {exc.message}") from None
    count = math.prod(shape)
    needed = count * dtype.itemsize
    if len(data) < needed:
        raise _SampleError(
            f"{path} has {len(data)} bytes; input '{item.name}' ({item.datatype} "
            f"{list(item.dims)}) needs {needed}"
        )
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape)
    if item.datatype == "BOOL" and count and array.view(np.uint8).max() > 1:
        raise _SampleError(f"{path}: BOOL elements of input '{item.name}' must be 0 or 1")
    return array
