"""The worker's side of the orchestrator protocol (docs/worker-protocol.md) on one asyncio loop.

The loop owns the DEALER socket (``channel.LoopSocket``: non-blocking sends and receives from the
loop's reader callback) and never blocks: loads, unloads and inference (including tensor decoding
and result encoding) are submitted to a ``ThreadPoolExecutor`` of ``threads`` workers, and only
the finished frame comes back to the loop (``call_soon_threadsafe``) to be sent. Every request is
answered exactly once, with a ``result`` or an ``error`` carrying a stable code; nothing a request
does can stop the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Final

import zmq

from . import wire
from ._proc import rss_bytes
from .channel import LoopSocket
from .config import WorkerConfig
from .errors import ErrorCode, InternalError, InvalidArgumentError, UnavailableError, WorkerError
from .model_host import ModelHost
from .runners import BatchRequest, InferRequest, InferResponse
from .runners.generation import FinishReason, Usage, parse_generate

_log = logging.getLogger(__name__)

# Missed acknowledgements tolerated: the protocol's heartbeat timeout is 3 × the interval.
_TIMEOUT_INTERVALS: Final = 3
# Retry period of a hello that found no connection to send on.
_RECONNECT_S: Final = 0.1
# How long close() lets ZeroMQ flush the last replies.
_LINGER_MS: Final = 1000

_REQUEST_TYPES: Final = frozenset({"load", "unload", "infer", "stats", "generate", "cancel"})

# A request handler: (request id, message) → the answer's frame; raises WorkerError.
_Handler = Callable[[int, dict[str, Any]], bytes]


class ServerState(enum.Enum):
    """Lifecycle of a ``WorkerServer``: CREATED → RUNNING → STOPPING → STOPPED."""

    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"
    """No new requests (they get ``UNAVAILABLE``); those held are being answered."""
    STOPPED = "stopped"


class Registration(enum.Enum):
    """Whether the orchestrator has acknowledged this worker's hello."""

    HELLO_PENDING = "hello_pending"
    REGISTERED = "registered"


def _request_id(message: dict[str, Any]) -> int | None:
    value = message.get("id")
    return value if type(value) is int and value >= 0 else None


def _string_field(message: dict[str, Any], key: str) -> str:
    value = message.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"'{key}' must be a non-empty string", field=key)
    return value


def _output_names(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if type(value) is not list or not all(type(name) is str for name in value):
        raise InvalidArgumentError(f"{where}.outputs must be a list of output names", field=where)
    return tuple(value)


def _decode_inputs(inputs: object, where: str) -> dict[str, Any]:
    if type(inputs) is not list:
        raise InvalidArgumentError(f"{where}.inputs must be a list of tensors", field=where)
    arrays: dict[str, Any] = {}
    for position, value in enumerate(inputs):
        # The tensor's place is worded only if it is malformed.
        located = partial("{}.inputs[{}]".format, where, position)
        name, array = wire.parse_array(value, where=located)
        if name in arrays:
            raise InvalidArgumentError(f"{where}: input '{name}' is given twice", field=name)
        arrays[name] = array
    return arrays


def _decode_request(index: int, raw: object) -> InferRequest:
    where = f"requests[{index}]"
    if type(raw) is not dict:
        raise InvalidArgumentError(f"{where} must be a map", field=where)
    return InferRequest(
        inputs=_decode_inputs(raw.get("inputs"), where),
        outputs=_output_names(raw.get("outputs"), where),
    )


def _decode_batch(raw: object) -> BatchRequest:
    """The ``batch`` of a whole-batch ``infer``, checked for form; ``validate_batch`` checks it
    against the model."""
    if type(raw) is not dict:
        raise InvalidArgumentError("'batch' must be a map", field="batch")
    rows = raw.get("rows")
    if type(rows) is not list or not all(type(count) is int for count in rows):
        raise InvalidArgumentError("batch.rows must be a list of integers", field="rows")
    return BatchRequest(
        inputs=_decode_inputs(raw.get("inputs"), "batch"),
        rows=tuple(rows),
        outputs=_output_names(raw.get("outputs"), "batch"),
    )


def _encode_outputs(outputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    try:
        return [wire.array_to_wire(name, array) for name, array in outputs.items()]
    except WorkerError as exc:
        raise InternalError(f"cannot encode an output: {exc.message}") from None


def _encode_response(response: InferResponse) -> dict[str, Any]:
    if response.error is not None:
        return {"error": response.error.to_wire()}
    try:
        return {"outputs": _encode_outputs(response.outputs)}
    except WorkerError as exc:
        return {"error": exc.to_wire()}


def _error_frame(request_id: int | None, error: WorkerError) -> bytes:
    return wire.encode(wire.error_message(request_id, error.code.value, error.message))


class _StreamSink:
    """Turns one sequence's output into frames for the loop to send: a ``result`` with ``final``
    false per delta, then one with ``final`` true (or an ``error``). Called from the runner's
    threads; every frame goes through ``call_soon_threadsafe``, in order."""

    __slots__ = ("_id", "_marker", "_server")

    def __init__(self, server: WorkerServer, request_id: int, marker: asyncio.Future[None]) -> None:
        self._server = server
        self._id = request_id
        self._marker = marker

    def delta(self, text: str, tokens: int) -> None:
        frame = wire.encode(
            {"type": "result", "id": self._id, "final": False, "text": text, "tokens": tokens}
        )
        self._server._send_threadsafe(frame)

    def finish(self, reason: FinishReason, usage: Usage, text: str = "") -> None:
        frame = wire.encode(
            {
                "type": "result",
                "id": self._id,
                "final": True,
                "text": text,
                "tokens": 0,
                "finish_reason": reason.value,
                "usage": usage.to_wire(),
            }
        )
        self._server._finish_threadsafe(self._marker, frame)

    def fail(self, error: WorkerError) -> None:
        self._server._finish_threadsafe(self._marker, _error_frame(self._id, error))


class WorkerServer:
    """Connects to the orchestrator and serves it until ``stop()``; then drains and closes."""

    def __init__(self, config: WorkerConfig, host: ModelHost | None = None) -> None:
        self._config = config
        self._host = host or ModelHost(
            config.model_repository,
            models=config.models,
            intra_op_threads=config.intra_op_threads,
            memory_budget_bytes=config.memory_budget_bytes,
        )
        self._state = ServerState.CREATED
        self._registration = Registration.HELLO_PENDING
        self._interval_s = config.heartbeat_interval_ms / 1000
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = False
        # Loop-thread state: only touched from coroutines and callbacks on self._loop.
        # What the drain on stop waits for: a future per request in an executor thread (done when
        # its answer is handed to the socket) and one per answer the socket has not taken yet.
        self._pending: set[asyncio.Future[None]] = set()
        self._inflight = 0
        self._last_ack = 0.0
        self._next_hello = 0.0
        self._next_heartbeat = 0.0
        self._wake: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._channel: LoopSocket | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._handlers: dict[str, _Handler] = {
            "load": self._load,
            "unload": self._unload,
            "infer": self._infer,
        }

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def registration(self) -> Registration:
        return self._registration

    @property
    def host(self) -> ModelHost:
        return self._host

    def stop(self) -> None:
        """Begin a graceful stop. Idempotent; callable from any thread or a signal handler."""
        # The flag first: run() checks it after publishing its loop, so a stop that races with
        # the start is seen by one side or the other (and _begin_stop is idempotent).
        self._stop_requested = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._begin_stop)

    def _begin_stop(self) -> None:
        if self._state is ServerState.RUNNING:
            _log.info("stopping: answering %d request(s) in progress", len(self._pending))
            self._state = ServerState.STOPPING
        if self._stop_event is not None:
            self._stop_event.set()

    async def run(self) -> None:
        """Serve until ``stop()``, then answer what is held, finalize models and close."""
        if self._state is not ServerState.CREATED:
            raise RuntimeError("WorkerServer.run() can be called once")
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._state = ServerState.RUNNING
        if self._stop_requested:
            self._begin_stop()

        context = zmq.Context()
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.ROUTING_ID, self._config.worker_id.encode("utf-8"))
        socket.setsockopt(zmq.LINGER, _LINGER_MS)
        # Queue messages only on a completed connection, so that periodic messages are dropped
        # rather than piled up while the orchestrator is away (replies wait for it instead).
        socket.setsockopt(zmq.IMMEDIATE, 1)
        socket.setsockopt(zmq.RECONNECT_IVL, 100)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        socket.connect(self._config.connect)
        self._channel = LoopSocket(self._loop, socket, self._dispatch)
        self._executor = ThreadPoolExecutor(
            max_workers=self._config.threads, thread_name_prefix="inferneo-worker"
        )
        _log.info(
            "connected to %s (capacity %d, repository %s)",
            self._config.connect,
            self._config.capacity,
            self._config.model_repository,
        )
        self._channel.start()
        liveness = asyncio.create_task(self._liveness_loop(), name="inferneo-liveness")
        try:
            await self._stop_event.wait()
            # STOPPING: keep receiving (new requests get UNAVAILABLE) and heartbeating while the
            # requests already taken finish.
            while self._pending:
                _, unsent = await asyncio.wait(set(self._pending), timeout=_LINGER_MS / 1000)
                if unsent and self._inflight == 0:
                    # Every answer is computed; what is left waits for a connection that is not
                    # there (the orchestrator is gone) and must not keep the worker alive.
                    _log.warning("%d answer(s) not sent: no orchestrator connected", len(unsent))
                    for task in unsent:
                        task.cancel()
                    await asyncio.wait(unsent)
            await self._loop.run_in_executor(self._executor, self._host.close)
        finally:
            liveness.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await liveness
            self._channel.close()
            self._executor.shutdown(wait=True)
            socket.close(linger=_LINGER_MS)
            context.term()
            self._state = ServerState.STOPPED
            _log.info("stopped")

    # -- sending --------------------------------------------------------------------------------

    def _reply(self, frame: bytes) -> None:
        """Send an answer; one the socket cannot take yet is held (and waited for on stop)."""
        assert self._channel is not None
        waiting = self._channel.send(frame)
        if waiting is not None:
            self._pending.add(waiting)
            waiting.add_done_callback(self._pending.discard)

    def _send_periodic(self, message: dict[str, Any]) -> bool:
        """Send hello/heartbeat without waiting. With no connection to the orchestrator the
        message is dropped (False): the next one carries the same information, and a burst of
        stale ones on reconnection would only confuse the orchestrator."""
        assert self._channel is not None
        if self._channel.send_or_drop(wire.encode(message)):
            return True
        _log.debug("no connection to the orchestrator: %s not sent", message["type"])
        return False

    def _loaded(self) -> list[dict[str, str]]:
        return [{"model": m, "version": v} for m, v in self._host.loaded()]

    def _send_hello(self) -> bool:
        return self._send_periodic(
            {
                "type": "hello",
                "worker_id": self._config.worker_id,
                "pid": os.getpid(),
                "protocol": wire.PROTOCOL_VERSION,
                "capacity": self._config.capacity,
                "models": list(self._config.models),
                "loaded": self._loaded(),
                "memory_budget_bytes": self._config.memory_budget_bytes,
            }
        )

    def _send_heartbeat(self) -> None:
        self._send_periodic(
            {
                "type": "heartbeat",
                "worker_id": self._config.worker_id,
                "inflight": self._inflight,
                "loaded": self._loaded(),
                "rss_bytes": rss_bytes(),
            }
        )

    def _reply_error(self, request_id: int | None, error: WorkerError) -> None:
        self._reply(_error_frame(request_id, error))

    # -- liveness -------------------------------------------------------------------------------

    async def _liveness_loop(self) -> None:
        """Hello until acknowledged, then heartbeats; wakes only at the next deadline or when a
        received message changes the registration."""
        assert self._loop is not None
        assert self._wake is not None
        loop = self._loop
        self._next_hello = loop.time()
        while True:
            now = loop.time()
            timeout = _TIMEOUT_INTERVALS * self._interval_s
            if self._registration is Registration.REGISTERED and now - self._last_ack >= timeout:
                _log.warning(
                    "no acknowledgement for %.1f s: saying hello again", now - self._last_ack
                )
                self._registration = Registration.HELLO_PENDING
                self._next_hello = now
            if self._registration is Registration.HELLO_PENDING:
                if now >= self._next_hello:
                    # A hello that could not even be sent (not connected yet) is retried soon;
                    # one that was sent waits the heartbeat timeout for its acknowledgement.
                    sent = self._send_hello()
                    self._next_hello = now + (timeout if sent else min(timeout, _RECONNECT_S))
                deadline = self._next_hello
            else:
                if now >= self._next_heartbeat:
                    self._send_heartbeat()
                    self._next_heartbeat = now + self._interval_s
                deadline = min(self._next_heartbeat, self._last_ack + timeout)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - loop.time()))

    def _on_hello_ack(self, message: dict[str, Any]) -> None:
        assert self._loop is not None
        assert self._wake is not None
        if message.get("protocol") != wire.PROTOCOL_VERSION:
            _log.error(
                "the orchestrator speaks protocol %r, this worker %d: ignoring its hello",
                message.get("protocol"),
                wire.PROTOCOL_VERSION,
            )
            return
        interval = message.get("heartbeat_interval_ms")
        if type(interval) is int and interval > 0:
            self._interval_s = interval / 1000
        else:
            _log.warning("hello acknowledgement has no valid heartbeat_interval_ms: %r", interval)
        now = self._loop.time()
        self._last_ack = now
        if self._registration is not Registration.REGISTERED:
            self._registration = Registration.REGISTERED
            self._next_heartbeat = now + self._interval_s
            _log.info("registered (heartbeat every %d ms)", round(self._interval_s * 1000))
        self._wake.set()

    def _on_heartbeat_ack(self) -> None:
        assert self._loop is not None
        if self._registration is Registration.REGISTERED:
            self._last_ack = self._loop.time()

    def _on_orchestrator_error(self, message: dict[str, Any]) -> None:
        assert self._loop is not None
        assert self._wake is not None
        if message.get("code") == ErrorCode.UNKNOWN_WORKER.value:
            _log.warning("the orchestrator does not know this worker: saying hello again")
            self._registration = Registration.HELLO_PENDING
            self._next_hello = self._loop.time()
            self._wake.set()
        else:
            _log.warning(
                "error from the orchestrator: %s %s", message.get("code"), message.get("message")
            )

    # -- receiving ------------------------------------------------------------------------------

    def _dispatch(self, frames: list[zmq.Frame]) -> None:
        if len(frames) != 1:
            self._reply_error(
                None,
                InvalidArgumentError(f"a message must be one frame, got {len(frames)}"),
            )
            return
        try:
            message = wire.decode(frames[0].buffer)
        except InvalidArgumentError as exc:
            self._reply_error(None, exc)
            return
        kind = message.get("type")
        request_id = _request_id(message)
        if kind == "hello":
            self._on_hello_ack(message)
        elif kind == "heartbeat":
            self._on_heartbeat_ack()
        elif kind == "error":
            self._on_orchestrator_error(message)
        elif type(kind) is not str or kind not in _REQUEST_TYPES:
            self._reply_error(
                request_id, InvalidArgumentError(f"unknown message type {kind!r}", field="type")
            )
        elif request_id is None:
            self._reply_error(
                None,
                InvalidArgumentError(
                    f"{kind} needs an unsigned integer 'id', got {message.get('id')!r}", field="id"
                ),
            )
        elif kind == "cancel":
            # No answer: the sequence ends with its final result (finish_reason "cancelled"),
            # unless it has ended already.
            self._host.cancel(request_id)
        elif self._state is not ServerState.RUNNING:
            self._reply_error(request_id, UnavailableError("the worker is shutting down"))
        elif kind == "generate":
            self._generate(request_id, message)
        elif kind == "stats":
            # Cheap and lock-light: answered on the loop so that it works even when every
            # executor thread is busy.
            self._reply(self._answer(request_id, self._stats, message))
        else:
            self._submit(request_id, self._handlers[kind], message)

    def _answer(self, request_id: int, handler: _Handler, message: dict[str, Any]) -> bytes:
        """Run a handler; whatever it raises becomes the request's ``error`` frame."""
        try:
            return handler(request_id, message)
        except WorkerError as exc:
            return _error_frame(request_id, exc)
        except BaseException as exc:
            _log.exception("request %d failed unexpectedly", request_id)
            return _error_frame(request_id, InternalError(f"{type(exc).__name__}: {exc}"))

    def _submit(self, request_id: int, handler: _Handler, message: dict[str, Any]) -> None:
        """Run a handler in an executor thread; its frame comes back through ``_finish``."""
        assert self._loop is not None
        assert self._executor is not None
        marker: asyncio.Future[None] = self._loop.create_future()
        self._pending.add(marker)
        self._inflight += 1
        self._executor.submit(self._execute, marker, request_id, handler, message)

    def _execute(
        self,
        marker: asyncio.Future[None],
        request_id: int,
        handler: _Handler,
        message: dict[str, Any],
    ) -> None:
        # Executor thread: the one hand-off back to the loop is this callback.
        frame = self._answer(request_id, handler, message)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._finish, marker, frame)

    def _send_threadsafe(self, frame: bytes) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._reply, frame)

    def _finish_threadsafe(self, marker: asyncio.Future[None], frame: bytes) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._finish, marker, frame)

    def _finish(self, marker: asyncio.Future[None], frame: bytes) -> None:
        self._inflight -= 1
        self._reply(frame)
        self._pending.discard(marker)
        if not marker.done():
            marker.set_result(None)

    def _generate(self, request_id: int, message: dict[str, Any]) -> None:
        """Start a sequence (loop thread: it only queues it); its frames come back through a
        ``_StreamSink`` from the runner's threads."""
        assert self._loop is not None
        marker: asyncio.Future[None] = self._loop.create_future()
        try:
            model = _string_field(message, "model")
            version = _string_field(message, "version")
            request = parse_generate(message)
            sink = _StreamSink(self, request_id, marker)
            self._pending.add(marker)
            self._inflight += 1
            self._host.generate(model, version, request_id, request, sink)
        except WorkerError as exc:
            if marker in self._pending:
                self._finish(marker, _error_frame(request_id, exc))
            else:
                self._reply_error(request_id, exc)

    # -- request handlers (executor threads, except _stats) --------------------------------------

    def _load(self, request_id: int, message: dict[str, Any]) -> bytes:
        model = _string_field(message, "model")
        version = _string_field(message, "version")
        source = None if message.get("source") is None else _string_field(message, "source")
        loaded = self._host.load(model, version, source=source)
        return wire.encode(
            wire.result_message(
                request_id,
                {
                    "model": model,
                    "version": version,
                    "metadata": loaded.metadata.to_wire(),
                    "memory_bytes": loaded.memory_bytes,
                    "warmup_ms": loaded.warmup_ms,
                },
            )
        )

    def _unload(self, request_id: int, message: dict[str, Any]) -> bytes:
        model = _string_field(message, "model")
        version = _string_field(message, "version")
        self._host.unload(model, version)
        return wire.encode(wire.result_message(request_id, {"model": model, "version": version}))

    def _infer(self, request_id: int, message: dict[str, Any]) -> bytes:
        model = _string_field(message, "model")
        version = _string_field(message, "version")
        raw_requests = message.get("requests")
        raw_batch = message.get("batch")
        if raw_batch is not None:
            if raw_requests is not None:
                raise InvalidArgumentError(
                    "an infer message carries 'requests' or 'batch', not both", field="batch"
                )
            outputs = self._host.infer_batch(model, version, _decode_batch(raw_batch))
            return wire.encode(
                {
                    "type": "result",
                    "id": request_id,
                    "batch": {"outputs": _encode_outputs(outputs)},
                }
            )
        if type(raw_requests) is not list:
            raise InvalidArgumentError(
                "'requests' must be a list (or 'batch' a map)", field="requests"
            )
        decoded: list[InferRequest] = []
        failed: dict[int, InferResponse] = {}
        for index, raw in enumerate(raw_requests):
            try:
                decoded.append(_decode_request(index, raw))
            except WorkerError as exc:
                failed[index] = InferResponse.failed(exc)
        responses = self._host.infer(model, version, decoded)
        if failed:
            served = iter(responses)
            responses = [
                failed[index] if index in failed else next(served)
                for index in range(len(raw_requests))
            ]
        return wire.encode(
            {
                "type": "result",
                "id": request_id,
                "responses": [_encode_response(r) for r in responses],
            }
        )

    def _stats(self, request_id: int, message: dict[str, Any]) -> bytes:
        return wire.encode(
            wire.result_message(
                request_id,
                {
                    "rss_bytes": rss_bytes(),
                    "models": [s.to_wire() for s in self._host.stats()],
                },
            )
        )
