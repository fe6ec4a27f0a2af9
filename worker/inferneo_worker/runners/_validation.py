"""Checks of a request against a model's declared inputs, shared by every runner (as Triton does
them before any backend sees a request)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from ..errors import InvalidArgumentError
from ..wire import datatype_of
from .runner import BatchRequest, InferRequest


@dataclass(frozen=True)
class InputSpec:
    """A model input: ``dims`` excludes the batch dimension and may hold -1 wildcards."""

    name: str
    datatype: str
    dims: tuple[int, ...]
    optional: bool = False


def _shape_matches(shape: tuple[int, ...], dims: tuple[int, ...]) -> bool:
    if shape == dims:
        return True
    if len(shape) != len(dims):
        return False
    return all(dim in (-1, size) for size, dim in zip(shape, dims, strict=True))


def _expected(dims: tuple[int, ...], max_batch_size: int) -> list[int]:
    return [-1, *dims] if max_batch_size > 0 else list(dims)


def _check_names(
    given: Mapping[str, object],
    requested: tuple[str, ...],
    inputs: Mapping[str, InputSpec],
    outputs: Collection[str],
) -> None:
    """Every given input is the model's, none it needs is missing, every requested output is
    one of its outputs."""
    for name in given:
        if name not in inputs:
            raise InvalidArgumentError(
                f"unexpected input '{name}' (the model's inputs are {', '.join(inputs)})",
                field=name,
            )
    if len(given) != len(inputs):
        missing = [s.name for s in inputs.values() if not s.optional and s.name not in given]
        if missing:
            raise InvalidArgumentError(f"missing input(s) {', '.join(missing)}", field=missing[0])
    for name in requested:
        if name not in outputs:
            raise InvalidArgumentError(
                f"unknown requested output '{name}' (the model's outputs are {', '.join(outputs)})",
                field=name,
            )


def _check_datatype(name: str, array: npt.NDArray[Any], spec: InputSpec) -> None:
    datatype = datatype_of(array, tensor=name)
    if datatype != spec.datatype:
        raise InvalidArgumentError(
            f"input '{name}' has datatype {datatype}, the model expects {spec.datatype}",
            field=name,
        )


def validate_request(
    request: InferRequest,
    inputs: Mapping[str, InputSpec],
    outputs: Collection[str],
    max_batch_size: int,
) -> int:
    """Check names, datatypes, shapes and batch size; return the request's row count.

    Rows are the batch size for batching models and 1 otherwise, which is what Triton counts as
    inference count. Raises ``InvalidArgumentError`` naming the offending tensor.
    """
    _check_names(request.inputs, request.outputs, inputs, outputs)
    batch: int | None = None
    for name, array in request.inputs.items():
        spec = inputs[name]
        _check_datatype(name, array, spec)
        shape: tuple[int, ...] = array.shape
        if max_batch_size > 0:
            if len(shape) == 0:
                raise InvalidArgumentError(
                    f"input '{name}' needs a batch dimension: expected shape "
                    f"{_expected(spec.dims, max_batch_size)}",
                    field=name,
                )
            rows, shape = shape[0], shape[1:]
            if not 1 <= rows <= max_batch_size:
                raise InvalidArgumentError(
                    f"input '{name}' has batch size {rows}; the model accepts 1 to "
                    f"{max_batch_size}",
                    field=name,
                )
            if batch is not None and rows != batch:
                raise InvalidArgumentError(
                    f"input '{name}' has batch size {rows} but other inputs have {batch}",
                    field=name,
                )
            batch = rows
        if not _shape_matches(shape, spec.dims):
            raise InvalidArgumentError(
                f"input '{name}' has shape {list(array.shape)}, the model expects "
                f"{_expected(spec.dims, max_batch_size)}",
                field=name,
            )
    return batch if batch is not None else 1


def validate_batch(
    batch: BatchRequest,
    inputs: Mapping[str, InputSpec],
    outputs: Collection[str],
    max_batch_size: int,
) -> int:
    """Check a whole-batch call: a batching model, row counts of at least 1 whose sum fits
    ``max_batch_size``, then names, datatypes and shapes (first dimension ``sum(rows)``) as
    ``validate_request`` does. Returns ``sum(rows)``; raises ``InvalidArgumentError``."""
    if max_batch_size <= 0:
        raise InvalidArgumentError(
            "the whole-batch form of infer needs a model that batches, and this one has "
            "max_batch_size 0: send its requests as 'requests'",
            field="batch",
        )
    rows = batch.rows
    if not rows:
        raise InvalidArgumentError(
            "batch.rows must count the rows of at least one request", field="rows"
        )
    if min(rows) < 1:
        index = next(i for i, count in enumerate(rows) if count < 1)
        raise InvalidArgumentError(
            f"batch.rows[{index}] is {rows[index]}: every request contributes at least one row",
            field="rows",
        )
    total = sum(rows)
    if total > max_batch_size:
        raise InvalidArgumentError(
            f"the batch has {total} rows (the sum of batch.rows); the model accepts 1 to "
            f"{max_batch_size}",
            field="rows",
        )
    _check_names(batch.inputs, batch.outputs, inputs, outputs)
    for name, array in batch.inputs.items():
        spec = inputs[name]
        _check_datatype(name, array, spec)
        shape: tuple[int, ...] = array.shape
        if not shape or shape[0] != total:
            raise InvalidArgumentError(
                f"input '{name}' has shape {list(shape)}: its first dimension must be the "
                f"batch's {total} rows (the sum of batch.rows)",
                field=name,
            )
        if not _shape_matches(shape[1:], spec.dims):
            raise InvalidArgumentError(
                f"input '{name}' has shape {list(shape)}, the model expects {[total, *spec.dims]}",
                field=name,
            )
    return total
