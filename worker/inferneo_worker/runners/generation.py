"""Text generation (Triton's "decoupled" models): the request, its parsing from the wire, and the
callbacks through which a runner streams its answer.

A ``generate`` message asks a runner for one sequence. The runner answers through a
``GenerationSink``: any number of ``delta`` calls (new text and how many tokens produced it), then
exactly one ``finish`` (with the reason and the token counts) or one ``fail``. The sink may be
called from any thread; the server turns each call into a ``result`` frame (``final`` false, then
true) or an ``error`` frame (docs/worker-protocol.md, "Streaming").
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

from ..errors import InvalidArgumentError, WorkerError

_D = TypeVar("_D", float, None)

CHAT_ROLES: Final = frozenset({"system", "user", "assistant", "tool", "developer"})
"""Roles a chat message may have; the model's chat template decides what each one means."""

MAX_STOP_SEQUENCES: Final = 16
MAX_SEED: Final = 2**32 - 2
"""Seeds are 32-bit; 2**32 - 1 is llama.cpp's "random seed"."""


class FinishReason(enum.StrEnum):
    """Why a sequence ended, with OpenAI's names."""

    STOP = "stop"
    """The model produced an end-of-generation token or the text reached a stop sequence."""
    LENGTH = "length"
    """``max_tokens`` were produced, or the context is full."""
    CANCELLED = "cancelled"
    """The orchestrator cancelled it (its client went away)."""


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How tokens are chosen. Defaults are OpenAI's where it has one."""

    max_tokens: int | None = None
    """Tokens to generate at most; ``None`` = the model's ``default_max_tokens`` (in both cases
    no more than the context leaves after the prompt)."""
    temperature: float | None = None
    """0 = greedy (the most likely token, deterministic); ``None`` = the model version's default
    (its ``temperature`` setting, OpenAI's 1.0 unless the version says otherwise)."""
    top_p: float | None = None
    """``None`` = the model version's default (``top_p`` setting, 1.0 unless it says otherwise)."""
    top_k: int = 0
    """0 = off."""
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    """Text that ends the sequence; it is not part of the output."""
    seed: int | None = None
    """Fixes the sampling's random numbers (``None`` = random)."""
    ignore_eos: bool = False
    """Keep going past end-of-generation tokens (benchmarks)."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """One sequence to generate: a raw ``prompt`` (completions) or chat ``messages`` that the
    model's chat template turns into the prompt; exactly one of the two is set."""

    prompt: str | None
    messages: tuple[ChatMessage, ...] | None
    params: SamplingParams


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    def to_wire(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


class GenerationSink(Protocol):
    """Receives one sequence's output; called from the runner's threads, in order, and after
    ``finish`` or ``fail`` never again."""

    def delta(self, text: str, tokens: int) -> None:
        """``tokens`` new tokens were produced; ``text`` is what they add to the output (it may
        be empty: a token can end inside a UTF-8 character or a possible stop sequence)."""

    def finish(self, reason: FinishReason, usage: Usage, text: str = "") -> None:
        """The sequence ended; ``text`` is output held back until now (a partial stop match)."""

    def fail(self, error: WorkerError) -> None:
        """The sequence failed (bad prompt, model unloaded, runtime error)."""


@runtime_checkable
class Generator(Protocol):
    """A runner of a decoupled text-generation model."""

    def generate(self, request_id: int, request: GenerateRequest, sink: GenerationSink) -> None:
        """Queue a sequence and return at once; its output goes to ``sink``. Raises for what is
        wrong with the request before it is queued."""

    def cancel(self, request_id: int) -> bool:
        """Stop a sequence within one token step (its sink then gets ``finish`` with
        ``CANCELLED``); False when the runner has no such sequence."""


# -- parsing the wire ------------------------------------------------------------------------------


def _number(
    params: Mapping[str, Any], key: str, low: float, high: float, default: _D
) -> float | _D:
    value = params.get(key)
    if value is None:
        return default
    if type(value) not in (int, float) or not math.isfinite(value) or not low <= value <= high:
        raise InvalidArgumentError(
            f"{key}: must be a number from {low:g} to {high:g}, got {value!r}", field=key
        )
    return float(value)


def _integer(params: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if type(value) is not int or not low <= value <= high:
        raise InvalidArgumentError(
            f"{key}: must be an integer from {low} to {high}, got {value!r}", field=key
        )
    return value


def parse_sampling(raw: object) -> SamplingParams:
    """The ``parameters`` map of a ``generate`` message; each bad value is an
    ``InvalidArgumentError`` whose message starts with the parameter's name."""
    if raw is None:
        raw = {}
    if type(raw) is not dict:
        raise InvalidArgumentError("parameters: must be a map", field="parameters")
    stop = raw.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif (
        type(stop) is list
        and len(stop) <= MAX_STOP_SEQUENCES
        and all(type(s) is str and s for s in stop)
    ):
        stops = tuple(stop)
    else:
        raise InvalidArgumentError(
            f"stop: must be a list of at most {MAX_STOP_SEQUENCES} non-empty strings", field="stop"
        )
    ignore_eos = raw.get("ignore_eos", False)
    if type(ignore_eos) is not bool:
        raise InvalidArgumentError("ignore_eos: must be true or false", field="ignore_eos")
    return SamplingParams(
        max_tokens=_integer(raw, "max_tokens", 1, 2**31 - 1),
        temperature=_number(raw, "temperature", 0.0, 2.0, None),
        top_p=_number(raw, "top_p", 0.0, 1.0, None) or (None if raw.get("top_p") is None else 1.0),
        top_k=_integer(raw, "top_k", 0, 2**31 - 1) or 0,
        min_p=_number(raw, "min_p", 0.0, 1.0, 0.0),
        presence_penalty=_number(raw, "presence_penalty", -2.0, 2.0, 0.0),
        frequency_penalty=_number(raw, "frequency_penalty", -2.0, 2.0, 0.0),
        repetition_penalty=_number(raw, "repetition_penalty", 0.0, 10.0, 1.0) or 1.0,
        stop=stops,
        seed=_integer(raw, "seed", 0, MAX_SEED),
        ignore_eos=ignore_eos,
    )


def _messages(raw: object) -> tuple[ChatMessage, ...]:
    if type(raw) is not list or not raw:
        raise InvalidArgumentError("messages: must be a non-empty list", field="messages")
    out: list[ChatMessage] = []
    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        if type(message) is not dict:
            raise InvalidArgumentError(f"{where}: must be a map", field=where)
        role, content = message.get("role"), message.get("content")
        if role not in CHAT_ROLES:
            raise InvalidArgumentError(
                f"{where}.role: must be one of {', '.join(sorted(CHAT_ROLES))}, got {role!r}",
                field=f"{where}.role",
            )
        if type(content) is not str:
            raise InvalidArgumentError(
                f"{where}.content: must be a string", field=f"{where}.content"
            )
        out.append(ChatMessage(role, content))
    return tuple(out)


def parse_generate(message: Mapping[str, Any]) -> GenerateRequest:
    """The request of a ``generate`` message (``prompt`` or ``messages``, and ``parameters``)."""
    prompt = message.get("prompt")
    raw_messages = message.get("messages")
    if (prompt is None) == (raw_messages is None):
        raise InvalidArgumentError(
            "a generate message carries 'prompt' or 'messages', exactly one", field="prompt"
        )
    if prompt is not None and type(prompt) is not str:
        raise InvalidArgumentError("prompt: must be a string", field="prompt")
    return GenerateRequest(
        prompt=prompt,
        messages=None if raw_messages is None else _messages(raw_messages),
        params=parse_sampling(message.get("parameters")),
    )
