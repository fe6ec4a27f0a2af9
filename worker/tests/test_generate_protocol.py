"""``generate`` and ``cancel`` over a real ZeroMQ socket (docs/worker-protocol.md, "Streaming"):
partial results then one final result per request id, errors, cancellation, and a stop that
answers the sequences it holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Orchestrator, ServerThread


def _stream(
    orchestrator: Orchestrator, request_id: int, timeout: float = 60.0
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The partial results of ``request_id``, then its final result or error."""
    partials: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        identity, message = orchestrator.recv(max(0.0, deadline - time.monotonic()))
        if message["type"] == "heartbeat":
            orchestrator.send(identity, {"type": "heartbeat"})
            continue
        if message.get("id") != request_id:
            continue
        if message["type"] == "result" and message.get("final") is False:
            partials.append(message)
            continue
        return partials, message


def _generate(identity: bytes, request_id: int, **fields: Any) -> dict[str, Any]:
    return {"type": "generate", "id": request_id, "model": "smollm2", "version": "1", **fields}


def test_generate_streams_partials_then_a_final_result(
    model_repository: Path,
    orchestrator: Orchestrator,
    start_server: Callable[..., ServerThread],
) -> None:
    start_server(model_repository)
    identity, _ = orchestrator.handshake()
    assert (
        orchestrator.call(identity, {"type": "load", "model": "smollm2", "version": "1"})[
            "metadata"
        ]["generation"]["max_sequences"]
        == 4
    )
    orchestrator.send(
        identity,
        _generate(
            identity,
            101,
            prompt="The capital of France is",
            parameters={"max_tokens": 4, "temperature": 0},
        ),
    )
    partials, final = _stream(orchestrator, 101)
    assert final["type"] == "result"
    assert final["final"] is True
    assert final["finish_reason"] == "length"
    assert final["usage"] == {"prompt_tokens": 5, "completion_tokens": 4}
    assert sum(p["tokens"] for p in partials) == 4
    assert "Paris" in "".join(p["text"] for p in partials) + final["text"]

    orchestrator.send(
        identity,
        _generate(
            identity,
            102,
            messages=[{"role": "user", "content": "Tell me a story."}],
            parameters={"max_tokens": 400, "ignore_eos": True},
        ),
    )
    deadline = time.monotonic() + 30
    while True:
        _, message = orchestrator.recv(max(0.0, deadline - time.monotonic()))
        if message.get("id") == 102:
            break
    orchestrator.send(identity, {"type": "cancel", "id": 102})
    partials, final = _stream(orchestrator, 102)
    assert final["finish_reason"] == "cancelled"
    assert final["usage"]["completion_tokens"] < 400
    # A cancel for a sequence that has ended is ignored, and so is one for an unknown id.
    orchestrator.send(identity, {"type": "cancel", "id": 102})
    orchestrator.send(identity, {"type": "cancel", "id": 999})
    assert orchestrator.call(identity, {"type": "stats"})["type"] == "result"


def test_generate_errors(
    model_repository: Path,
    orchestrator: Orchestrator,
    start_server: Callable[..., ServerThread],
) -> None:
    start_server(model_repository)
    identity, _ = orchestrator.handshake()
    orchestrator.call(identity, {"type": "load", "model": "smollm2", "version": "1"})
    orchestrator.call(identity, {"type": "load", "model": "classifier", "version": "1"})
    cases = [
        (_generate(identity, 0, prompt="x", parameters={"temperature": 9}), "temperature: "),
        (_generate(identity, 0, prompt="x", parameters={"max_tokens": 0}), "max_tokens: "),
        (_generate(identity, 0, prompt="x", parameters={"stop": "."}), "stop: "),
        (_generate(identity, 0, prompt="x", parameters=[]), "parameters: "),
        (_generate(identity, 0, prompt="x", parameters={"ignore_eos": 1}), "ignore_eos: "),
        (_generate(identity, 0, prompt=3), "prompt: "),
        (_generate(identity, 0), "exactly one"),
        (_generate(identity, 0, messages=[]), "messages: "),
        (_generate(identity, 0, messages=["hi"]), "messages[0]: "),
        (_generate(identity, 0, messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
        (_generate(identity, 0, messages=[{"role": "user"}]), "messages[0].content"),
        ({**_generate(identity, 0, prompt="x"), "model": ""}, "'model' must be"),
        (_generate(identity, 0, prompt="hi " * 1500), "prompt: the prompt is"),
        ({**_generate(identity, 0, prompt="x"), "model": "classifier"}, "does not generate"),
        ({**_generate(identity, 0, prompt="x"), "version": "2"}, "version 2"),
    ]
    for index, (message, fragment) in enumerate(cases):
        message["id"] = 200 + index
        orchestrator.send(identity, message)
        partials, answer = _stream(orchestrator, 200 + index)
        assert partials == []
        assert answer["type"] == "error", (fragment, answer)
        assert fragment in answer["message"], (fragment, answer)
        assert answer["code"] in ("INVALID_ARGUMENT", "UNSUPPORTED", "MODEL_NOT_READY"), answer


def test_stop_answers_the_sequences_held_and_refuses_new_ones(
    model_repository: Path,
    orchestrator: Orchestrator,
    start_server: Callable[..., ServerThread],
) -> None:
    server = start_server(model_repository)
    identity, _ = orchestrator.handshake()
    orchestrator.call(identity, {"type": "load", "model": "smollm2", "version": "1"})
    orchestrator.send(
        identity,
        _generate(identity, 301, prompt="Once upon a time", parameters={"max_tokens": 12}),
    )
    deadline = time.monotonic() + 30
    while True:
        _, message = orchestrator.recv(max(0.0, deadline - time.monotonic()))
        if message.get("id") == 301:
            break
    server.server.stop()
    orchestrator.send(identity, _generate(identity, 302, prompt="Hello"))
    answers: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + 30
    while len(answers) < 2:
        _, message = orchestrator.recv(max(0.0, deadline - time.monotonic()))
        if message.get("id") in (301, 302) and message.get("final") is not False:
            answers[message["id"]] = message
    assert answers[301]["finish_reason"] == "length"
    assert answers[302]["code"] == "UNAVAILABLE"
    server.thread.join(20)
    assert not server.thread.is_alive()
