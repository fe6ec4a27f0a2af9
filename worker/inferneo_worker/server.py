"""The worker's side of the orchestrator protocol (docs/worker-protocol.md) on one asyncio loop.

The loop owns the DEALER socket and never blocks: loads, unloads and inference (including tensor
decoding and result encoding) run in a ``ThreadPoolExecutor`` of ``threads`` workers, and only the
finished frame comes back to the loop to be sent. Every request is answered exactly once, with a
``result`` or an ``error`` carrying a stable code; nothing a request does can stop the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, cast

import zmq
import zmq.asyncio

from . import wire
from ._proc import rss_bytes
from .config import WorkerConfig
from .errors import ErrorCode, InternalError, InvalidArgumentError, UnavailableError, WorkerError
from .model_host import ModelHost
from .runners import InferRequest, InferResponse

_log = logging.getLogger(__name__)

# Missed acknowledgements tolerated: the protocol's heartbeat timeout is 3 × the interval.
_TIMEOUT_INTERVALS: Final = 3
# Frames at least this large are handed to ZeroMQ without a copy.
_ZERO_COPY_BYTES: Final = 64 * 1024
# Retry period of a hello that found no connection to send on.
_RECONNECT_S: Final = 0.1
# How long close() lets ZeroMQ flush the last replies.
_LINGER_MS: Final = 1000

_REQUEST_TYPES: Final = frozenset({"load", "unload", "infer", "stats"})


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


def _decode_request(index: int, raw: object) -> InferRequest:
    where = f"requests[{index}]"
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"{where} must be a map", field=where)
    inputs = raw.get("inputs")
    if not isinstance(inputs, list):
        raise InvalidArgumentError(f"{where}.inputs must be a list of tensors", field=where)
    arrays: dict[str, Any] = {}
    for position, value in enumerate(inputs):
        tensor = wire.parse_tensor(value, where=f"{where}.inputs[{position}]")
        if tensor.name in arrays:
            raise InvalidArgumentError(
                f"{where}: input '{tensor.name}' is given twice", field=tensor.name
            )
        arrays[tensor.name] = wire.to_numpy(tensor)
    outputs = raw.get("outputs")
    if outputs is None:
        outputs = []
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        raise InvalidArgumentError(f"{where}.outputs must be a list of output names", field=where)
    return InferRequest(inputs=arrays, outputs=tuple(outputs))


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _encode_response(response: InferResponse) -> dict[str, Any]:
    if response.error is not None:
        return {"error": response.error.to_wire()}
    try:
        tensors = [
            wire.tensor_to_wire(wire.from_numpy(name, array))
            for name, array in response.outputs.items()
        ]
    except WorkerError as exc:
        return {"error": InternalError(f"cannot encode an output: {exc.message}").to_wire()}
    return {"outputs": tensors}


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
        self._pending: set[asyncio.Task[None]] = set()
        self._inflight = 0
        self._last_ack = 0.0
        self._next_hello = 0.0
        self._next_heartbeat = 0.0
        self._wake: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._socket: zmq.asyncio.Socket | None = None
        self._executor: ThreadPoolExecutor | None = None

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

        context = zmq.asyncio.Context()
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.ROUTING_ID, self._config.worker_id.encode("utf-8"))
        socket.setsockopt(zmq.LINGER, _LINGER_MS)
        # Queue messages only on a completed connection, so that periodic messages are dropped
        # rather than piled up while the orchestrator is away (replies wait for it instead).
        socket.setsockopt(zmq.IMMEDIATE, 1)
        socket.setsockopt(zmq.RECONNECT_IVL, 100)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        socket.connect(self._config.connect)
        self._socket = socket
        self._executor = ThreadPoolExecutor(
            max_workers=self._config.threads, thread_name_prefix="inferneo-worker"
        )
        _log.info(
            "connected to %s (capacity %d, repository %s)",
            self._config.connect,
            self._config.capacity,
            self._config.model_repository,
        )
        receiver = asyncio.create_task(self._receive_loop(), name="inferneo-receive")
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
            for task in (receiver, liveness):
                task.cancel()
            for task in (receiver, liveness):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._executor.shutdown(wait=True)
            socket.close(linger=_LINGER_MS)
            context.term()
            self._state = ServerState.STOPPED
            _log.info("stopped")

    # -- sending --------------------------------------------------------------------------------

    async def _send(self, frame: bytes) -> None:
        assert self._socket is not None
        try:
            await self._socket.send(frame, copy=len(frame) < _ZERO_COPY_BYTES)
        except zmq.ZMQError as exc:
            _log.error("cannot send a reply: %s", exc)

    def _send_periodic(self, message: dict[str, Any]) -> bool:
        """Send hello/heartbeat without waiting. With no connection to the orchestrator the
        message is dropped (False): the next one carries the same information, and a burst of
        stale ones on reconnection would only confuse the orchestrator."""
        assert self._socket is not None
        # zmq.asyncio reports a non-blocking failure through the returned future, not by raising;
        # the future is still pending only when it queued behind replies that wait to be sent.
        future = cast(
            "asyncio.Future[Any]", self._socket.send(wire.encode(message), flags=zmq.NOBLOCK)
        )
        if not future.done():
            future.add_done_callback(_consume_exception)
            return True
        if future.exception() is not None:
            _log.debug("no connection to the orchestrator: %s not sent", message["type"])
            return False
        return True

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
        frame = wire.encode(wire.error_message(request_id, error.code.value, error.message))
        self._track(self._send(frame))

    def _track(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

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

    async def _receive_loop(self) -> None:
        assert self._socket is not None
        while True:
            try:
                frames = await self._socket.recv_multipart(copy=False)
            except zmq.ZMQError as exc:
                _log.error("receiving failed: %s", exc)
                return
            try:
                self._dispatch(frames)
            except Exception:
                # A bug in dispatch must not end the receive loop; the request (if any) has
                # already been answered or could not be identified.
                _log.exception("dispatching a message failed")

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
        elif kind not in _REQUEST_TYPES:
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
        elif self._state is not ServerState.RUNNING:
            self._reply_error(request_id, UnavailableError("the worker is shutting down"))
        elif kind == "stats":
            # Cheap and lock-light: answered on the loop so that it works even when every
            # executor thread is busy.
            self._track(self._serve(request_id, functools.partial(self._stats, request_id)))
        else:
            handler = {"load": self._load, "unload": self._unload, "infer": self._infer}[kind]
            job = functools.partial(handler, request_id, message)
            self._track(self._serve(request_id, job, in_executor=True))

    async def _serve(
        self, request_id: int, job: Callable[[], bytes], *, in_executor: bool = False
    ) -> None:
        assert self._loop is not None
        try:
            if in_executor:
                self._inflight += 1
                try:
                    frame = await self._loop.run_in_executor(self._executor, job)
                finally:
                    self._inflight -= 1
            else:
                frame = job()
        except asyncio.CancelledError:
            raise
        except WorkerError as exc:
            frame = wire.encode(wire.error_message(request_id, exc.code.value, exc.message))
        except BaseException as exc:
            _log.exception("request %d failed unexpectedly", request_id)
            frame = wire.encode(
                wire.error_message(
                    request_id, ErrorCode.INTERNAL.value, f"{type(exc).__name__}: {exc}"
                )
            )
        await self._send(frame)

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
        if not isinstance(raw_requests, list):
            raise InvalidArgumentError("'requests' must be a list", field="requests")
        responses: list[InferResponse | None] = []
        decoded: list[InferRequest] = []
        for index, raw in enumerate(raw_requests):
            try:
                decoded.append(_decode_request(index, raw))
                responses.append(None)
            except WorkerError as exc:
                responses.append(InferResponse.failed(exc))
        served = iter(self._host.infer(model, version, decoded))
        merged = [r if r is not None else next(served) for r in responses]
        return wire.encode(
            wire.result_message(request_id, {"responses": [_encode_response(r) for r in merged]})
        )

    def _stats(self, request_id: int) -> bytes:
        return wire.encode(
            wire.result_message(
                request_id,
                {
                    "rss_bytes": rss_bytes(),
                    "models": [s.to_wire() for s in self._host.stats()],
                },
            )
        )
