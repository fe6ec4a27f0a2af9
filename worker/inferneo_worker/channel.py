"""The worker's DEALER socket, driven by the asyncio loop's reader callback.

``zmq.asyncio`` turns every receive and send into a future and every message into a task wake-up;
on the worker's hot path (one request in, one reply out) that costs more than the rest of the
transport. ``LoopSocket`` keeps a plain ``zmq.Socket`` instead, used only from the loop thread and
only with ``NOBLOCK``, so the loop never blocks:

* **Receiving.** The loop watches the socket's ``FD``. ZeroMQ signals that descriptor when the
  socket's state *may* have changed (edge-like), so each wake-up reads ``EVENTS`` and receives
  until ``EAGAIN``; any call on the socket, a send included, may consume the signal, so every send
  schedules one more such check. At most ``batch`` messages are taken per wake-up, so that a flood
  of requests cannot starve the loop's timers (the rest are taken on the next turn).
* **Sending.** ``send`` sends at once when the socket takes the frame; otherwise (no connection to
  the orchestrator, or its queue full) the frame waits, in order, until ``EVENTS`` reports
  ``POLLOUT``, and ``send`` returns a future that is done once it went out (cancel it to drop the
  frame). ``send_or_drop`` is for periodic messages: sent at once, queued behind replies that wait,
  or dropped (``False``) when there is no connection.

``add_reader`` needs a selector event loop: asyncio's default on Linux and macOS (not Windows'
proactor loop).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Final, cast

import zmq

_log = logging.getLogger(__name__)

# Frames at least this large are handed to ZeroMQ without a copy.
ZERO_COPY_BYTES: Final = 64 * 1024
# Messages received per loop turn at most.
_DEFAULT_BATCH: Final = 64


class LoopSocket:
    """Receives into ``on_message`` and sends from the loop thread without blocking it."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        socket: zmq.Socket[bytes],
        on_message: Callable[[list[zmq.Frame]], None],
        *,
        batch: int = _DEFAULT_BATCH,
    ) -> None:
        self._loop = loop
        self._socket = socket
        self._on_message = on_message
        self._batch = batch
        self._fd = cast(int, socket.getsockopt(zmq.FD))
        # Frames waiting for the socket to take them, each with the future its sender waits on
        # (None for periodic messages, which nobody waits for).
        self._queue: collections.deque[tuple[bytes, asyncio.Future[None] | None]] = (
            collections.deque()
        )
        self._check_scheduled = False
        self._receiving = False
        self._closed = False

    def start(self) -> None:
        """Begin receiving; messages that arrived before are taken at once."""
        self._loop.add_reader(self._fd, self._on_ready)
        self._receiving = True
        self._schedule_check()

    def close(self) -> None:
        """Stop receiving and drop what waits to be sent (its futures are cancelled); the socket
        itself is the caller's to close."""
        self._closed = True
        self._stop_receiving()
        while self._queue:
            _, future = self._queue.popleft()
            if future is not None:
                future.cancel()

    @property
    def waiting(self) -> int:
        """Frames queued until the socket takes them."""
        return len(self._queue)

    # -- sending --------------------------------------------------------------------------------

    def send(self, frame: bytes) -> asyncio.Future[None] | None:
        """Send a reply: ``None`` when it went out (or failed, which is logged), else a future
        done once it goes out."""
        if not self._queue and self._try_send(frame):
            return None
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.append((frame, future))
        return future

    def send_or_drop(self, frame: bytes) -> bool:
        """Send a periodic message now, or behind the replies that wait; ``False`` (dropped) when
        the orchestrator is not connected."""
        if self._queue:
            self._queue.append((frame, None))
            return True
        return self._try_send(frame)

    def _try_send(self, frame: bytes) -> bool:
        """One non-blocking send; ``False`` only when the socket cannot take it now."""
        # The call may have consumed the FD's signal of an incoming message.
        self._schedule_check()
        try:
            self._socket.send(frame, zmq.NOBLOCK, copy=len(frame) < ZERO_COPY_BYTES)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            _log.error("cannot send a reply: %s", exc)
        return True

    def _flush(self) -> None:
        while self._queue:
            frame, future = self._queue[0]
            if future is not None and future.done():  # cancelled: dropped
                self._queue.popleft()
                continue
            if not self._try_send(frame):
                return
            self._queue.popleft()
            if future is not None:
                future.set_result(None)

    # -- receiving ------------------------------------------------------------------------------

    def _schedule_check(self) -> None:
        if not self._check_scheduled and not self._closed:
            self._check_scheduled = True
            self._loop.call_soon(self._on_ready)

    def _stop_receiving(self) -> None:
        if self._receiving:
            self._receiving = False
            self._loop.remove_reader(self._fd)

    def _on_ready(self) -> None:
        self._check_scheduled = False
        if self._closed:
            return
        try:
            events = cast(int, self._socket.getsockopt(zmq.EVENTS))
        except zmq.ZMQError as exc:
            _log.error("the socket failed: %s", exc)
            self._stop_receiving()
            return
        if events & zmq.POLLOUT and self._queue:
            self._flush()
        if not events & zmq.POLLIN or not self._receiving:
            return
        for _ in range(self._batch):
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:
                _log.error("receiving failed: %s", exc)
                self._stop_receiving()
                return
            try:
                self._on_message(frames)
            except Exception:
                # A bug in handling one message must not stop the receiving; the request (if
                # any) has already been answered or could not be identified.
                _log.exception("dispatching a message failed")
        # More may be waiting: take them on the next turn, after the loop's other callbacks.
        self._schedule_check()
