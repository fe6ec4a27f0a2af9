"""MessagePack framing and tensor encoding of the worker protocol (docs/worker-protocol.md).

A message is one MessagePack map. A tensor is ``{"name", "datatype", "shape", "data"}`` where
``data`` is raw little-endian row-major bytes (``bin``). Numeric tensors become numpy arrays with
``numpy.frombuffer`` over the received bytes: no copy and never a Python list of numbers. ``BYTES``
tensors use Triton's layout (each element a 4-byte little-endian length then its bytes) and become
numpy object arrays of ``bytes``, the form Triton's Python backend hands to models.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgpack
import numpy as np
import numpy.typing as npt

from .errors import InvalidArgumentError, UnsupportedError

PROTOCOL_VERSION: Final = 1

BYTES: Final = "BYTES"

# Explicit little-endian dtypes: the wire is little-endian whatever the host is.
_NUMERIC_DTYPES: Final[Mapping[str, np.dtype[Any]]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}

# Names the orchestrator may pass through but that this worker cannot represent in numpy.
_KNOWN_UNSUPPORTED: Final = frozenset({"BF16"})

DATATYPES: Final = frozenset(_NUMERIC_DTYPES) | {BYTES}
"""Every datatype this worker serves."""

# numpy dtype → KServe name, for the dtypes met on the hot path (the wire's little-endian ones,
# which are also the host's native ones on every platform the worker runs on, and objects).
# ``datatype_of`` falls back to a scan for the rest (other byte order, numpy strings).
_DATATYPE_BY_DTYPE: Final[Mapping[np.dtype[Any], str]] = {
    **{dtype: name for name, dtype in _NUMERIC_DTYPES.items()},
    **{dtype.newbyteorder("="): name for name, dtype in _NUMERIC_DTYPES.items()},
    np.dtype(np.object_): BYTES,
}

_LENGTH_PREFIX: Final = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class Tensor:
    """A tensor as it travels on the wire; ``data`` is the raw bytes, never decoded numbers."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: bytes | bytearray | memoryview


def numpy_dtype(datatype: str, *, tensor: str = "") -> np.dtype[Any]:
    """The numpy dtype of a KServe datatype (``object`` for ``BYTES``)."""
    if datatype == BYTES:
        return np.dtype(np.object_)
    dtype = _NUMERIC_DTYPES.get(datatype)
    if dtype is not None:
        return dtype
    if datatype in _KNOWN_UNSUPPORTED:
        raise UnsupportedError(
            f"tensor '{tensor}': datatype {datatype} is not supported by this worker",
            feature=datatype,
        )
    raise InvalidArgumentError(f"tensor '{tensor}': unknown datatype {datatype!r}", field=tensor)


def datatype_of(array: npt.NDArray[Any], *, tensor: str = "") -> str:
    """The KServe datatype that represents ``array``; strings and objects are ``BYTES``."""
    known = _DATATYPE_BY_DTYPE.get(array.dtype)
    if known is not None:
        return known
    kind = array.dtype.kind
    if kind in "OSU":
        return BYTES
    for name, dtype in _NUMERIC_DTYPES.items():
        # Byte order is ignored: a big-endian array is re-encoded little-endian on the way out.
        if dtype.kind == kind and dtype.itemsize == array.dtype.itemsize:
            return name
    raise UnsupportedError(
        f"tensor '{tensor}': numpy dtype {array.dtype} has no KServe datatype",
        feature=str(array.dtype),
    )


def to_numpy(tensor: Tensor) -> npt.NDArray[Any]:
    """Decode a wire tensor; numeric data is a read-only view over ``tensor.data``.

    Raises ``InvalidArgumentError`` (naming the tensor) when the data does not match the shape.
    """
    dtype = numpy_dtype(tensor.datatype, tensor=tensor.name)
    count = math.prod(tensor.shape)
    if tensor.datatype == BYTES:
        return _decode_bytes(tensor, count)
    expected = count * dtype.itemsize
    if len(tensor.data) != expected:
        raise InvalidArgumentError(
            f"tensor '{tensor.name}': {tensor.datatype} shape {list(tensor.shape)} needs "
            f"{expected} bytes of data, got {len(tensor.data)}",
            field=tensor.name,
        )
    array = np.frombuffer(tensor.data, dtype=dtype).reshape(tensor.shape)
    if tensor.datatype == "BOOL" and count and array.view(np.uint8).max() > 1:
        raise InvalidArgumentError(
            f"tensor '{tensor.name}': BOOL elements must be 0 or 1", field=tensor.name
        )
    return array


def _decode_bytes(tensor: Tensor, count: int) -> npt.NDArray[Any]:
    data = memoryview(tensor.data)
    size = len(data)
    out = np.empty(count, dtype=np.object_)
    offset = 0
    for index in range(count):
        if offset + 4 > size:
            raise InvalidArgumentError(
                f"tensor '{tensor.name}': BYTES data ends inside the length of element {index} "
                f"(shape {list(tensor.shape)} has {count} elements)",
                field=tensor.name,
            )
        (length,) = _LENGTH_PREFIX.unpack_from(data, offset)
        offset += 4
        end = offset + length
        if end > size:
            raise InvalidArgumentError(
                f"tensor '{tensor.name}': BYTES element {index} declares {length} bytes but only "
                f"{size - offset} remain",
                field=tensor.name,
            )
        out[index] = bytes(data[offset:end])
        offset = end
    if offset != size:
        raise InvalidArgumentError(
            f"tensor '{tensor.name}': {size - offset} bytes of data left after the "
            f"{count} BYTES elements of shape {list(tensor.shape)}",
            field=tensor.name,
        )
    return out.reshape(tensor.shape)


def from_numpy(name: str, array: npt.NDArray[Any]) -> Tensor:
    """Encode an array as a wire tensor; numeric data is a view of the (contiguous) array."""
    datatype = datatype_of(array, tensor=name)
    shape: tuple[int, ...] = array.shape
    if datatype == BYTES:
        return Tensor(name, datatype, shape, _encode_bytes(array))
    return Tensor(name, datatype, shape, _numeric_data(array, _NUMERIC_DTYPES[datatype]))


def _numeric_data(array: npt.NDArray[Any], wire_dtype: np.dtype[Any]) -> memoryview | bytes:
    """The wire bytes of a numeric array: a view of it when it is already C-contiguous and
    little-endian, else of a contiguous little-endian copy."""
    if array.dtype != wire_dtype or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array, dtype=wire_dtype)
    if array.size == 0:
        return b""  # memoryview cannot cast a view with a zero in its shape
    buffer: Any = array
    return memoryview(buffer).cast("B")


def array_to_wire(name: str, array: npt.NDArray[Any]) -> dict[str, Any]:
    """``tensor_to_wire(from_numpy(name, array))`` in one step: the MessagePack map of an output,
    its data a view of the array whenever it can be (see ``from_numpy``)."""
    datatype = _DATATYPE_BY_DTYPE.get(array.dtype)
    if datatype is None or datatype == BYTES:
        return tensor_to_wire(from_numpy(name, array))
    return {
        "name": name,
        "datatype": datatype,
        "shape": list(array.shape),
        "data": _numeric_data(array, _NUMERIC_DTYPES[datatype]),
    }


def _encode_bytes(array: npt.NDArray[Any]) -> bytes:
    parts: list[bytes] = []
    for item in array.reshape(-1, order="C"):
        # Same rule as Triton's serialize_byte_tensor: bytes pass through, anything else is its
        # str() in UTF-8, so a model may return either bytes or str elements.
        element = bytes(item) if isinstance(item, bytes | bytearray) else str(item).encode("utf-8")
        parts.append(_LENGTH_PREFIX.pack(len(element)))
        parts.append(element)
    return b"".join(parts)


def parse_tensor(value: object, *, where: str) -> Tensor:
    """Validate a decoded MessagePack map as a tensor; ``where`` locates it in error messages."""
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"{where}: a tensor must be a map", field=where)
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(
            f"{where}: tensor 'name' must be a non-empty string", field=where
        )
    datatype = value.get("datatype")
    if not isinstance(datatype, str):
        raise InvalidArgumentError(f"tensor '{name}': 'datatype' must be a string", field=name)
    shape = value.get("shape")
    if not isinstance(shape, list | tuple) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidArgumentError(
            f"tensor '{name}': 'shape' must be a list of non-negative integers, got {shape!r}",
            field=name,
        )
    data = value.get("data")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidArgumentError(
            f"tensor '{name}': 'data' must be MessagePack bin, got {type(data).__name__}",
            field=name,
        )
    if datatype not in DATATYPES:
        numpy_dtype(datatype, tensor=name)  # raises UNSUPPORTED or INVALID_ARGUMENT
    return Tensor(name, datatype, tuple(shape), data)


def parse_array(value: object, *, where: Callable[[], str]) -> tuple[str, npt.NDArray[Any]]:
    """``parse_tensor`` then ``to_numpy`` (same checks, same errors), in one pass for the common
    case of a well-formed numeric tensor: its array is a read-only view of the received bytes.
    ``where`` is called for error messages only."""
    if type(value) is dict:
        name = value.get("name")
        datatype = value.get("datatype")
        shape = value.get("shape")
        data = value.get("data")
        if (
            type(name) is str
            and name
            and type(datatype) is str
            and datatype != "BOOL"  # its 0/1 check is to_numpy's
            and type(shape) is list
            and type(data) is bytes
        ):
            dtype = _NUMERIC_DTYPES.get(datatype)
            if dtype is not None:
                count = 1
                for dim in shape:
                    if type(dim) is not int or dim < 0:
                        break
                    count *= dim
                else:
                    if len(data) == count * dtype.itemsize:
                        return name, np.frombuffer(data, dtype=dtype).reshape(shape)
    # Anything else takes the long way, which also words the errors.
    tensor = parse_tensor(value, where=where())
    return tensor.name, to_numpy(tensor)


def tensor_to_wire(tensor: Tensor) -> dict[str, Any]:
    """The MessagePack map of a tensor."""
    return {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": list(tensor.shape),
        "data": tensor.data,
    }


def encode(message: Mapping[str, Any]) -> bytes:
    """Serialise one message (one ZeroMQ frame)."""
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def decode(frame: bytes | memoryview) -> dict[str, Any]:
    """Parse one frame into a message map; anything else is ``InvalidArgumentError``."""
    try:
        message = msgpack.unpackb(frame, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise InvalidArgumentError(f"frame is not valid MessagePack: {exc}") from exc
    if not isinstance(message, dict):
        raise InvalidArgumentError(
            f"a message must be a MessagePack map, got {type(message).__name__}"
        )
    if not all(isinstance(key, str) for key in message):
        raise InvalidArgumentError("message keys must be strings")
    return message


def error_message(request_id: int | None, code: str, message: str) -> dict[str, Any]:
    """An ``error`` message; ``id`` is left out when the request had no usable id."""
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if request_id is not None:
        out["id"] = request_id
    return out


def result_message(request_id: int, payload: Mapping[str, Any]) -> dict[str, Any]:
    """A ``result`` message answering request ``request_id``."""
    return {"type": "result", "id": request_id, **payload}
