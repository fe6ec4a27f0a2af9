"""Checks of a request against a model's declared inputs, shared by every runner (as Triton does
them before any backend sees a request)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from ..errors import InvalidArgumentError
from ..wire import datatype_of
from .runner import InferRequest


@dataclass(frozen=True)
class InputSpec:
    """A model input: ``dims`` excludes the batch dimension and may hold -1 wildcards."""

    name: str
    datatype: str
    dims: tuple[int, ...]
    optional: bool = False


def _shape_matches(shape: tuple[int, ...], dims: tuple[int, ...]) -> bool:
    return len(shape) == len(dims) and all(
        d == -1 or d == s for s, d in zip(shape, dims, strict=True)
    )


def _expected(dims: tuple[int, ...], max_batch_size: int) -> list[int]:
    return [-1, *dims] if max_batch_size > 0 else list(dims)


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
    for name in request.inputs:
        if name not in inputs:
            raise InvalidArgumentError(
                f"unexpected input '{name}' (the model's inputs are {', '.join(inputs)})",
                field=name,
            )
    missing = [s.name for s in inputs.values() if not s.optional and s.name not in request.inputs]
    if missing:
        raise InvalidArgumentError(f"missing input(s) {', '.join(missing)}", field=missing[0])
    for name in request.outputs:
        if name not in outputs:
            raise InvalidArgumentError(
                f"unknown requested output '{name}' (the model's outputs are {', '.join(outputs)})",
                field=name,
            )

    batch: int | None = None
    for name, array in request.inputs.items():
        spec = inputs[name]
        datatype = datatype_of(array, tensor=name)
        if datatype != spec.datatype:
            raise InvalidArgumentError(
                f"input '{name}' has datatype {datatype}, the model expects {spec.datatype}",
                field=name,
            )
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
