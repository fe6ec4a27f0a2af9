"""inferneo_worker.channel.LoopSocket against a scripted socket: the receive loop, the queue of
frames the socket could not take yet, and the failures it logs instead of raising."""

from __future__ import annotations

import asyncio
import collections
import os
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, cast

import pytest
import zmq

from inferneo_worker.channel import ZERO_COPY_BYTES, LoopSocket


class ScriptedSocket:
    """Enough of a ``zmq.Socket`` for LoopSocket: ``incoming`` frames to receive, ``can_send``
    to refuse sends with EAGAIN, ``fail`` to make a call raise ZMQError."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.incoming: collections.deque[list[bytes]] = collections.deque()
        self.sent: list[tuple[bytes, bool]] = []
        self.can_send = True
        self.claims_pollout = False
        self.fail: set[str] = set()

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)

    def getsockopt(self, option: int) -> int:
        if option == zmq.FD:
            return self.read_fd
        assert option == zmq.EVENTS
        if "events" in self.fail:
            raise zmq.ZMQError(zmq.ETERM)
        writable = self.can_send or self.claims_pollout
        return (zmq.POLLIN if self.incoming else 0) | (zmq.POLLOUT if writable else 0)

    def recv_multipart(self, flags: int, copy: bool) -> list[bytes]:
        assert flags == zmq.NOBLOCK
        if "recv" in self.fail:
            raise zmq.ZMQError(zmq.ETERM)
        if not self.incoming:
            raise zmq.Again()
        return self.incoming.popleft()

    def send(self, frame: bytes, flags: int, copy: bool) -> None:
        assert flags == zmq.NOBLOCK
        if "send" in self.fail:
            raise zmq.ZMQError(zmq.ETERM)
        if not self.can_send:
            raise zmq.Again()
        self.sent.append((frame, copy))


@pytest.fixture
def scripted() -> Iterator[ScriptedSocket]:
    socket = ScriptedSocket()
    yield socket
    socket.close()


def _channel(
    loop: asyncio.AbstractEventLoop,
    socket: ScriptedSocket,
    handle: Callable[[list[bytes]], None],
    **options: Any,
) -> LoopSocket:
    return LoopSocket(loop, cast("zmq.Socket[bytes]", socket), cast(Any, handle), **options)


async def _turns(count: int = 3) -> None:
    """Let the loop run its ready callbacks a few times."""
    for _ in range(count):
        await asyncio.sleep(0)


def _run(test: Callable[[asyncio.AbstractEventLoop], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        await test(asyncio.get_running_loop())

    asyncio.run(main())


def test_receives_in_bounded_turns(scripted: ScriptedSocket) -> None:
    received: list[bytes] = []

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        channel = _channel(loop, scripted, lambda f: received.append(f[0]), batch=4)
        scripted.incoming.extend([[b"%d" % i] for i in range(10)])
        channel.start()
        await asyncio.sleep(0)
        assert len(received) == 4, "one turn takes at most `batch` messages"
        await _turns(5)
        assert received == [b"%d" % i for i in range(10)]
        channel.close()

    _run(test)


def test_a_failing_handler_does_not_stop_receiving(
    scripted: ScriptedSocket, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[bytes] = []

    def handle(frames: list[bytes]) -> None:
        if frames[0] == b"bad":
            raise RuntimeError("bug")
        received.append(frames[0])

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        channel = _channel(loop, scripted, handle)
        scripted.incoming.extend([[b"bad"], [b"good"]])
        channel.start()
        await _turns()
        assert received == [b"good"]
        channel.close()

    _run(test)
    assert "dispatching a message failed" in caplog.text


def test_frames_wait_for_the_socket_in_order(scripted: ScriptedSocket) -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        channel = _channel(loop, scripted, lambda f: None)
        channel.start()
        assert channel.send(b"now") is None
        scripted.can_send = False
        assert channel.send_or_drop(b"tick") is False, "periodic messages are dropped"
        first = channel.send(b"first")
        dropped = channel.send(b"dropped")
        assert first is not None
        assert dropped is not None
        assert channel.send(b"second") is not None
        assert channel.send_or_drop(b"tock") is True, "queued behind the replies"
        assert channel.waiting == 4
        dropped.cancel()
        scripted.claims_pollout = True  # POLLOUT, yet the send finds no room: keep waiting
        channel._schedule_check()
        await _turns()
        assert not first.done()
        scripted.claims_pollout = False
        scripted.can_send = True
        channel._schedule_check()  # what the FD's signal does when the socket can send again
        await _turns()
        assert first.done()
        assert channel.waiting == 0
        assert [frame for frame, _ in scripted.sent] == [b"now", b"first", b"second", b"tock"]
        big = b"x" * ZERO_COPY_BYTES
        channel.send(big)
        assert scripted.sent[-1] == (big, False), "large frames go without a copy"
        scripted.can_send = False
        last = channel.send(b"last")
        channel.close()
        assert last is not None
        assert last.cancelled(), "close drops what still waits"
        channel.close()  # idempotent

    _run(test)


def test_socket_failures_are_logged(
    scripted: ScriptedSocket, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[bytes] = []

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        channel = _channel(loop, scripted, lambda f: received.append(f[0]))
        channel.start()
        scripted.fail.add("send")
        assert channel.send(b"reply") is None
        assert "cannot send a reply" in caplog.text
        scripted.fail.clear()

        scripted.fail.add("recv")
        scripted.incoming.append([b"lost"])
        channel._schedule_check()
        await _turns()
        assert "receiving failed" in caplog.text
        scripted.fail.clear()
        channel._schedule_check()
        await _turns()
        assert received == [], "receiving stopped"
        channel.close()

        other = _channel(loop, scripted, lambda f: received.append(f[0]))
        scripted.fail.add("events")
        other.start()
        await _turns()
        assert "the socket failed" in caplog.text
        other.close()

    _run(test)


def test_a_real_socket_pair(tmp_path: Any) -> None:
    """Over real ZeroMQ: messages that arrive while the loop is busy elsewhere are not missed,
    including after sends that consumed the descriptor's signal."""
    endpoint = f"ipc://{tmp_path}/pair.sock"
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.bind(endpoint)
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.ROUTING_ID, b"w")
    dealer.connect(endpoint)

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        echoed = 0

        def echo(frames: list[zmq.Frame]) -> None:
            nonlocal echoed
            channel.send(bytes(frames[0].buffer))
            echoed += 1

        channel = LoopSocket(loop, dealer, echo)
        channel.send(b"hello")
        await loop.run_in_executor(None, router.recv_multipart)
        channel.start()
        for round_ in range(50):
            for index in range(round_ % 3 + 1):
                router.send_multipart([b"w", b"%d-%d" % (round_, index)])
            for _ in range(round_ % 3 + 1):
                while not router.poll(0):
                    await asyncio.sleep(0.001)
                router.recv_multipart()
        assert echoed == sum(r % 3 + 1 for r in range(50))
        channel.close()

    try:
        _run(test)
    finally:
        dealer.close(linger=0)
        router.close(linger=0)
        context.term()
