"""Round-trip time of ``infer`` calls through a real worker process, per protocol form.

Plays the orchestrator with a ZeroMQ ROUTER socket, starts ``python -m inferneo_worker`` as a
subprocess, loads one model and sends the same call over and over, one at a time, timing each
round trip from ``send`` to the answer's arrival. Messages are packed before timing starts and
answers are not unpacked, so the times are the worker's (plus the transport's: a ``stats`` round
trip, answered on the worker's loop without touching a model, is printed as the floor).

    .venv/bin/python worker/benchmarks/infer_overhead.py            # mlp_tiny, 21 × 1 row
    .venv/bin/python worker/benchmarks/infer_overhead.py --worker-dir /tmp/old/worker

``--worker-dir`` points at another copy of ``worker/`` to compare versions; a worker that does not
know the whole-batch form is reported as such.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]


def _tensor(name: str, array: np.ndarray[Any, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": "FP32",
        "shape": list(array.shape),
        "data": array.astype("<f4").tobytes(),
    }


class _Router:
    def __init__(self, endpoint: str) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(endpoint)
        self.identity = b""

    def recv(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """The next result/error (heartbeats are acknowledged on the way)."""
        while True:
            if not self.socket.poll(int(timeout_s * 1000)):
                raise TimeoutError("no answer from the worker")
            identity, frame = self.socket.recv_multipart()
            message: dict[str, Any] = msgpack.unpackb(frame, raw=False)
            if message["type"] == "heartbeat":
                self.socket.send_multipart([identity, msgpack.packb({"type": "heartbeat"})])
                continue
            if message["type"] == "hello":
                self.identity = identity
            return message

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        self.socket.send_multipart([self.identity, msgpack.packb(message, use_bin_type=True)])
        return self.recv()

    def time_calls(self, frame: bytes, iterations: int, warmup: int) -> list[float]:
        """Microseconds per round trip of a pre-packed request (answers are not decoded)."""
        socket, identity = self.socket, self.identity
        samples: list[float] = []
        for index in range(warmup + iterations):
            started = time.perf_counter_ns()
            socket.send_multipart([identity, frame])
            while True:
                _, answer = socket.recv_multipart()
                # Heartbeats are rare with the interval used here; skip them if one comes.
                if b"heartbeat" not in answer[:40]:
                    break
            elapsed = time.perf_counter_ns() - started
            if index >= warmup:
                samples.append(elapsed / 1000)
        return samples

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()


def _summary(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{label:<10} median {statistics.median(samples):8.1f} µs   mean "
        f"{statistics.fmean(samples):8.1f} µs   p99 {p99:8.1f} µs   ({len(samples)} calls)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--worker-dir", type=Path, default=HERE.parent)
    parser.add_argument("--repository", type=Path, default=REPO_ROOT / "model-repository")
    parser.add_argument("--model", default="mlp_tiny")
    parser.add_argument("--input", default="INPUT0")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--requests", type=int, default=21, help="requests per call")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--forms", default="requests,batch")
    args = parser.parse_args(argv)

    directory = tempfile.mkdtemp(prefix="inferneo-bench-")
    endpoint = f"ipc://{directory}/orchestrator.sock"
    router = _Router(endpoint)
    env = dict(os.environ, PYTHONPATH=str(args.worker_dir), OMP_NUM_THREADS="1")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inferneo_worker",
            "--connect",
            endpoint,
            "--worker-id",
            "bench",
            "--model-repository",
            str(args.repository),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    try:
        hello = router.recv()
        assert hello["type"] == "hello", hello
        router.socket.send_multipart(
            [
                router.identity,
                msgpack.packb({"type": "hello", "protocol": 1, "heartbeat_interval_ms": 60_000}),
            ]
        )
        loaded = router.call({"type": "load", "id": 1, "model": args.model, "version": "1"})
        assert loaded["type"] == "result", loaded

        rng = np.random.default_rng(0)
        parts = [
            rng.standard_normal((args.rows, args.width)).astype(np.float32)
            for _ in range(args.requests)
        ]
        head = {"type": "infer", "id": 2, "model": args.model, "version": "1"}
        messages = {
            "requests": {
                **head,
                "requests": [{"inputs": [_tensor(args.input, p)], "outputs": []} for p in parts],
            },
            "batch": {
                **head,
                "batch": {
                    "inputs": [_tensor(args.input, np.concatenate(parts))],
                    "rows": [args.rows] * args.requests,
                    "outputs": [],
                },
            },
        }
        print(
            f"{args.model}: {args.requests} requests × {args.rows} row(s) per call, worker from "
            f"{args.worker_dir}"
        )
        stats_frame = msgpack.packb({"type": "stats", "id": 3})
        print(_summary("stats", router.time_calls(stats_frame, args.iterations, args.warmup)))
        for form in args.forms.split(","):
            message = messages[form]
            answer = router.call(message)
            if answer["type"] != "result":
                print(f"{form:<10} not served: {answer.get('code')} {answer.get('message')}")
                continue
            frame = msgpack.packb(message, use_bin_type=True)
            print(_summary(form, router.time_calls(frame, args.iterations, args.warmup)))
    finally:
        worker.terminate()
        worker.wait(10)
        router.close()
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
