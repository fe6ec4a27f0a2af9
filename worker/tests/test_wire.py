from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest

from conftest import bytes_tensor_data
from inferneo_worker import wire
from inferneo_worker.errors import InvalidArgumentError, UnsupportedError

NUMERIC = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


@pytest.mark.parametrize(("datatype", "dtype"), NUMERIC.items())
def test_numeric_round_trip(datatype: str, dtype: Any) -> None:
    array = (np.arange(12).reshape(3, 4) % (2 if datatype == "BOOL" else 100)).astype(dtype)
    tensor = wire.from_numpy("t", array)
    assert (tensor.datatype, tensor.shape) == (datatype, (3, 4))
    assert bytes(tensor.data) == array.astype(array.dtype.newbyteorder("<")).tobytes()
    back = wire.to_numpy(wire.Tensor("t", datatype, (3, 4), bytes(tensor.data)))
    np.testing.assert_array_equal(back, array)
    assert back.dtype == np.dtype(dtype)


def test_numeric_decode_is_a_view_of_the_received_bytes() -> None:
    data = np.arange(6, dtype="<f4").tobytes()
    array = wire.to_numpy(wire.Tensor("x", "FP32", (2, 3), data))
    assert not array.flags.writeable
    assert array.base is not None
    assert np.shares_memory(array, np.frombuffer(data, dtype="<f4"))


def test_encode_is_little_endian_and_contiguous() -> None:
    big = np.arange(6, dtype=">i4").reshape(2, 3)
    tensor = wire.from_numpy("x", big.T)  # non-contiguous and big-endian
    assert tensor.shape == (3, 2)
    assert bytes(tensor.data) == np.ascontiguousarray(big.T).astype("<i4").tobytes()


def test_scalar_and_empty_tensors() -> None:
    scalar = wire.from_numpy("s", np.array(2.5, dtype=np.float64))
    assert scalar.shape == ()
    assert wire.to_numpy(wire.Tensor("s", "FP64", (), bytes(scalar.data))) == 2.5
    empty = wire.to_numpy(wire.Tensor("e", "INT32", (0, 4), b""))
    assert empty.shape == (0, 4)


def test_bytes_round_trip() -> None:
    items = [b"", b"hello", "é".encode(), b"\x00\xff"]
    data = bytes_tensor_data(items)
    array = wire.to_numpy(wire.Tensor("s", "BYTES", (2, 2), data))
    assert array.dtype == object
    assert array.shape == (2, 2)
    assert array.reshape(-1).tolist() == items
    encoded = wire.from_numpy("s", array)
    assert (encoded.datatype, encoded.shape, encoded.data) == ("BYTES", (2, 2), data)


def test_bytes_encode_accepts_str_and_numpy_strings() -> None:
    as_str = wire.from_numpy("s", np.array(["a", "é"], dtype=object))
    assert as_str.data == bytes_tensor_data([b"a", "é".encode()])
    fixed = wire.from_numpy("s", np.array([b"ab", b"c"]))
    assert fixed.datatype == "BYTES"
    assert fixed.data == bytes_tensor_data([b"ab", b"c"])
    unicode = wire.from_numpy("s", np.array(["xy"]))
    assert unicode.data == bytes_tensor_data([b"xy"])


@pytest.mark.parametrize(
    ("shape", "data", "fragment"),
    [
        ((2,), bytes_tensor_data([b"a"]), "ends inside the length of element 1"),
        ((1,), b"\x05\x00\x00\x00ab", "declares 5 bytes but only 2 remain"),
        ((1,), bytes_tensor_data([b"a"]) + b"zz", "2 bytes of data left"),
        ((1,), b"\x01\x00", "ends inside the length of element 0"),
    ],
)
def test_malformed_bytes_name_the_tensor(
    shape: tuple[int, ...], data: bytes, fragment: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=fragment) as caught:
        wire.to_numpy(wire.Tensor("TEXT", "BYTES", shape, data))
    assert caught.value.field == "TEXT"
    assert "TEXT" in caught.value.message


def test_length_mismatch_names_the_tensor() -> None:
    with pytest.raises(InvalidArgumentError, match=r"'features'.*needs 64 bytes of data, got 60"):
        wire.to_numpy(wire.Tensor("features", "FP32", (1, 16), b"\0" * 60))


def test_bool_must_be_zero_or_one() -> None:
    with pytest.raises(InvalidArgumentError, match="0 or 1"):
        wire.to_numpy(wire.Tensor("b", "BOOL", (2,), b"\x01\x02"))


def test_datatypes() -> None:
    with pytest.raises(UnsupportedError) as caught:
        wire.numpy_dtype("BF16", tensor="x")
    assert caught.value.feature == "BF16"
    with pytest.raises(InvalidArgumentError, match="unknown datatype 'FP8'"):
        wire.numpy_dtype("FP8", tensor="x")
    with pytest.raises(UnsupportedError, match="complex"):
        wire.datatype_of(np.zeros(2, dtype=np.complex64), tensor="c")
    assert wire.numpy_dtype("BYTES") == np.dtype(object)
    assert set(NUMERIC) | {"BYTES"} == wire.DATATYPES


def _tensor_map(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {"name": "x", "datatype": "INT8", "shape": [2], "data": b"\x01\x02"}
    value.update(overrides)
    return value


def test_parse_tensor() -> None:
    tensor = wire.parse_tensor(_tensor_map(), where="inputs[0]")
    assert tensor == wire.Tensor("x", "INT8", (2,), b"\x01\x02")
    assert wire.tensor_to_wire(tensor) == _tensor_map()


@pytest.mark.parametrize(
    ("value", "error", "fragment"),
    [
        ([1, 2], InvalidArgumentError, "must be a map"),
        (_tensor_map(name=""), InvalidArgumentError, "'name' must be a non-empty string"),
        (_tensor_map(datatype=3), InvalidArgumentError, "'datatype' must be a string"),
        (_tensor_map(shape=[2, -1]), InvalidArgumentError, "non-negative integers"),
        (_tensor_map(shape=[True]), InvalidArgumentError, "non-negative integers"),
        (_tensor_map(shape="2"), InvalidArgumentError, "non-negative integers"),
        (_tensor_map(data=[1, 2]), InvalidArgumentError, "must be MessagePack bin, got list"),
        (_tensor_map(datatype="BF16"), UnsupportedError, "BF16 is not supported"),
        (_tensor_map(datatype="NOPE"), InvalidArgumentError, "unknown datatype"),
    ],
)
def test_parse_tensor_rejects(value: object, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        wire.parse_tensor(value, where="inputs[0]")


def test_messages() -> None:
    message = {"type": "result", "id": 7, "data": b"\x00\x01", "shape": [1, 2]}
    assert wire.decode(wire.encode(message)) == message
    assert wire.error_message(None, "INTERNAL", "x") == {
        "type": "error",
        "code": "INTERNAL",
        "message": "x",
    }
    assert wire.error_message(3, "NOT_FOUND", "y")["id"] == 3
    assert wire.result_message(4, {"a": 1}) == {"type": "result", "id": 4, "a": 1}
    # Tensor data is packed as bin, never as a list of numbers.
    packed = wire.encode(wire.tensor_to_wire(wire.from_numpy("x", np.ones(3, dtype=np.float32))))
    assert msgpack.unpackb(packed)["data"] == np.ones(3, dtype="<f4").tobytes()


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        (b"\xc1", "not valid MessagePack"),
        (msgpack.packb([1, 2]), "must be a MessagePack map, got list"),
        (msgpack.packb({1: 2}), "not valid MessagePack"),
        (msgpack.packb({b"type": 2}, use_bin_type=True), "keys must be strings"),
        (msgpack.packb({"a": 1}) + b"\x01", "not valid MessagePack"),
        (b"\xa2\xff\xfe", "not valid MessagePack"),
    ],
)
def test_decode_rejects(frame: bytes, fragment: str) -> None:
    with pytest.raises(InvalidArgumentError, match=fragment):
        wire.decode(frame)


# -- the hot-path helpers: parse_array and array_to_wire -----------------------------------------


def _where() -> str:
    return "inputs[3]"


@pytest.mark.parametrize(("datatype", "dtype"), NUMERIC.items())
def test_parse_array_matches_parse_tensor_and_to_numpy(datatype: str, dtype: Any) -> None:
    array = (np.arange(6).reshape(2, 3) % 2).astype(dtype)
    value = {"name": "t", "datatype": datatype, "shape": [2, 3], "data": array.tobytes()}
    name, parsed = wire.parse_array(value, where=_where)
    expected = wire.to_numpy(wire.parse_tensor(value, where="inputs[3]"))
    assert name == "t"
    np.testing.assert_array_equal(parsed, expected)
    assert parsed.dtype == expected.dtype
    assert not parsed.flags.writeable


def test_parse_array_is_a_view_and_takes_the_long_way_otherwise() -> None:
    data = np.arange(4, dtype="<f4").tobytes()
    _, array = wire.parse_array(
        {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": data}, where=_where
    )
    assert np.shares_memory(array, np.frombuffer(data, dtype="<f4"))
    _, empty = wire.parse_array(
        {"name": "e", "datatype": "INT32", "shape": [0, 4], "data": b""}, where=_where
    )
    assert empty.shape == (0, 4)
    _, text = wire.parse_array(
        {"name": "s", "datatype": "BYTES", "shape": [1], "data": bytes_tensor_data([b"hi"])},
        where=_where,
    )
    assert text.tolist() == [b"hi"]
    _, from_tuple = wire.parse_array(
        {"name": "x", "datatype": "FP32", "shape": (2, 2), "data": bytearray(data)}, where=_where
    )
    np.testing.assert_array_equal(from_tuple, array)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([1], "inputs[3]: a tensor must be a map"),
        ({"name": "", "datatype": "FP32", "shape": [1], "data": b"1234"}, "inputs[3]: tensor"),
        ({"name": "x", "datatype": "FP32", "shape": [2], "data": b"1234"}, "needs 8 bytes"),
        ({"name": "x", "datatype": "FP32", "shape": [-1], "data": b""}, "non-negative"),
        ({"name": "x", "datatype": "FP32", "shape": [True], "data": b"1234"}, "non-negative"),
        ({"name": "b", "datatype": "BOOL", "shape": [2], "data": b"\x00\x02"}, "0 or 1"),
        ({"name": "x", "datatype": "FP8", "shape": [1], "data": b"1"}, "unknown datatype"),
        ({"name": "x", "datatype": ["FP32"], "shape": [1], "data": b"1"}, "must be a string"),
    ],
)
def test_parse_array_errors_are_those_of_the_long_way(value: object, fragment: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        wire.parse_array(value, where=_where)
    assert fragment in caught.value.message


@pytest.mark.parametrize(("datatype", "dtype"), NUMERIC.items())
def test_array_to_wire_matches_from_numpy(datatype: str, dtype: Any) -> None:
    array = (np.arange(12).reshape(3, 4) % 2).astype(dtype)
    fast = wire.array_to_wire("y", array)
    slow = wire.tensor_to_wire(wire.from_numpy("y", array))
    assert fast["datatype"] == slow["datatype"] == datatype
    assert fast["shape"] == slow["shape"] == [3, 4]
    assert bytes(fast["data"]) == bytes(slow["data"]) == array.astype(array.dtype).tobytes()


def test_array_to_wire_avoids_copies_when_it_can() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = wire.array_to_wire("y", array)["data"]
    assert isinstance(data, memoryview)
    assert np.shares_memory(np.frombuffer(data, dtype="<f4"), array), "a view of the output"
    column = wire.array_to_wire("c", array[:, 1])
    assert bytes(column["data"]) == np.array([1, 4], dtype="<f4").tobytes()
    assert column["shape"] == [2]
    big = wire.array_to_wire("b", np.arange(3, dtype=">i8"))
    assert (big["datatype"], bytes(big["data"])) == ("INT64", np.arange(3, dtype="<i8").tobytes())
    empty = wire.array_to_wire("e", np.zeros((0, 3), dtype=np.float32))
    assert (empty["shape"], empty["data"]) == ([0, 3], b"")
    scalar = wire.array_to_wire("s", np.array(1.5, dtype=np.float64))
    assert (scalar["shape"], bytes(scalar["data"])) == ([], np.float64(1.5).tobytes())
    text = wire.array_to_wire("t", np.array([b"a", "b"], dtype=object))
    assert (text["datatype"], text["data"]) == ("BYTES", bytes_tensor_data([b"a", b"b"]))
    with pytest.raises(UnsupportedError, match="complex"):
        wire.array_to_wire("c", np.zeros(2, dtype=np.complex64))
    assert wire.datatype_of(np.zeros(2, dtype=">f4")) == "FP32"
    assert wire.datatype_of(np.array(["x"])) == "BYTES"
