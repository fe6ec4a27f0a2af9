"""Fixtures of the conformance tests: a real Inferneo and NVIDIA's own clients pointed at it.

The tests in this folder run under `.venv-triton/bin/python` (NVIDIA's `tritonclient` 2.51 and
`perf_analyzer`, with their own numpy and protobuf) and talk to a real orchestrator started here
as a subprocess, `node dist/orchestrator/src/main.js`, exactly as a user starts it: free HTTP and
gRPC ports, the Redis of the test run (`REDIS_URL`), a registry prefix of its own, the bundled
model repository and two Python workers from `.venv`. `npm test` runs them after the worker tests
(`INFERNEO_NODE` names the Node binary; `node` on PATH by default).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL_REPOSITORY = ROOT / "model-repository"
MAIN_JS = ROOT / "dist" / "orchestrator" / "src" / "main.js"
WORKER_PYTHON = ROOT / ".venv" / "bin" / "python"
ADMIN_TOKEN = "conformance-admin-token"
READY_TIMEOUT_S = 120.0
STARTUP_MODELS = ("classifier", "mlp_tiny", "mlp_wide", "text_stats")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Inferneo:
    """A running orchestrator: where its APIs listen and how to reach its admin API."""

    http_port: int
    grpc_port: int
    prefix: str
    log_path: Path

    @property
    def http_url(self) -> str:
        """`host:port`, the form tritonclient and perf_analyzer take."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def admin(self, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
        """Calls `/admin{path}` with the bearer token; returns the status and the JSON body."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://{self.http_url}/admin{path}",
            data=data,
            method=method,
            headers={"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status: int = response.status
                text = response.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode()
        return status, (json.loads(text) if text else None)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def inferneo() -> Iterator[Inferneo]:
    """Starts `node dist/orchestrator/src/main.js` and waits for `/v2/health/ready`."""
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        pytest.fail(
            "the conformance tests need a Redis: run them with `npm test`, or set REDIS_URL"
        )
    if not MAIN_JS.exists():
        pytest.fail(f"{MAIN_JS} is missing: build first (`npm run build`, or `npm test`)")
    server = Inferneo(
        http_port=free_port(),
        grpc_port=free_port(),
        prefix=f"inferneo-conformance-{uuid.uuid4().hex[:8]}:",
        log_path=Path(tempfile.mkstemp(prefix="inferneo-conformance-", suffix=".log")[1]),
    )
    # Only the settings below: no INFERNEO_* variable of the caller's shell changes the server.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("INFERNEO_")}
    env = {
        **inherited,
        "INFERNEO_HTTP_HOST": "127.0.0.1",
        "INFERNEO_HTTP_PORT": str(server.http_port),
        "INFERNEO_GRPC_PORT": str(server.grpc_port),
        "REDIS_URL": redis_url,
        "INFERNEO_REDIS_PREFIX": server.prefix,
        "INFERNEO_ADMIN_TOKEN": ADMIN_TOKEN,
        "INFERNEO_PYTHON": str(WORKER_PYTHON),
        "INFERNEO_MODEL_REPOSITORY": str(MODEL_REPOSITORY),
        # The models these tests use; others in the repository stay registered, loaded on demand.
        "INFERNEO_STARTUP_MODELS": ",".join(STARTUP_MODELS),
    }
    with server.log_path.open("wb") as log:
        child = subprocess.Popen(
            [os.environ.get("INFERNEO_NODE", "node"), str(MAIN_JS)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _http_ok(f"http://{server.http_url}/v2/health/ready"):
            if child.poll() is not None:
                pytest.fail(
                    f"the orchestrator exited with code {child.returncode}:\n{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the orchestrator was not ready in {READY_TIMEOUT_S} s:\n{server.log_tail()}"
                )
            time.sleep(0.2)
        yield server
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        server.log_path.unlink(missing_ok=True)


class OnnxOracle:
    """ONNX Runtime run here, in the test, on the bundled model files: what Inferneo must answer."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str], ort.InferenceSession] = {}

    def run(self, model: str, version: str, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        key = (model, version)
        if key not in self._sessions:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            path = MODEL_REPOSITORY / model / version / "model.onnx"
            self._sessions[key] = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        session = self._sessions[key]
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, feed), strict=True))


@pytest.fixture(scope="session")
def oracle() -> OnnxOracle:
    return OnnxOracle()


def features(rows: int, seed: int, width: int = 16) -> np.ndarray:
    """Deterministic float32 inputs in [-2, 2), so that a failure reproduces."""
    return np.random.default_rng(seed).uniform(-2, 2, size=(rows, width)).astype(np.float32)
