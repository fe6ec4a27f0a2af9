"""The worker server against a real ZeroMQ ROUTER socket playing the orchestrator."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from conftest import (
    Orchestrator,
    ServerThread,
    bytes_tensor_data,
    ort_outputs,
    random_features,
    write_slow_model,
)
from inferneo_worker.config import WorkerConfig
from inferneo_worker.runners import InferResponse
from inferneo_worker.server import Registration, ServerState, WorkerServer, _encode_response

StartServer = Callable[..., ServerThread]


def _fp32(name: str, array: np.ndarray[Any, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": "FP32",
        "shape": list(array.shape),
        "data": array.astype("<f4").tobytes(),
    }


def _decode(tensor: dict[str, Any]) -> np.ndarray[Any, Any]:
    dtype = {"FP32": "<f4", "INT64": "<i8", "INT32": "<i4"}[tensor["datatype"]]
    return np.frombuffer(tensor["data"], dtype=dtype).reshape(tensor["shape"])


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.fixture
def slow_repository(model_repository: Path) -> Path:
    write_slow_model(model_repository)
    return model_repository


# -- registration and liveness ------------------------------------------------------------------


def test_hello_ack_and_heartbeats(
    model_repository: Path, orchestrator: Orchestrator, start_server: StartServer
) -> None:
    worker = start_server(model_repository, threads=3, memory_budget_mb=5, models=("classifier",))
    identity, hello = orchestrator.recv_type("hello")
    assert identity == b"test-worker-0"
    assert hello == {
        "type": "hello",
        "worker_id": "test-worker-0",
        "pid": os.getpid(),
        "protocol": 1,
        "capacity": 3,
        "models": ["classifier"],
        "loaded": [],
        "memory_budget_bytes": 5 * 1024 * 1024,
    }
    orchestrator.send(identity, {"type": "hello", "protocol": 1, "heartbeat_interval_ms": 50})
    started = time.monotonic()
    beats = []
    for _ in range(3):
        _, beat = orchestrator.recv_type("heartbeat", ack_heartbeats=False)
        orchestrator.send(identity, {"type": "heartbeat"})
        beats.append(beat)
    elapsed = time.monotonic() - started
    assert 0.1 <= elapsed < 1.0, "heartbeats follow the acknowledged interval"
    assert beats[0]["worker_id"] == "test-worker-0"
    assert beats[0]["inflight"] == 0
    assert beats[0]["loaded"] == []
    assert beats[0]["rss_bytes"] > 0
    assert worker.server.registration is Registration.REGISTERED
    assert worker.server.state is ServerState.RUNNING


def test_hello_is_resent_until_acknowledged(
    model_repository: Path, orchestrator: Orchestrator, start_server: StartServer
) -> None:
    start_server(model_repository, heartbeat_interval_ms=50)
    orchestrator.recv_type("hello")
    started = time.monotonic()
    identity, _ = orchestrator.recv_type("hello")
    assert 0.1 <= time.monotonic() - started < 1.0, "resent every 3 × heartbeat_interval_ms"
    # An acknowledgement for another protocol version does not count.
    orchestrator.send(identity, {"type": "hello", "protocol": 2, "heartbeat_interval_ms": 50})
    orchestrator.recv_type("hello")
    orchestrator.send(identity, {"type": "hello", "protocol": 1, "heartbeat_interval_ms": 50})
    orchestrator.recv_type("heartbeat")


def test_worker_started_before_the_orchestrator(
    model_repository: Path, endpoint: str, start_server: StartServer
) -> None:
    start_server(model_repository, heartbeat_interval_ms=1000)
    time.sleep(0.5)  # several hello attempts find no one to send to
    router = Orchestrator(endpoint)
    try:
        started = time.monotonic()
        router.recv_type("hello", timeout=2.5)
        assert time.monotonic() - started < 1.0, "hello follows the connection, not the timeout"
        # Attempts made before the connection were dropped, not queued for delivery now.
        assert not router.socket.poll(300)
    finally:
        router.close()


def test_unknown_worker_error_triggers_hello_at_once(
    model_repository: Path, orchestrator: Orchestrator, start_server: StartServer
) -> None:
    worker = start_server(model_repository)
    identity, _ = orchestrator.handshake(interval_ms=2000)
    _wait_for(lambda: worker.server.registration is Registration.REGISTERED)
    started = time.monotonic()
    orchestrator.send(identity, {"type": "error", "code": "UNKNOWN_WORKER", "message": "who?"})
    orchestrator.recv_type("hello", timeout=1.5)
    assert time.monotonic() - started < 1.0
    assert worker.server.registration is Registration.HELLO_PENDING


def test_missed_acknowledgements_trigger_hello(
    model_repository: Path, orchestrator: Orchestrator, start_server: StartServer
) -> None:
    start_server(model_repository)
    identity, _ = orchestrator.handshake(interval_ms=50)
    orchestrator.call(identity, {"type": "load", "model": "mlp_tiny", "version": "1"})
    started = time.monotonic()
    # Heartbeats go unanswered from here on.
    _, hello = orchestrator.recv_type("hello", ack_heartbeats=False)
    assert 0.1 <= time.monotonic() - started < 2.0
    assert hello["loaded"] == [{"model": "mlp_tiny", "version": "1"}]


def test_odd_messages_from_the_orchestrator_are_tolerated(
    model_repository: Path,
    orchestrator: Orchestrator,
    start_server: StartServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = start_server(model_repository)
    identity, _ = orchestrator.recv_type("hello")
    orchestrator.send(identity, {"type": "heartbeat"})  # before registration: ignored
    orchestrator.send(identity, {"type": "error", "code": "INTERNAL", "message": "odd"})
    orchestrator.send(identity, {"type": "hello", "protocol": 1, "heartbeat_interval_ms": "x"})
    orchestrator.recv_type("heartbeat")
    assert worker.server.registration is Registration.REGISTERED
    assert "error from the orchestrator: INTERNAL odd" in caplog.text
    assert "no valid heartbeat_interval_ms" in caplog.text


# -- requests -----------------------------------------------------------------------------------


def test_load_infer_stats_unload(
    model_repository: Path, orchestrator: Orchestrator, start_server: StartServer
) -> None:
    start_server(model_repository)
    identity, _ = orchestrator.handshake()

    loaded = orchestrator.call(identity, {"type": "load", "model": "classifier", "version": "1"})
    assert loaded["type"] == "result"
    assert (loaded["model"], loaded["version"]) == ("classifier", "1")
    assert loaded["metadata"] == {
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": 64,
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 16]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "label", "datatype": "INT64", "shape": [-1, 1]},
        ],
    }
    assert loaded["memory_bytes"] >= 0
    assert isinstance(loaded["warmup_ms"], float)
    assert loaded["warmup_ms"] > 0, "the bundled classifier has a model_warmup"
    again = orchestrator.call(identity, {"type": "load", "model": "classifier", "version": "1"})
    assert again["metadata"] == loaded["metadata"]

    a, b = random_features(4, 16, seed=11), random_features(2, 16, seed=12)
    reply = orchestrator.call(
        identity,
        {
            "type": "infer",
            "model": "classifier",
            "version": "1",
            "requests": [
                {"inputs": [_fp32("features", a)]},
                {"inputs": [_fp32("features", np.zeros((1, 15)))]},
                {"inputs": [_fp32("features", b)], "outputs": ["label"]},
            ],
        },
    )
    assert reply["type"] == "result"
    first, bad, third = reply["responses"]
    expected = ort_outputs(model_repository / "classifier/1/model.onnx", {"features": a})
    outputs = {t["name"]: t for t in first["outputs"]}
    assert outputs["probabilities"]["shape"] == [4, 3]
    np.testing.assert_allclose(
        _decode(outputs["probabilities"]), expected["probabilities"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(_decode(outputs["label"]), expected["label"])
    assert bad["error"]["code"] == "INVALID_ARGUMENT"
    assert "features" in bad["error"]["message"]
    assert [t["name"] for t in third["outputs"]] == ["label"]
    expected_b = ort_outputs(model_repository / "classifier/1/model.onnx", {"features": b})
    np.testing.assert_array_equal(_decode(third["outputs"][0]), expected_b["label"])

    stats = orchestrator.call(identity, {"type": "stats"})
    assert stats["rss_bytes"] > 0
    assert stats["models"] == [
        {
            "model": "classifier",
            "version": "1",
            "inference_count": 6,
            "execution_count": 1,
            "compute_ns": stats["models"][0]["compute_ns"],
        }
    ]
    _, beat = orchestrator.recv_type("heartbeat", ack_heartbeats=False)
    assert beat["loaded"] == [{"model": "classifier", "version": "1"}]

    unloaded = orchestrator.call(
        identity, {"type": "unload", "model": "classifier", "version": "1"}
    )
    assert unloaded == {
        "type": "result",
        "id": unloaded["id"],
        "model": "classifier",
        "version": "1",
    }
    gone = orchestrator.call(
        identity,
        {"type": "infer", "model": "classifier", "version": "1", "requests": []},
    )
    assert gone["type"] == "error"
    assert gone["code"] == "MODEL_NOT_READY"


def test_python_model_over_the_wire(
    model_repository: Path, orchestrator: Orchestrator, start_server: StartServer
) -> None:
    start_server(model_repository)
    identity, _ = orchestrator.handshake()
    orchestrator.call(identity, {"type": "load", "model": "text_stats", "version": "1"})

    def text(*items: bytes) -> dict[str, Any]:
        return {
            "name": "TEXT",
            "datatype": "BYTES",
            "shape": [len(items), 1],
            "data": bytes_tensor_data(items),
        }

    reply = orchestrator.call(
        identity,
        {
            "type": "infer",
            "model": "text_stats",
            "version": "1",
            "requests": [
                {"inputs": [text("grüße".encode(), b"ok")]},
                {"inputs": [text(b"\xc3")]},
                {"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [2, 1], "data": b""}]},
                {"inputs": [{"name": "TEXT", "datatype": "BF16", "shape": [1, 1], "data": b"ab"}]},
                {"inputs": "nope"},
                "nope",
                {"inputs": [text(b"a")], "outputs": [1]},
                {"inputs": [text(b"a"), text(b"b")]},
            ],
        },
    )
    responses = reply["responses"]
    outputs = {t["name"]: t for t in responses[0]["outputs"]}
    assert outputs["UPPER"]["datatype"] == "BYTES"
    assert outputs["UPPER"]["data"] == bytes_tensor_data(["GRÜSSE".encode(), b"OK"])
    assert _decode(outputs["LENGTH"]).reshape(-1).tolist() == [5, 2]
    codes = [r["error"]["code"] for r in responses[1:]]
    assert (
        codes == ["INVALID_ARGUMENT", "INVALID_ARGUMENT", "UNSUPPORTED"] + ["INVALID_ARGUMENT"] * 4
    )
    assert "UTF-8" in responses[1]["error"]["message"]
    assert "TEXT" in responses[2]["error"]["message"]
    assert "given twice" in responses[7]["error"]["message"]


def test_load_with_source_and_failing_warmup(
    tmp_path: Path,
    model_repository: Path,
    orchestrator: Orchestrator,
    start_server: StartServer,
) -> None:
    source = tmp_path / "candidate"
    shutil.copytree(model_repository / "classifier", source)
    start_server(model_repository)
    identity, _ = orchestrator.handshake()

    loaded = orchestrator.call(
        identity,
        {"type": "load", "model": "classifier", "version": "2", "source": str(source)},
    )
    assert loaded["type"] == "result"
    assert (loaded["model"], loaded["version"]) == ("classifier", "2")
    assert loaded["warmup_ms"] > 0
    plain = orchestrator.call(
        identity, {"type": "load", "model": "classifier", "version": "1", "source": None}
    )
    assert plain["type"] == "result"

    config = source / "config.pbtxt"
    config.write_text(
        config.read_text()
        + 'model_warmup { name: "wrong_type" batch_size: 1 inputs { key: "features" '
        "value { data_type: TYPE_INT32 dims: [ 16 ] zero_data: true } } }"
    )
    (source / "3").mkdir()
    shutil.copy(source / "2" / "model.onnx", source / "3" / "model.onnx")
    failed = orchestrator.call(
        identity,
        {"type": "load", "model": "classifier", "version": "3", "source": str(source)},
    )
    assert failed["type"] == "error"
    assert failed["code"] == "LOAD_FAILED"
    assert (
        "warm-up sample 'wrong_type' of model 'classifier' version 3 failed" in (failed["message"])
    )
    assert "datatype INT32, the model expects FP32" in failed["message"]
    _, beat = orchestrator.recv_type("heartbeat", ack_heartbeats=False)
    assert sorted(v["version"] for v in beat["loaded"]) == ["1", "2"]


@pytest.mark.parametrize(
    ("message", "code", "fragment"),
    [
        ({"type": "load", "model": "nope", "version": "1"}, "NOT_FOUND", "'nope'"),
        ({"type": "load", "model": "classifier"}, "INVALID_ARGUMENT", "'version'"),
        ({"type": "unload", "model": 3, "version": "1"}, "INVALID_ARGUMENT", "'model'"),
        ({"type": "infer", "model": "classifier", "version": "1"}, "INVALID_ARGUMENT", "list"),
        (
            {"type": "infer", "model": "classifier", "version": "1", "requests": []},
            "MODEL_NOT_READY",
            "",
        ),
        ({"type": "load", "model": "slow", "version": "1", "x": 1}, "NOT_FOUND", "slow"),
        (
            {"type": "load", "model": "classifier", "version": "1", "source": 7},
            "INVALID_ARGUMENT",
            "'source' must be a non-empty string",
        ),
        (
            {"type": "load", "model": "classifier", "version": "1", "source": "/no/such/dir"},
            "NOT_FOUND",
            "source /no/such/dir of model 'classifier' is not a readable directory",
        ),
        ({"type": "result"}, "INVALID_ARGUMENT", "unknown message type 'result'"),
        ({"type": "frobnicate"}, "INVALID_ARGUMENT", "unknown message type"),
        ({"type": ["infer"]}, "INVALID_ARGUMENT", "unknown message type ['infer']"),
    ],
)
def test_failed_requests_get_error_with_their_id(
    model_repository: Path,
    orchestrator: Orchestrator,
    start_server: StartServer,
    message: dict[str, Any],
    code: str,
    fragment: str,
) -> None:
    start_server(model_repository)
    identity, _ = orchestrator.handshake()
    reply = orchestrator.call(identity, message)
    assert reply["type"] == "error"
    assert reply["code"] == code
    assert fragment in reply["message"]


@pytest.mark.parametrize(
    ("frames", "fragment"),
    [
        ([b"\xc1"], "not valid MessagePack"),
        ([msgpack.packb([1, 2])], "must be a MessagePack map"),
        ([msgpack.packb({"type": "stats"}), b"extra"], "one frame, got 2"),
        ([msgpack.packb({"type": "stats"})], "needs an unsigned integer 'id'"),
        ([msgpack.packb({"type": "load", "id": -4})], "got -4"),
        ([msgpack.packb({"type": "infer", "id": True})], "got True"),
        ([msgpack.packb({"no_type": 1})], "unknown message type None"),
    ],
)
def test_unidentifiable_messages_get_error_without_id(
    model_repository: Path,
    orchestrator: Orchestrator,
    start_server: StartServer,
    frames: list[bytes],
    fragment: str,
) -> None:
    start_server(model_repository)
    identity, _ = orchestrator.handshake()
    orchestrator.send_raw([identity, *frames])
    _, reply = orchestrator.recv_type("error")
    assert "id" not in reply
    assert reply["code"] == "INVALID_ARGUMENT"
    assert fragment in reply["message"]
    # The worker is still serving.
    assert orchestrator.call(identity, {"type": "stats"})["type"] == "result"


def test_model_code_failures_are_internal(
    slow_repository: Path, orchestrator: Orchestrator, start_server: StartServer
) -> None:
    start_server(slow_repository)
    identity, _ = orchestrator.handshake()
    orchestrator.call(identity, {"type": "load", "model": "slow", "version": "1"})
    reply = orchestrator.call(
        identity,
        {
            "type": "infer",
            "model": "slow",
            "version": "1",
            "requests": [{"inputs": [_fp32("IN", np.array([-1.0]))]}],
        },
    )
    assert reply["type"] == "error"
    assert reply["code"] == "INTERNAL"
    assert reply["message"] == "SystemExit: 3"
    # Large tensors (sent without a copy) round-trip.
    big = np.zeros(50_000, dtype=np.float32)
    ok = orchestrator.call(
        identity,
        {
            "type": "infer",
            "model": "slow",
            "version": "1",
            "requests": [{"inputs": [_fp32("IN", big)]}],
        },
    )
    np.testing.assert_array_equal(_decode(ok["responses"][0]["outputs"][0]), big)


def test_threads_run_requests_concurrently(
    slow_repository: Path, orchestrator: Orchestrator, start_server: StartServer
) -> None:
    write_slow_model(slow_repository, "slow2")
    start_server(slow_repository, threads=2)
    identity, _ = orchestrator.handshake(interval_ms=50)
    for model in ("slow", "slow2"):
        orchestrator.call(identity, {"type": "load", "model": model, "version": "1"})
    started = time.monotonic()
    for request_id, model in ((1001, "slow"), (1002, "slow2")):
        orchestrator.send(
            identity,
            {
                "type": "infer",
                "id": request_id,
                "model": model,
                "version": "1",
                "requests": [{"inputs": [_fp32("IN", np.array([400.0]))]}],
            },
        )
    _, beat = orchestrator.recv_type("heartbeat", ack_heartbeats=False)
    assert beat["inflight"] == 2
    # Stats is answered while both executor threads are busy.
    stats_reply = orchestrator.call(identity, {"type": "stats"})
    assert stats_reply["type"] == "result"
    assert time.monotonic() - started < 0.35
    assert orchestrator.answer(1001)["type"] == "result"
    assert orchestrator.answer(1002)["type"] == "result"
    assert time.monotonic() - started < 0.75, "two models ran in parallel on two threads"


def test_graceful_stop_answers_held_requests(
    slow_repository: Path, orchestrator: Orchestrator, start_server: StartServer
) -> None:
    worker = start_server(slow_repository)
    identity, _ = orchestrator.handshake()
    orchestrator.call(identity, {"type": "load", "model": "slow", "version": "1"})
    orchestrator.send(
        identity,
        {
            "type": "infer",
            "id": 500,
            "model": "slow",
            "version": "1",
            "requests": [{"inputs": [_fp32("IN", np.array([300.0]))]}],
        },
    )
    _wait_for(lambda: worker.server._inflight == 1)
    worker.server.stop()
    _wait_for(lambda: worker.server.state is ServerState.STOPPING)
    refused = orchestrator.call(identity, {"type": "stats"})
    assert refused["type"] == "error"
    assert refused["code"] == "UNAVAILABLE"
    held = orchestrator.answer(500)
    assert held["type"] == "result"
    worker.stop()
    assert worker.server.state is ServerState.STOPPED
    assert (slow_repository / "slow" / "1" / "finalized").read_text() == "yes"
    worker.stop()  # idempotent


def test_stop_before_run_and_single_run(
    model_repository: Path, endpoint: str, orchestrator: Orchestrator
) -> None:
    config = WorkerConfig(connect=endpoint, worker_id="early", model_repository=model_repository)
    server = WorkerServer(config)
    server.stop()
    asyncio.run(asyncio.wait_for(server.run(), 10))
    assert server.state is ServerState.STOPPED
    assert server.host.loaded() == []
    with pytest.raises(RuntimeError, match="once"):
        asyncio.run(server.run())
    server.stop()  # after the loop is closed: a no-op


def test_stop_does_not_wait_for_a_vanished_orchestrator(
    slow_repository: Path, endpoint: str, start_server: StartServer
) -> None:
    worker = start_server(slow_repository)
    router = Orchestrator(endpoint)
    try:
        identity, _ = router.handshake()
        router.call(identity, {"type": "load", "model": "slow", "version": "1"})
        router.send(
            identity,
            {
                "type": "infer",
                "id": 9,
                "model": "slow",
                "version": "1",
                "requests": [{"inputs": [_fp32("IN", np.array([200.0]))]}],
            },
        )
        _wait_for(lambda: worker.server._inflight == 1)
    finally:
        router.close()  # the orchestrator goes away with a request in flight
    started = time.monotonic()
    worker.stop(timeout=10)
    assert time.monotonic() - started < 5.0
    assert worker.server.state is ServerState.STOPPED


def test_replies_wait_for_the_orchestrator_to_come_back(
    slow_repository: Path, endpoint: str, start_server: StartServer
) -> None:
    worker = start_server(slow_repository)
    router = Orchestrator(endpoint)
    try:
        identity, _ = router.handshake()
        router.call(identity, {"type": "load", "model": "slow", "version": "1"})
        router.send(
            identity,
            {
                "type": "infer",
                "id": 77,
                "model": "slow",
                "version": "1",
                "requests": [{"inputs": [_fp32("IN", np.array([300.0]))]}],
            },
        )
        _wait_for(lambda: worker.server._inflight == 1)
    finally:
        router.close()
    _wait_for(lambda: worker.server._inflight == 0)
    assert len(worker.server._pending) == 1, "the answer waits for a connection"
    again = Orchestrator(endpoint)
    try:
        reply = again.answer(77)
        assert reply["type"] == "result"
        np.testing.assert_array_equal(_decode(reply["responses"][0]["outputs"][0]), [300.0])
        _wait_for(lambda: not worker.server._pending)
    finally:
        again.close()


def test_a_burst_of_requests_is_answered_in_order(
    model_repository: Path, orchestrator: Orchestrator, start_server: StartServer
) -> None:
    start_server(model_repository)
    identity, _ = orchestrator.handshake()
    ids = list(range(5000, 5200))
    for request_id in ids:
        orchestrator.send(identity, {"type": "stats", "id": request_id})
    answered: list[int] = []
    while len(answered) < len(ids):
        _, reply = orchestrator.recv()
        if reply["type"] == "heartbeat":
            orchestrator.send(identity, {"type": "heartbeat"})
        else:
            answered.append(reply["id"])
    assert answered == ids


def test_an_output_that_cannot_be_encoded_is_internal() -> None:
    complex_output = InferResponse(outputs={"z": np.zeros(2, dtype=np.complex64)})
    assert _encode_response(complex_output) == {
        "error": {
            "code": "INTERNAL",
            "message": "cannot encode an output: tensor 'z': numpy dtype complex64 has no "
            "KServe datatype",
        }
    }
