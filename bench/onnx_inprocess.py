"""Baseline for bench/latency.ts: the model run in-process by ONNX Runtime, no server, no IPC.

Reads a JSON spec on stdin ({"model_path", "input", "dims", "duration_s", and "concurrency": [..]
or "batch_sizes": [..]}). With "concurrency", runs single-sample requests from N Python threads for
each concurrency (ORT releases the GIL) and prints JSON with the Node side's LatencySummary fields.
With "batch_sizes", runs one thread calling the model on batches of each size and prints the
samples/s and latency per size: the model's own throughput limit, at its best batch size.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import numpy as np
import onnxruntime as ort


def run(session: ort.InferenceSession, feed: dict[str, np.ndarray], concurrency: int, duration_s: float) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    warm_end = time.perf_counter() + 0.3
    while time.perf_counter() < warm_end:
        session.run(None, feed)
    end = time.perf_counter() + duration_s

    def loop() -> None:
        mine: list[float] = []
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            session.run(None, feed)
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    arr = np.sort(np.array(latencies))

    def pct(p: float) -> float:
        rank = min(len(arr) - 1, max(0, int(np.ceil(p / 100 * len(arr))) - 1))
        return round(float(arr[rank]), 3)

    return {
        "requests": len(arr),
        "errors": 0,
        "seconds": round(seconds, 3),
        "throughput_rps": round(len(arr) / seconds, 3),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "mean_ms": round(float(arr.mean()), 3),
    }


def batches(session: ort.InferenceSession, name: str, dims: list[int], sizes: list[int], duration_s: float) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(0)
    out: dict[str, dict[str, float]] = {}
    for size in sizes:
        feed = {name: rng.standard_normal((size, *dims), dtype=np.float32)}
        for _ in range(3):
            session.run(None, feed)
        calls: list[float] = []
        end = time.perf_counter() + duration_s
        start = time.perf_counter()
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            session.run(None, feed)
            calls.append((time.perf_counter() - t0) * 1000)
        seconds = time.perf_counter() - start
        out[str(size)] = {
            "batch_size": size,
            "calls": len(calls),
            "samples_per_s": round(len(calls) * size / seconds, 1),
            "call_ms_p50": round(float(np.percentile(calls, 50)), 3),
            "call_ms_p99": round(float(np.percentile(calls, 99)), 3),
        }
    return out


def main() -> None:
    spec = json.load(sys.stdin)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(spec.get("intra_op_threads", 1))
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(spec["model_path"], opts, providers=["CPUExecutionProvider"])
    if "batch_sizes" in spec:
        json.dump(batches(session, spec["input"], spec["dims"], [int(b) for b in spec["batch_sizes"]], float(spec["duration_s"])), sys.stdout)
        return
    rng = np.random.default_rng(0)
    feed = {spec["input"]: rng.standard_normal((1, *spec["dims"]), dtype=np.float32)}
    out = {str(c): run(session, feed, int(c), float(spec["duration_s"])) for c in spec["concurrency"]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
