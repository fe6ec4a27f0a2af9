"""Owns the model versions loaded in this worker, keyed by (model, version).

``ModelHost`` finds a version in the Triton-layout repository (``<repo>/<model>/config.pbtxt`` and
``<repo>/<model>/<version>/model.onnx`` or ``model.py``), or in another model directory of the same
layout given as ``source``, picks its runner, runs the config's warm-up, and keeps its lifecycle
state and statistics. Every method is thread-safe: the server calls ``load``, ``unload`` and
``infer`` from its executor threads and ``stats``/``loaded`` from the event loop.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy.typing as npt

from ._proc import rss_bytes
from .errors import (
    InvalidArgumentError,
    LoadFailedError,
    ModelNotReadyError,
    NotFoundError,
    UnavailableError,
    UnsupportedError,
    WorkerError,
)
from .model_config import ModelConfig, load_model_config
from .runners import (
    BatchRequest,
    InferRequest,
    InferResponse,
    ModelMetadata,
    Runner,
    llm_runner,
    onnx_runner,
    python_runner,
)
from .runners.generation import (
    FinishReason,
    GenerateRequest,
    GenerationSink,
    Generator,
    Usage,
)
from .warmup import run_warmup

_log = logging.getLogger(__name__)

CONFIG_FILE: Final = "config.pbtxt"
_VERSION_RE: Final = re.compile(r"[0-9]+")
# One path component, not hidden, so that a model name can never leave the repository.
_MODEL_NAME_RE: Final = re.compile(r"[^/\\\x00.][^/\\\x00]*")


class ModelState(enum.Enum):
    """Lifecycle of a version inside this worker; only READY versions serve or are reported."""

    LOADING = "loading"
    READY = "ready"
    UNLOADING = "unloading"


@dataclass(frozen=True)
class LoadedModel:
    """What ``load`` reports."""

    model: str
    version: str
    metadata: ModelMetadata
    memory_bytes: int
    """RSS growth measured around the load and warm-up: an estimate (0 if nothing measurable)."""
    warmup_ms: float
    """Time spent running the config's ``model_warmup`` samples (0 when it has none)."""


@dataclass(frozen=True)
class ModelStats:
    """Counters of one loaded version since it was loaded."""

    model: str
    version: str
    inference_count: int
    """Rows inferred (batch size summed over successful requests)."""
    execution_count: int
    """Model calls (a batched call counts once)."""
    compute_ns: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "compute_ns": self.compute_ns,
        }


class _Entry:
    """One (model, version). ``state`` and ``runner`` change under ModelHost._lock; the counters
    under ``counters``."""

    __slots__ = (
        "compute_ns",
        "counters",
        "execution_count",
        "inference_count",
        "info",
        "runner",
        "state",
    )

    def __init__(self) -> None:
        self.state = ModelState.LOADING
        self.runner: Runner | None = None
        self.info: LoadedModel | None = None
        self.counters = threading.Lock()
        self.inference_count = 0
        self.execution_count = 0
        self.compute_ns = 0


class _CountingSink:
    """Passes a sequence's output on and counts it in the version's statistics when it ends: one
    inference and one execution per finished sequence, its wall time as compute time."""

    __slots__ = ("_entry", "_host", "_request_id", "_sink", "_started")

    def __init__(
        self, host: ModelHost, entry: _Entry, request_id: int, sink: GenerationSink
    ) -> None:
        self._host = host
        self._entry = entry
        self._request_id = request_id
        self._sink = sink
        self._started = time.perf_counter_ns()

    def delta(self, text: str, tokens: int) -> None:
        self._sink.delta(text, tokens)

    def finish(self, reason: FinishReason, usage: Usage, text: str = "") -> None:
        self._host._generation_ended(self._request_id)
        with self._entry.counters:
            self._entry.inference_count += 1
            self._entry.execution_count += 1
            self._entry.compute_ns += time.perf_counter_ns() - self._started
        self._sink.finish(reason, usage, text)

    def fail(self, error: WorkerError) -> None:
        self._host._generation_ended(self._request_id)
        self._sink.fail(error)


class ModelHost:
    """Loads, serves and unloads model versions from one repository."""

    def __init__(
        self,
        repository: Path,
        *,
        models: Sequence[str] = ("*",),
        intra_op_threads: int = 1,
        memory_budget_bytes: int = 0,
    ) -> None:
        self._repository = repository
        self._allowed = None if "*" in models else frozenset(models)
        self._intra_op_threads = intra_op_threads
        self._memory_budget_bytes = memory_budget_bytes
        # _lock guards _entries, _key_locks and _closed; a key lock serialises load and unload of
        # one version (held for the whole load, so never take _lock and then a key lock).
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._closed = False
        # Sequences being generated, by request id, for cancel (also under _lock).
        self._generating: dict[int, Generator] = {}

    @property
    def repository(self) -> Path:
        return self._repository

    # -- lookup ---------------------------------------------------------------------------------

    def _check_names(self, model: str, version: str) -> None:
        if not _MODEL_NAME_RE.fullmatch(model):
            raise InvalidArgumentError(f"invalid model name {model!r}", field="model")
        if self._allowed is not None and model not in self._allowed:
            raise NotFoundError(
                f"model '{model}' is not one of the models this worker hosts "
                f"({', '.join(sorted(self._allowed))})",
                model=model,
                version=version,
            )
        if not _VERSION_RE.fullmatch(version):
            raise NotFoundError(
                f"model '{model}' has no version {version!r} (versions are decimal numbers)",
                model=model,
                version=version,
            )

    def _exists(self, model: str, version: str) -> bool:
        return (self._repository / model / version).is_dir()

    def _not_loaded(self, model: str, version: str) -> WorkerError:
        if self._exists(model, version):
            return ModelNotReadyError(
                f"model '{model}' version {version} is not loaded", model=model, version=version
            )
        return NotFoundError(
            f"model '{model}' version {version} is not in the repository",
            model=model,
            version=version,
        )

    def _model_dir(self, model: str, source: str | None) -> Path:
        """``<repository>/<model>``, or ``source`` after checking that it is a directory this
        process can read (``NotFoundError`` naming the path otherwise).

        ``source`` should be absolute; a relative one is taken from the working directory, as
        ``model_repository`` is, which is the orchestrator's own for the workers it spawns."""
        if source is None:
            return self._repository / model
        path = Path(source).absolute()
        if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
            raise NotFoundError(
                f"source {path} of model '{model}' is not a readable directory", model=model
            )
        return path

    def _resolve(
        self, model: str, version: str, model_dir: Path, *, from_source: bool
    ) -> tuple[ModelConfig, Path]:
        where = f"source {model_dir}" if from_source else "the repository"
        config_file = model_dir / CONFIG_FILE
        if not model_dir.is_dir():
            raise NotFoundError(f"model '{model}' is not in the repository", model=model)
        if not config_file.is_file():
            raise LoadFailedError(
                f"model '{model}' has no {CONFIG_FILE} in {where}", model=model, version=version
            )
        config = load_model_config(config_file, default_name=model)
        if config.name != model:
            raise LoadFailedError(
                f"{config_file} names the model '{config.name}' but it is loaded as '{model}'",
                model=model,
                version=version,
            )
        try:
            available = [
                int(p.name)
                for p in model_dir.iterdir()
                if p.is_dir() and _VERSION_RE.fullmatch(p.name)
            ]
        except OSError as exc:
            raise NotFoundError(
                f"cannot list {model_dir} of model '{model}': {exc.strerror or exc}",
                model=model,
                version=version,
            ) from None
        if int(version) not in available or not (model_dir / version).is_dir():
            raise NotFoundError(
                f"model '{model}' has no version {version} in {where} (it has "
                f"{', '.join(str(v) for v in sorted(available)) or 'none'})",
                model=model,
                version=version,
            )
        if int(version) not in config.version_policy.select(available):
            raise NotFoundError(
                f"model '{model}' version {version} is not served by its version_policy "
                f"({config.version_policy.kind})",
                model=model,
                version=version,
            )
        return config, model_dir / version

    def _create_runner(self, config: ModelConfig, version: str, version_dir: Path) -> Runner:
        if config.backend == llm_runner.BACKEND:
            return llm_runner.LlamaCppRunner(config, version, version_dir)
        onnx_file = version_dir / (config.default_model_filename or "model.onnx")
        python_file = version_dir / "model.py"
        kind: str | None = None
        if config.platform == onnx_runner.PLATFORM or config.backend == onnx_runner.BACKEND:
            kind = "onnx"
        elif config.backend == python_runner.BACKEND:
            kind = "python"
        elif not config.platform and not config.backend:
            # Triton would refuse; guessing from the file present is what its auto-complete does.
            kind = "onnx" if onnx_file.is_file() else "python" if python_file.is_file() else None
        if kind is None:
            what = config.platform or config.backend or "(none)"
            raise UnsupportedError(
                f"model '{config.name}' uses platform/backend {what}; this worker serves "
                "onnxruntime_onnx, python and llama_cpp models",
                feature=what,
            )
        model_file = onnx_file if kind == "onnx" else python_file
        if not model_file.is_file():
            raise LoadFailedError(
                f"model '{config.name}' version {version} has no {model_file.name}",
                model=config.name,
                version=version,
            )
        if kind == "onnx":
            return onnx_runner.OnnxRunner(
                config, version, model_file, intra_op_threads=self._intra_op_threads
            )
        return python_runner.PythonRunner(config, version, model_file, model_dir=version_dir.parent)

    def _key_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    # -- lifecycle ------------------------------------------------------------------------------

    def load(self, model: str, version: str, *, source: str | None = None) -> LoadedModel:
        """Load a version, warm-up included, or return it if already loaded; blocks for the whole
        load. ``source`` is an absolute model directory to read instead of
        ``<repository>/<model>``; the version is keyed by (model, version) all the same, so a
        version already loaded is returned whatever its source was."""
        self._check_names(model, version)
        key = (model, version)
        with self._key_lock(key):
            with self._lock:
                if self._closed:
                    raise UnavailableError("the worker is shutting down")
                entry = self._entries.get(key)
                if entry is not None and entry.info is not None:
                    return entry.info
                entry = self._entries[key] = _Entry()
            try:
                runner, loaded = self._load_entry(model, version, source)
            except BaseException:
                with self._lock:
                    del self._entries[key]
                raise
            with self._lock:
                entry.runner, entry.info = runner, loaded
                entry.state = ModelState.READY
            _log.info(
                "loaded %s version %s%s (%s, ~%d MiB, warm-up %.1f ms)",
                model,
                version,
                f" from {source}" if source is not None else "",
                loaded.metadata.platform,
                loaded.memory_bytes >> 20,
                loaded.warmup_ms,
            )
            return loaded

    def _load_entry(
        self, model: str, version: str, source: str | None
    ) -> tuple[Runner, LoadedModel]:
        model_dir = self._model_dir(model, source)
        config, version_dir = self._resolve(
            model, version, model_dir, from_source=source is not None
        )
        before = rss_bytes()
        try:
            runner = self._create_runner(config, version, version_dir)
        except WorkerError:
            raise
        except Exception as exc:
            raise LoadFailedError(
                f"loading model '{model}' version {version} failed: {type(exc).__name__}: {exc}",
                model=model,
                version=version,
            ) from exc
        # From here the runner is ours to close (finalize() for Python models) if anything fails,
        # so that a failed load leaves nothing behind.
        try:
            warmup_ms = run_warmup(runner, config, version=version, model_dir=model_dir)
            # Measured after the warm-up, which is when ONNX Runtime sizes its arenas.
            memory = max(0, rss_bytes() - before)
            if self._memory_budget_bytes:
                with self._lock:
                    used = sum(e.info.memory_bytes for e in self._entries.values() if e.info)
                if used + memory > self._memory_budget_bytes:
                    raise UnavailableError(
                        f"loading model '{model}' version {version} (~{memory >> 20} MiB) would "
                        "exceed the worker's memory budget of "
                        f"{self._memory_budget_bytes >> 20} MiB (~{used >> 20} MiB in use)"
                    )
        except BaseException:
            runner.close()
            raise
        return runner, LoadedModel(model, version, runner.metadata, memory, warmup_ms)

    def unload(self, model: str, version: str) -> None:
        """Unload a version, waiting for its calls in progress; unloading what is not loaded
        (including names that could never be loaded) succeeds, as the protocol asks."""
        key = (model, version)
        with self._key_lock(key):
            with self._lock:
                entry = self._entries.get(key)
                if entry is None:
                    return
                entry.state = ModelState.UNLOADING
                runner = entry.runner
            try:
                if runner is not None:
                    runner.close()
            finally:
                with self._lock:
                    self._entries.pop(key, None)
        _log.info("unloaded %s version %s", model, version)

    def close(self) -> None:
        """Unload everything (``finalize`` for Python models) and refuse new loads. Idempotent."""
        with self._lock:
            self._closed = True
            keys = list(self._entries)
        for model, version in keys:
            try:
                self.unload(model, version)
            except Exception:
                _log.exception("unloading %s version %s failed", model, version)

    # -- serving --------------------------------------------------------------------------------

    def _ready_runner(self, model: str, version: str) -> tuple[_Entry, Runner]:
        with self._lock:
            entry = self._entries.get((model, version))
            runner = entry.runner if entry is not None and entry.state is ModelState.READY else None
        if entry is None or runner is None:
            # Names are checked only now: a loaded version's were checked when it loaded.
            self._check_names(model, version)
            raise self._not_loaded(model, version)
        return entry, runner

    def infer(
        self, model: str, version: str, requests: Sequence[InferRequest]
    ) -> Sequence[InferResponse]:
        """Run one ``infer`` call; per-request failures are in the responses, whole-call ones
        are raised."""
        entry, runner = self._ready_runner(model, version)
        report = runner.infer(requests)
        with entry.counters:
            entry.inference_count += report.rows
            entry.execution_count += report.executions
            entry.compute_ns += report.compute_ns
        return report.responses

    def infer_batch(
        self, model: str, version: str, batch: BatchRequest
    ) -> Mapping[str, npt.NDArray[Any]]:
        """Run one whole-batch ``infer`` call: the outputs, each with ``sum(batch.rows)`` rows;
        every failure is raised (after counting the model call, if the model ran)."""
        entry, runner = self._ready_runner(model, version)
        report = runner.infer_batch(batch)
        with entry.counters:
            entry.inference_count += report.rows
            entry.execution_count += report.executions
            entry.compute_ns += report.compute_ns
        if report.error is not None:
            raise report.error
        return report.outputs

    def generate(
        self,
        model: str,
        version: str,
        request_id: int,
        request: GenerateRequest,
        sink: GenerationSink,
    ) -> None:
        """Start one sequence on a decoupled text-generation version; its output goes to
        ``sink`` (from the runner's threads). Raises what is wrong before it starts: not loaded,
        not a generating model, a duplicate id."""
        entry, runner = self._ready_runner(model, version)
        if not isinstance(runner, Generator):
            raise UnsupportedError(
                f"model '{model}' version {version} does not generate text (it is a "
                f"{runner.metadata.platform} model): use infer",
                feature="generate",
            )
        with self._lock:
            if request_id in self._generating:
                raise InvalidArgumentError(
                    f"request id {request_id} is already generating", field="id"
                )
            self._generating[request_id] = runner
        try:
            runner.generate(request_id, request, _CountingSink(self, entry, request_id, sink))
        except BaseException:
            self._generation_ended(request_id)
            raise

    def cancel(self, request_id: int) -> bool:
        """Stop a sequence started by ``generate`` within one token step; False when none with
        that id runs (it has ended already)."""
        with self._lock:
            runner = self._generating.get(request_id)
        return runner is not None and runner.cancel(request_id)

    def _generation_ended(self, request_id: int) -> None:
        with self._lock:
            self._generating.pop(request_id, None)

    def stats(self) -> list[ModelStats]:
        with self._lock:
            ready = [(k, e) for k, e in self._entries.items() if e.state is ModelState.READY]
        out: list[ModelStats] = []
        for (model, version), entry in ready:
            with entry.counters:
                out.append(
                    ModelStats(
                        model,
                        version,
                        entry.inference_count,
                        entry.execution_count,
                        entry.compute_ns,
                    )
                )
        return out

    def loaded(self) -> list[tuple[str, str]]:
        """(model, version) of every READY version."""
        with self._lock:
            return [k for k, e in self._entries.items() if e.state is ModelState.READY]
