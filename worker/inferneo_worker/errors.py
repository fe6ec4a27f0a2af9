"""Errors that cross the worker ⇄ orchestrator boundary.

Every failure the worker reports carries one stable code from ``ErrorCode``; the table is shared
with ``orchestrator/src/errors.ts`` (a test checks that the two agree) and the orchestrator
translates a code to an HTTP / gRPC status in one place. Code inside the worker raises a
``WorkerError`` subclass; the server turns it into an ``error`` message or a per-request
``{"error": …}`` entry.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class ErrorCode(enum.StrEnum):
    """The stable error codes of protocol version 1 (docs/worker-protocol.md)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    """The request is malformed or does not match the model's inputs."""
    NOT_FOUND = "NOT_FOUND"
    """No such model or version in this worker's repository."""
    MODEL_NOT_READY = "MODEL_NOT_READY"
    """The model version exists but is not loaded."""
    LOAD_FAILED = "LOAD_FAILED"
    """Loading failed: bad file, bad config, exception in ``initialize``."""
    UNSUPPORTED = "UNSUPPORTED"
    """A datatype or feature the worker cannot serve."""
    UNKNOWN_WORKER = "UNKNOWN_WORKER"
    """The orchestrator does not know the sender (only the orchestrator sends it)."""
    INTERNAL = "INTERNAL"
    """A bug, or an exception in model code."""
    UNAVAILABLE = "UNAVAILABLE"
    """The worker is shutting down or overloaded."""


class WorkerError(Exception):
    """Base of every error the worker reports with a code.

    ``code`` and ``message`` are what goes on the wire; subclasses add structured fields (the model,
    the tensor, the config key) so that callers and tests need not parse the message.
    """

    default_code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code if code is not None else self.default_code
        self.message: str = message

    def to_wire(self) -> dict[str, str]:
        """The ``{"code", "message"}`` pair used in ``error`` messages and per-request errors."""
        return {"code": self.code.value, "message": self.message}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value}: {self.message!r})"


class InvalidArgumentError(WorkerError):
    """A malformed message or a request that does not match the model.

    ``field`` names what was wrong, when known: a message field such as ``"model"``, or a tensor.
    """

    default_code = ErrorCode.INVALID_ARGUMENT

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(WorkerError):
    """The model, or the version of it, is not in this worker's repository."""

    default_code = ErrorCode.NOT_FOUND

    def __init__(self, message: str, *, model: str, version: str | None = None) -> None:
        super().__init__(message)
        self.model = model
        self.version = version


class ModelNotReadyError(WorkerError):
    """The version exists in the repository but is not loaded (or is being unloaded)."""

    default_code = ErrorCode.MODEL_NOT_READY

    def __init__(self, message: str, *, model: str, version: str) -> None:
        super().__init__(message)
        self.model = model
        self.version = version


class LoadFailedError(WorkerError):
    """Loading a model version failed: bad file, bad config, or an exception in ``initialize``."""

    default_code = ErrorCode.LOAD_FAILED

    def __init__(self, message: str, *, model: str, version: str | None = None) -> None:
        super().__init__(message)
        self.model = model
        self.version = version


class UnsupportedError(WorkerError):
    """A datatype, platform or feature that this worker cannot serve."""

    default_code = ErrorCode.UNSUPPORTED

    def __init__(self, message: str, *, feature: str) -> None:
        super().__init__(message)
        self.feature = feature


class InternalError(WorkerError):
    """A bug in the worker, or an exception raised by model code."""

    default_code = ErrorCode.INTERNAL


class UnavailableError(WorkerError):
    """The worker cannot take the request now: it is stopping, or over its memory budget."""

    default_code = ErrorCode.UNAVAILABLE
