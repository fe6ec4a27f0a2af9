"""llama.cpp underneath ``LlamaCppRunner``: a GGUF model, and engines that generate several
sequences at once by continuous batching.

llama-cpp-python's high-level ``Llama`` object runs one sequence at a time, so a long generation
would hold every other request behind it. An engine instead drives llama.cpp's own batch API (what
``llama-server`` does): one ``llama_context`` whose KV cache has ``max_sequences`` separate
sequences of ``context_length`` tokens each, and one thread that, step after step, decodes one
batch holding the next token of every running sequence plus a chunk of the prompt of sequences
just admitted, then samples each sequence's next token with its own sampler chain (temperature,
top-p/top-k/min-p, penalties, seed). A sequence joins at the next step after it is queued and
leaves as soon as it ends, so a short request is never held behind a long one, and a cancelled
sequence stops within one step.

Threads: each engine's thread alone touches its context, batch and samplers; ``SequenceQueue``
(lock + condition) is the only state shared with other threads, and a sequence's ``cancelled``
flag is the only field of it written elsewhere (set under the queue's lock, read by the engine).
The model itself (weights, vocabulary) is read-only after load and shared by the engines.
"""

from __future__ import annotations

import codecs
import collections
import ctypes
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import llama_cpp

from ..errors import InternalError, LoadFailedError, ModelNotReadyError, WorkerError
from .generation import FinishReason, GenerateRequest, GenerationSink, SamplingParams, Usage

_log = logging.getLogger(__name__)

# llama.cpp logs every load in detail on stderr through llama-cpp-python's logger; keep errors.
logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)

# Tokens that the penalties look back on.
_PENALTY_LAST_N: Final = 64
_PIECE_BYTES: Final = 128


class LlamaModel:
    """A GGUF file loaded by llama.cpp: weights, vocabulary and the chat template it carries."""

    def __init__(self, path: Path) -> None:
        params = llama_cpp.llama_model_default_params()
        self._model: Any = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self._model:
            raise LoadFailedError(f"llama.cpp cannot load {path}", model=path.name)
        self.path = path
        self.vocab: Any = llama_cpp.llama_model_get_vocab(self._model)
        self.n_ctx_train: int = llama_cpp.llama_model_n_ctx_train(self._model)
        self.n_vocab: int = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.add_bos: bool = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        template = llama_cpp.llama_model_chat_template(self._model, None)
        self.chat_template: str | None = template.decode("utf-8") if template else None
        self.bos_text = self.piece(llama_cpp.llama_vocab_bos(self.vocab), special=True).decode(
            "utf-8", errors="replace"
        )
        self.eos_text = self.piece(llama_cpp.llama_vocab_eos(self.vocab), special=True).decode(
            "utf-8", errors="replace"
        )
        self._buffer = ctypes.create_string_buffer(_PIECE_BYTES)

    @property
    def handle(self) -> Any:
        return self._model

    def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        """Token ids of ``text``; special tokens written as text (``<|im_start|>``) are parsed."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        while True:
            tokens = (llama_cpp.llama_token * capacity)()
            count = llama_cpp.llama_tokenize(
                self.vocab, data, len(data), tokens, capacity, add_special, True
            )
            if count >= 0:
                return list(tokens[:count])
            capacity = -count

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes a token stands for (possibly part of a UTF-8 character)."""
        buffer = ctypes.create_string_buffer(_PIECE_BYTES)
        length = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, _PIECE_BYTES, 0, special)
        if length < 0:
            buffer = ctypes.create_string_buffer(-length)
            length = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, -length, 0, special)
        return buffer.raw[:length]

    def is_end(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def close(self) -> None:
        """Free the weights; every engine on the model must be closed first. Idempotent."""
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None


def longest_partial_stop(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that begins one of ``stops`` without being all of
    it: text that must be held back until the next token says whether the stop completes."""
    best = 0
    for stop in stops:
        for length in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:length]):
                best = length
                break
    return best


class PreparedSequence:
    """What admitting a sequence needs, computed from its request by the runner."""

    __slots__ = ("max_tokens", "tokens")

    def __init__(self, tokens: list[int], max_tokens: int) -> None:
        self.tokens = tokens
        self.max_tokens = max_tokens


class GenerationSequence:
    """One request's sequence, from queued to finished. Engine-thread state except ``cancelled``."""

    __slots__ = (
        "cancelled",
        "decoder",
        "fed",
        "generated",
        "held",
        "logits_index",
        "max_tokens",
        "next_token",
        "request",
        "request_id",
        "sampler",
        "sink",
        "slot",
        "tokens",
    )

    def __init__(self, request_id: int, request: GenerateRequest, sink: GenerationSink) -> None:
        self.request_id = request_id
        self.request = request
        self.sink = sink
        self.cancelled = False
        self.tokens: list[int] = []
        self.fed = 0
        """Prompt tokens decoded so far; once all are, the sequence is generating."""
        self.max_tokens = 0
        self.generated = 0
        self.next_token: int | None = None
        """The token sampled last, to be decoded at the next step."""
        self.logits_index = -1
        self.slot = -1
        self.sampler: Any = None
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.held = ""

    @property
    def position(self) -> int:
        """Tokens of this sequence in the KV cache."""
        return self.fed + max(0, self.generated - (1 if self.next_token is not None else 0))


class SequenceQueue:
    """Sequences waiting for a slot, shared by the engines of one runner, and the lock that
    guards it, every sequence's ``cancelled`` flag and the runner's map of live sequences."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.waiting: collections.deque[GenerationSequence] = collections.deque()
        self.live: dict[int, GenerationSequence] = {}
        self.closed = False

    def forget(self, sequence: GenerationSequence) -> None:
        with self.cond:
            if self.live.get(sequence.request_id) is sequence:
                del self.live[sequence.request_id]


def _sampler(params: SamplingParams, n_vocab: int) -> Any:
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())

    def add(sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(chain, sampler)

    if params.presence_penalty or params.frequency_penalty or params.repetition_penalty != 1.0:
        add(
            llama_cpp.llama_sampler_init_penalties(
                n_vocab,
                _PENALTY_LAST_N,
                params.repetition_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            )
        )
    # The runner fills in the version's defaults; 1.0 (OpenAI's) if a caller did not.
    temperature = 1.0 if params.temperature is None else params.temperature
    top_p = 1.0 if params.top_p is None else params.top_p
    if temperature <= 0.0:
        add(llama_cpp.llama_sampler_init_greedy())
        return chain
    if params.top_k > 0:
        add(llama_cpp.llama_sampler_init_top_k(params.top_k))
    if top_p < 1.0:
        add(llama_cpp.llama_sampler_init_top_p(top_p, 1))
    if params.min_p > 0.0:
        add(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
    add(llama_cpp.llama_sampler_init_temp(temperature))
    seed = llama_cpp.LLAMA_DEFAULT_SEED if params.seed is None else params.seed
    add(llama_cpp.llama_sampler_init_dist(seed))
    return chain


class LlamaEngine:
    """One llama.cpp context and the thread that steps its sequences (see the module's doc)."""

    def __init__(
        self,
        model: LlamaModel,
        queue: SequenceQueue,
        prepare: Callable[[GenerationSequence, int], PreparedSequence],
        *,
        name: str,
        context_length: int,
        max_sequences: int,
        n_threads: int,
        batch_tokens: int,
        prefill_chunk: int,
    ) -> None:
        self._model = model
        self._queue = queue
        self._prepare = prepare
        self._max_sequences = max_sequences
        self._batch_tokens = batch_tokens
        self._prefill_chunk = prefill_chunk
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = context_length * max_sequences
        params.n_batch = batch_tokens
        params.n_ubatch = batch_tokens
        params.n_seq_max = max_sequences
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        # A KV cache of its own per sequence: each gets exactly context_length tokens.
        params.kv_unified = False
        self._ctx: Any = llama_cpp.llama_init_from_model(model.handle, params)
        if not self._ctx:
            raise LoadFailedError(
                f"llama.cpp cannot create a context of {max_sequences} x {context_length} tokens",
                model=name,
            )
        # llama.cpp may round the cache up (to a multiple of 256); the limit stays the one asked.
        self.context_length: int = min(context_length, llama_cpp.llama_n_ctx_seq(self._ctx))
        self._memory: Any = llama_cpp.llama_get_memory(self._ctx)
        self._batch: Any = llama_cpp.llama_batch_init(batch_tokens, 0, 1)
        self._active: list[GenerationSequence] = []
        self._free_slots = list(range(max_sequences - 1, -1, -1))
        self._unloading = ModelNotReadyError(
            f"model {name} is being unloaded", model=name, version=""
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def running(self) -> int:
        """Sequences holding a slot (racy outside the engine thread: for reporting only)."""
        return len(self._active)

    def join(self) -> None:
        """Wait for the thread, which ends once the queue is closed, then free the context."""
        self._thread.join()
        if self._ctx:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None

    # -- the engine thread -------------------------------------------------------------------

    def _run(self) -> None:
        queue = self._queue
        while True:
            admitted: list[GenerationSequence] = []
            with queue.cond:
                while not queue.closed and not self._active and not queue.waiting:
                    queue.cond.wait()
                if queue.closed:
                    break
                while queue.waiting and len(self._active) + len(admitted) < self._max_sequences:
                    admitted.append(queue.waiting.popleft())
            for sequence in admitted:
                self._admit(sequence)
            for sequence in [s for s in self._active if s.cancelled]:
                self._finish(sequence, FinishReason.CANCELLED)
            if not self._active:
                continue
            try:
                self._step()
            except Exception as exc:
                # A bug or a runtime failure: end what runs here, keep the engine serving.
                _log.exception("a generation step failed")
                for sequence in list(self._active):
                    self._fail(sequence, InternalError(f"generation failed: {exc}"))
        for sequence in list(self._active):
            self._fail(sequence, self._unloading)

    def _admit(self, sequence: GenerationSequence) -> None:
        if sequence.cancelled:
            self._emit_finish(sequence, FinishReason.CANCELLED, Usage(0, 0), "")
            return
        try:
            prepared = self._prepare(sequence, self.context_length)
            sampler = _sampler(sequence.request.params, self._model.n_vocab)
        except WorkerError as exc:
            self._queue.forget(sequence)
            self._emit(sequence.sink.fail, exc)
            return
        except Exception as exc:
            _log.exception("preparing sequence %d failed", sequence.request_id)
            self._queue.forget(sequence)
            self._emit(sequence.sink.fail, InternalError(f"{type(exc).__name__}: {exc}"))
            return
        sequence.tokens = prepared.tokens
        sequence.max_tokens = prepared.max_tokens
        sequence.sampler = sampler
        sequence.slot = self._free_slots.pop()
        self._active.append(sequence)

    def _put(self, index: int, token: int, position: int, slot: int, logits: bool) -> None:
        batch = self._batch
        batch.token[index] = token
        batch.pos[index] = position
        batch.n_seq_id[index] = 1
        batch.seq_id[index][0] = slot
        batch.logits[index] = logits

    def _step(self) -> None:
        """One decode: the next token of every generating sequence, then prompt chunks of the
        ones being admitted, within ``batch_tokens``; then one sampled token per sequence that
        has logits."""
        count = 0
        sampled: list[GenerationSequence] = []
        in_batch: list[GenerationSequence] = []
        for sequence in self._active:
            if sequence.next_token is not None:
                in_batch.append(sequence)
                self._put(count, sequence.next_token, sequence.position, sequence.slot, True)
                sequence.next_token = None
                sequence.logits_index = count
                sampled.append(sequence)
                count += 1
        for sequence in self._active:
            remaining = len(sequence.tokens) - sequence.fed
            budget = min(self._batch_tokens - count, self._prefill_chunk)
            if remaining <= 0 or budget <= 0:
                continue
            take = min(remaining, budget)
            in_batch.append(sequence)
            for offset in range(take):
                position = sequence.fed + offset
                last = position == len(sequence.tokens) - 1
                self._put(count, sequence.tokens[position], position, sequence.slot, last)
                if last:
                    sequence.logits_index = count
                    sampled.append(sequence)
                count += 1
            sequence.fed += take
        self._batch.n_tokens = count
        status = llama_cpp.llama_decode(self._ctx, self._batch)
        if status != 0:
            # The batch is refused or failed as a whole: its sequences cannot go on.
            error = InternalError(f"llama.cpp failed to decode {count} tokens (status {status})")
            for sequence in in_batch:
                self._fail(sequence, error)
            return
        for sequence in sampled:
            token = llama_cpp.llama_sampler_sample(
                sequence.sampler, self._ctx, sequence.logits_index
            )
            sequence.logits_index = -1
            self._accept(sequence, token)

    def _accept(self, sequence: GenerationSequence, token: int) -> None:
        params = sequence.request.params
        if self._model.is_end(token) and not params.ignore_eos:
            self._finish(sequence, FinishReason.STOP)
            return
        sequence.generated += 1
        text = sequence.held + sequence.decoder.decode(self._model.piece(token))
        for stop in params.stop:
            at = text.find(stop)
            if at >= 0:
                sequence.held = ""
                self._emit(sequence.sink.delta, text[:at], 1)
                self._finish(sequence, FinishReason.STOP)
                return
        hold = longest_partial_stop(text, params.stop)
        sequence.held = text[len(text) - hold :] if hold else ""
        self._emit(sequence.sink.delta, text[: len(text) - hold], 1)
        if sequence.generated >= sequence.max_tokens or (
            len(sequence.tokens) + sequence.generated >= self.context_length
        ):
            self._finish(sequence, FinishReason.LENGTH)
        else:
            sequence.next_token = token

    def _release(self, sequence: GenerationSequence) -> None:
        self._active.remove(sequence)
        llama_cpp.llama_memory_seq_rm(self._memory, sequence.slot, -1, -1)
        self._free_slots.append(sequence.slot)
        llama_cpp.llama_sampler_free(sequence.sampler)
        sequence.sampler = None
        self._queue.forget(sequence)

    def _finish(self, sequence: GenerationSequence, reason: FinishReason) -> None:
        self._release(sequence)
        # Text held back for a stop sequence that never completed is output after all.
        rest = sequence.held + sequence.decoder.decode(b"", final=True)
        usage = Usage(len(sequence.tokens), sequence.generated)
        self._emit_finish(sequence, reason, usage, rest)

    def _emit_finish(
        self, sequence: GenerationSequence, reason: FinishReason, usage: Usage, text: str
    ) -> None:
        self._queue.forget(sequence)
        self._emit(sequence.sink.finish, reason, usage, text)

    def _fail(self, sequence: GenerationSequence, error: WorkerError) -> None:
        self._release(sequence)
        self._emit(sequence.sink.fail, error)

    @staticmethod
    def _emit(callback: Callable[..., None], *args: Any) -> None:
        # A sink that raises (its event loop is gone) must not stop the other sequences.
        try:
            callback(*args)
        except Exception:
            _log.exception("a generation sink failed")
