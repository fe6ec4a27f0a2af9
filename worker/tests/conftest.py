"""Shared fixtures: the bundled models built into a temporary repository, small ONNX and Python
models written per test, and a real ZeroMQ ROUTER socket that plays the orchestrator."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import sys
import tempfile
import textwrap
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
import zmq
from onnx import helper

from inferneo_worker.config import WorkerConfig
from inferneo_worker.server import WorkerServer

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_REPOSITORY = REPO_ROOT / "model-repository"
WORKER_DIR = REPO_ROOT / "worker"


def worker_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess that imports inferneo_worker (as the orchestrator sets it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(WORKER_DIR), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def load_build_models() -> types.ModuleType:
    """Import model-repository/build_models.py (its directory name is not a package name)."""
    spec = importlib.util.spec_from_file_location(
        "inferneo_build_models", BUNDLED_REPOSITORY / "build_models.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def build_models() -> types.ModuleType:
    return load_build_models()


@pytest.fixture(scope="session")
def built_repository(
    tmp_path_factory: pytest.TempPathFactory, build_models: types.ModuleType
) -> Path:
    """The committed configs and model.py files plus freshly built ONNX files, in a temp dir.

    Session-scoped and read-only by convention: tests that need to add models use
    ``model_repository`` instead.
    """
    target = tmp_path_factory.mktemp("built-repository") / "models"
    shutil.copytree(
        BUNDLED_REPOSITORY,
        target,
        ignore=shutil.ignore_patterns("model.onnx", "*.partial", "__pycache__", "build_models.py"),
    )
    build_models.build(target)
    return target


@pytest.fixture
def model_repository(tmp_path: Path, built_repository: Path) -> Path:
    """A per-test repository: links to the built models, free to add more."""
    repository = tmp_path / "repository"
    repository.mkdir()
    for model_dir in built_repository.iterdir():
        if model_dir.is_dir():
            (repository / model_dir.name).symlink_to(model_dir, target_is_directory=True)
    return repository


def ort_outputs(model_file: Path, feeds: dict[str, npt.NDArray[Any]]) -> dict[str, Any]:
    """The oracle: run the ONNX file directly with ONNX Runtime."""
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def write_onnx(
    path: Path,
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    initializers: Sequence[onnx.TensorProto] = (),
) -> Path:
    graph = helper.make_graph(list(nodes), "test", list(inputs), list(outputs), list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_model(
    repository: Path, name: str, config: str, files: dict[str, str | bytes] | None = None
) -> Path:
    """Create ``<repository>/<name>/config.pbtxt`` and the given version files
    (``{"1/model.py": source}``); returns the model directory."""
    model_dir = repository / name
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(textwrap.dedent(config))
    for relative, content in (files or {}).items():
        target = model_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(textwrap.dedent(content))
    return model_dir


# A Python model that sleeps IN[0] milliseconds per request, echoes IN as OUT, raises SystemExit
# when IN[0] is -1, and leaves a "finalized" file when finalized.
SLOW_MODEL = """
    import os
    import time

    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def initialize(self, args):
            self.dir = os.path.dirname(__file__)

        def execute(self, requests):
            responses = []
            for request in requests:
                data = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
                if data.size and data.reshape(-1)[0] == -1:
                    raise SystemExit(3)
                time.sleep(float(data.reshape(-1)[0]) / 1000)
                responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", data)]))
            return responses

        def finalize(self):
            with open(os.path.join(self.dir, "finalized"), "w") as f:
                f.write("yes")
"""

SLOW_CONFIG = """
    name: "{name}"
    backend: "python"
    max_batch_size: 0
    input [ { name: "IN" data_type: TYPE_FP32 dims: [ -1 ] } ]
    output [ { name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
"""


def write_slow_model(repository: Path, name: str = "slow") -> Path:
    return write_model(
        repository, name, SLOW_CONFIG.replace("{name}", name), {"1/model.py": SLOW_MODEL}
    )


def bytes_tensor_data(items: Sequence[bytes]) -> bytes:
    return b"".join(len(item).to_bytes(4, "little") + item for item in items)


@pytest.fixture
def endpoint() -> Iterator[str]:
    """A unique ipc:// endpoint (short path: ipc paths are limited to ~107 bytes)."""
    directory = tempfile.mkdtemp(prefix="inferneo-test-")
    try:
        yield f"ipc://{directory}/orchestrator.sock"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class Orchestrator:
    """A real ROUTER socket speaking the orchestrator's side of the protocol, synchronously."""

    def __init__(self, endpoint: str) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(endpoint)
        self.next_id = 1
        self.replies: dict[int, dict[str, Any]] = {}

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()

    def recv_frames(self, timeout: float = 10.0) -> list[bytes]:
        if not self.socket.poll(int(timeout * 1000)):
            raise AssertionError(f"nothing received from the worker within {timeout} s")
        return self.socket.recv_multipart()

    def recv(self, timeout: float = 10.0) -> tuple[bytes, dict[str, Any]]:
        identity, frame = self.recv_frames(timeout)
        return identity, msgpack.unpackb(frame, raw=False)

    def recv_type(
        self, kind: str, timeout: float = 10.0, *, ack_heartbeats: bool = True
    ) -> tuple[bytes, dict[str, Any]]:
        """Wait for a message of ``kind``; acknowledge heartbeats meanwhile and keep replies to
        requests for ``answer``."""
        deadline = time.monotonic() + timeout
        while True:
            identity, message = self.recv(max(0.0, deadline - time.monotonic()))
            if message["type"] == kind:
                return identity, message
            if message["type"] == "heartbeat" and ack_heartbeats:
                self.send(identity, {"type": "heartbeat"})
            elif message["type"] in ("result", "error") and "id" in message:
                self.replies[message["id"]] = message

    def send(self, identity: bytes, message: dict[str, Any]) -> None:
        self.socket.send_multipart([identity, msgpack.packb(message, use_bin_type=True)])

    def send_raw(self, frames: list[bytes]) -> None:
        self.socket.send_multipart(frames)

    def handshake(
        self, interval_ms: int = 100, timeout: float = 10.0
    ) -> tuple[bytes, dict[str, Any]]:
        identity, hello = self.recv_type("hello", timeout)
        self.send(identity, {"type": "hello", "protocol": 1, "heartbeat_interval_ms": interval_ms})
        return identity, hello

    def call(
        self, identity: bytes, message: dict[str, Any], timeout: float = 20.0
    ) -> dict[str, Any]:
        """Send a request with a fresh id and return its answer (``result`` or ``error``)."""
        request_id = self.next_id
        self.next_id += 1
        self.send(identity, {**message, "id": request_id})
        return self.answer(request_id, timeout)

    def answer(self, request_id: int, timeout: float = 20.0) -> dict[str, Any]:
        """The reply to ``request_id``, whenever it came; other replies are kept for later."""
        deadline = time.monotonic() + timeout
        while request_id not in self.replies:
            identity, reply = self.recv(max(0.0, deadline - time.monotonic()))
            if reply["type"] == "heartbeat":
                self.send(identity, {"type": "heartbeat"})
            elif reply["type"] in ("result", "error") and "id" in reply:
                self.replies[reply["id"]] = reply
        return self.replies.pop(request_id)


@pytest.fixture
def orchestrator(endpoint: str) -> Iterator[Orchestrator]:
    router = Orchestrator(endpoint)
    try:
        yield router
    finally:
        router.close()


class ServerThread:
    """A WorkerServer on its own event loop in a thread (signals stay with pytest)."""

    def __init__(self, config: WorkerConfig) -> None:
        self.server = WorkerServer(config)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="worker-under-test", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self.server.run())
        except BaseException as exc:
            self.error = exc

    def start(self) -> ServerThread:
        self.thread.start()
        return self

    def stop(self, timeout: float = 20.0) -> None:
        self.server.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def start_server(endpoint: str) -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def start(repository: Path, **overrides: Any) -> ServerThread:
        settings: dict[str, Any] = {
            "connect": endpoint,
            "worker_id": f"test-worker-{len(started)}",
            "model_repository": repository,
            "heartbeat_interval_ms": 100,
            **overrides,
        }
        thread = ServerThread(WorkerConfig(**settings)).start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        if thread.thread.is_alive():
            thread.stop()


def random_features(rows: int, width: int, seed: int) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal((rows, width)).astype(np.float32)
