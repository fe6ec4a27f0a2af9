"""The in-process baselines of bench/llm.ts: the same GGUF model driven directly, without Inferneo.

Reads a JSON spec on stdin and prints JSON results, per path and concurrency: time to first token
(p50/p99, from the moment a request is issued, waiting included), end-to-end latency and generated
tokens per second over the whole run. ``c`` client threads each issue ``per_client`` requests one
after the other; every request generates exactly ``max_tokens`` tokens (end-of-sequence is ignored).

Paths:

* ``llama_cpp`` — llama-cpp-python's own API, ``Llama.create_completion(stream=True)``: one
  ``Llama`` object runs one sequence at a time, so concurrent clients take turns (a lock).
* ``engine`` — Inferneo's worker engine (``LlamaCppRunner``: continuous batching of every running
  sequence in one llama.cpp context) called in-process, without the orchestrator, the HTTP API or
  the ZeroMQ bridge: what the bridge costs is the difference to the Inferneo path.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[rank]


def _summary(ttft: list[float], e2e: list[float], tokens: int, seconds: float) -> dict[str, Any]:
    def ms(x: float) -> float:
        return round(x * 1000, 1)

    return {
        "requests": len(e2e),
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "ttft_p50_ms": ms(_percentile(ttft, 50)),
        "ttft_p99_ms": ms(_percentile(ttft, 99)),
        "e2e_p50_ms": ms(_percentile(e2e, 50)),
        "e2e_p99_ms": ms(_percentile(e2e, 99)),
    }


def _run(
    concurrency: int, per_client: int, one: Callable[[int], tuple[float, float, int]]
) -> dict[str, Any]:
    """``one(i)`` runs request ``i`` and returns (ttft s, e2e s, tokens)."""
    ttft: list[float] = []
    e2e: list[float] = []
    tokens = [0]
    lock = threading.Lock()

    def client(k: int) -> None:
        for j in range(per_client):
            first, total, count = one(k * per_client + j)
            with lock:
                ttft.append(first)
                e2e.append(total)
                tokens[0] += count

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _summary(ttft, e2e, tokens[0], time.perf_counter() - started)


class _FifoTurn:
    """Turns in order of arrival (``threading.Lock`` lets a releasing thread take it right back,
    which would let one client starve the others and flatter the percentiles)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._next
            self._next += 1
            while self._serving != ticket:
                self._cond.wait()

    def __exit__(self, *_: object) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


def llama_cpp_path(spec: dict[str, Any], model_path: str) -> dict[str, Any]:
    from llama_cpp import Llama, LogitsProcessorList

    llm = Llama(
        model_path=model_path,
        n_ctx=spec["context_length"],
        n_threads=spec["n_threads"],
        n_threads_batch=spec["n_threads"],
        verbose=False,
    )
    eos = llm.token_eos()

    def no_eos(_ids: Any, scores: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        scores[eos] = -np.inf
        return scores

    turn = _FifoTurn()

    def one(i: int) -> tuple[float, float, int]:
        issued = time.perf_counter()
        first = math.nan
        count = 0
        with turn:  # one sequence at a time: the runtime's own API has no concurrency
            # Forget the previous prompt: Llama would otherwise reuse its cached prefix (the
            # prompt is the same every time), which the other paths do not do.
            llm.reset()
            for piece in llm.create_completion(
                spec["prompt"],
                max_tokens=spec["max_tokens"],
                temperature=spec["temperature"],
                seed=spec["seed"] + i,
                stream=True,
                logits_processor=LogitsProcessorList([no_eos]),
            ):
                if piece["choices"][0]["finish_reason"] is not None:
                    continue  # the closing chunk carries no token
                if math.isnan(first):
                    first = time.perf_counter() - issued
                count += 1
        return first, time.perf_counter() - issued, count

    one(0)  # warm-up
    out = {str(c): _run(c, spec["per_client"], one) for c in spec["concurrency"]}
    llm.close()
    return out


def engine_path(spec: dict[str, Any]) -> dict[str, Any]:
    sys.path.insert(0, str(Path(spec["worker_dir"])))
    from inferneo_worker.model_config import load_model_config
    from inferneo_worker.runners.generation import GenerateRequest, SamplingParams
    from inferneo_worker.runners.llm_runner import LlamaCppRunner

    model_dir = Path(spec["model_dir"])
    config = load_model_config(model_dir / "config.pbtxt", default_name=model_dir.name)
    runner = LlamaCppRunner(config, "1", model_dir / "1")

    class Sink:
        def __init__(self) -> None:
            self.issued = time.perf_counter()
            self.first = math.nan
            self.tokens = 0
            self.done = threading.Event()

        def delta(self, text: str, tokens: int) -> None:
            if math.isnan(self.first) and tokens:
                self.first = time.perf_counter() - self.issued
            self.tokens += tokens

        def finish(self, reason: Any, usage: Any, text: str = "") -> None:
            self.done.set()

        def fail(self, error: Any) -> None:
            raise SystemExit(f"engine failed: {error}")

    ids = iter(range(1, 1 << 30))

    def one(i: int) -> tuple[float, float, int]:
        sink = Sink()
        params = SamplingParams(
            max_tokens=spec["max_tokens"],
            temperature=spec["temperature"],
            seed=spec["seed"] + i,
            ignore_eos=True,
        )
        runner.generate(next(ids), GenerateRequest(spec["prompt"], None, params), sink)
        sink.done.wait()
        return sink.first, time.perf_counter() - sink.issued, sink.tokens

    one(0)
    out = {str(c): _run(c, spec["per_client"], one) for c in spec["concurrency"]}
    runner.close()
    return out


def main() -> None:
    spec = json.load(sys.stdin)
    sys.path.insert(0, str(Path(spec["worker_dir"])))
    from inferneo_worker.model_config import load_model_config
    from inferneo_worker.runners.llm_runner import LlmSettings

    model_dir = Path(spec["model_dir"])
    config = load_model_config(model_dir / "config.pbtxt", default_name=model_dir.name)
    settings = LlmSettings.load(config, model_dir / "1")
    model_path = str(settings.model_file_path(model_dir, config.name))
    spec.setdefault("context_length", settings.context_length)
    spec.setdefault("n_threads", settings.n_threads)
    print(
        json.dumps(
            {"llama_cpp": llama_cpp_path(spec, model_path), "engine": engine_path(spec)},
        )
    )


if __name__ == "__main__":
    main()
