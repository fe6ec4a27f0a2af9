"""The subset of Triton's ``triton_python_backend_utils`` that Python-backend models use.

``python_runner`` registers this module in ``sys.modules`` as ``triton_python_backend_utils``, so a
``model.py`` written for Triton (``import triton_python_backend_utils as pb_utils``) runs unchanged.
Behaviour follows Triton's where models can observe it: ``Tensor`` refuses numpy ``str_`` arrays
(use ``object``), ``InferenceResponse`` requires a list, ``TritonError`` carries Triton's codes.
Features that need a Triton server (BLS ``exec``, decoupled response senders) raise
``TritonModelException``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

TRITON_STRING_TO_NUMPY: Final[Mapping[str, Any]] = {
    "TYPE_BOOL": np.bool_,
    "TYPE_UINT8": np.uint8,
    "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32,
    "TYPE_UINT64": np.uint64,
    "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
    "TYPE_STRING": np.object_,
}

# TRITONSERVER_DataType values, which Triton's numpy_to_triton_type / triton_to_numpy_type use.
_TRITON_TYPE_CODES: Final[Sequence[tuple[int, Any]]] = (
    (1, np.bool_),
    (2, np.uint8),
    (3, np.uint16),
    (4, np.uint32),
    (5, np.uint64),
    (6, np.int8),
    (7, np.int16),
    (8, np.int32),
    (9, np.int64),
    (10, np.float16),
    (11, np.float32),
    (12, np.float64),
    (13, np.object_),
)

_log = logging.getLogger("inferneo_worker.model")

__all__ = [
    "TRITON_STRING_TO_NUMPY",
    "InferenceRequest",
    "InferenceResponse",
    "Logger",
    "Tensor",
    "TritonError",
    "TritonModelException",
    "get_input_config_by_name",
    "get_input_tensor_by_name",
    "get_output_config_by_name",
    "get_output_tensor_by_name",
    "numpy_to_triton_type",
    "triton_string_to_numpy",
    "triton_to_numpy_type",
]


class TritonModelException(Exception):  # noqa: N818 (Triton's name)
    """Raised by the utilities (and by models) for a failure of the whole ``execute`` call."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self._msg = msg

    def message(self) -> str:
        return self._msg


class TritonError:
    """The error of one response: ``InferenceResponse([], error=TritonError(msg, code))``."""

    UNKNOWN: ClassVar[int] = 0
    INTERNAL: ClassVar[int] = 1
    NOT_FOUND: ClassVar[int] = 2
    INVALID_ARG: ClassVar[int] = 3
    UNAVAILABLE: ClassVar[int] = 4
    UNSUPPORTED: ClassVar[int] = 5
    ALREADY_EXISTS: ClassVar[int] = 6
    CANCELLED: ClassVar[int] = 7

    def __init__(self, message: str, code: int = INTERNAL) -> None:
        self._message = message
        self._code = code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code

    def __str__(self) -> str:
        return self._message

    def __repr__(self) -> str:
        return f"TritonError({self._message!r}, code={self._code})"


class Tensor:
    """A named numpy array: an input of a request or an output of a response."""

    def __init__(self, name: str, numpy_array: npt.NDArray[Any]) -> None:
        if not isinstance(numpy_array, np.ndarray):
            raise TritonModelException(f"Tensor '{name}': expected a numpy array")
        if numpy_array.dtype.type is np.str_ or numpy_array.dtype.kind == "V":
            raise TritonModelException(
                "Tensor dtype used for numpy_array is not supported by Python backend. "
                "Please use np.object_ instead."
            )
        self._name = name
        self._array = numpy_array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> npt.NDArray[Any]:
        return self._array

    def is_cpu(self) -> bool:
        return True

    def shape(self) -> list[int]:
        return [int(d) for d in self._array.shape]

    def triton_dtype(self) -> int | None:
        return numpy_to_triton_type(self._array.dtype)


class InferenceRequest:
    """A request handed to ``execute``. Building one in model code (Triton's BLS) is allowed, but
    running it is not: this worker has no other models to call."""

    def __init__(
        self,
        *,
        inputs: Sequence[Tensor],
        requested_output_names: Sequence[str] = (),
        request_id: str = "",
        correlation_id: int = 0,
        model_name: str = "",
        model_version: int = -1,
        flags: int = 0,
        parameters: str = "{}",
    ) -> None:
        self._inputs = list(inputs)
        self._requested_output_names = list(requested_output_names)
        self._request_id = request_id
        self._correlation_id = correlation_id
        self._model_name = model_name
        self._model_version = model_version
        self._flags = flags
        self._parameters = parameters

    def inputs(self) -> list[Tensor]:
        return self._inputs

    def requested_output_names(self) -> list[str]:
        return self._requested_output_names

    def request_id(self) -> str:
        return self._request_id

    def correlation_id(self) -> int:
        return self._correlation_id

    def flags(self) -> int:
        return self._flags

    def parameters(self) -> str:
        """Request parameters as a JSON string, as in Triton; always ``"{}"`` here."""
        return self._parameters

    def is_cancelled(self) -> bool:
        return False

    def get_response_sender(self) -> Any:
        raise TritonModelException("decoupled models are not supported by the Inferneo worker")

    def exec(self, *args: Any, **kwargs: Any) -> Any:
        raise TritonModelException(
            "BLS (InferenceRequest.exec) is not supported by the Inferneo worker"
        )

    async def async_exec(self, *args: Any, **kwargs: Any) -> Any:
        raise TritonModelException(
            "BLS (InferenceRequest.async_exec) is not supported by the Inferneo worker"
        )


class InferenceResponse:
    """What ``execute`` returns for each request: output tensors, or an error for that request."""

    def __init__(self, output_tensors: list[Tensor], error: TritonError | None = None) -> None:
        if not isinstance(output_tensors, list):
            raise TritonModelException('"output_tensors" must be a list.')
        self._output_tensors = output_tensors
        self._error = error

    def output_tensors(self) -> list[Tensor]:
        return self._output_tensors

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error


class Logger:
    """Triton's ``pb_utils.Logger``: model log lines go to the worker's log."""

    @staticmethod
    def log_info(message: str) -> None:
        _log.info("%s", message)

    @staticmethod
    def log_warn(message: str) -> None:
        _log.warning("%s", message)

    @staticmethod
    def log_error(message: str) -> None:
        _log.error("%s", message)

    @staticmethod
    def log_verbose(message: str) -> None:
        _log.debug("%s", message)


def get_input_tensor_by_name(inference_request: InferenceRequest, name: str) -> Tensor | None:
    for tensor in inference_request.inputs():
        if tensor.name() == name:
            return tensor
    return None


def get_output_tensor_by_name(inference_response: InferenceResponse, name: str) -> Tensor | None:
    for tensor in inference_response.output_tensors():
        if tensor.name() == name:
            return tensor
    return None


def get_input_config_by_name(model_config: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    for entry in model_config.get("input", []):
        if entry.get("name") == name:
            return dict(entry)
    return None


def get_output_config_by_name(model_config: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    for entry in model_config.get("output", []):
        if entry.get("name") == name:
            return dict(entry)
    return None


def triton_string_to_numpy(triton_type_string: str) -> Any:
    """``"TYPE_FP32"`` → ``numpy.float32``; ``"TYPE_STRING"`` → ``numpy.object_``."""
    return TRITON_STRING_TO_NUMPY[triton_type_string]


def triton_to_numpy_type(data_type: int) -> Any:
    for code, numpy_type in _TRITON_TYPE_CODES:
        if code == data_type:
            return numpy_type
    return None


def numpy_to_triton_type(data_type: Any) -> int | None:
    """A numpy dtype or type → Triton's ``TRITONSERVER_DataType`` value (``None`` if none)."""
    dtype = np.dtype(data_type)
    if dtype.kind in "OS":
        return 13
    for code, numpy_type in _TRITON_TYPE_CODES:
        if dtype == np.dtype(numpy_type):
            return code
    return None
