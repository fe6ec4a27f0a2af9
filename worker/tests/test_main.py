"""The command line: configuration errors, a graceful stop on signals, --exit-with-parent.

The process tests start the real ``python -m inferneo_worker`` the way the orchestrator does."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import Orchestrator, worker_env, write_slow_model
from inferneo_worker import main as main_module
from inferneo_worker.config import WorkerConfig
from inferneo_worker.server import WorkerServer


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() configures the root logger for a whole process; undo that after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _config_file(tmp_path: Path, text: str = "heartbeat_interval_ms: 100\n") -> Path:
    path = tmp_path / "worker.yaml"
    path.write_text(text)
    return path


def test_invalid_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main_module.main(
        [
            "--connect",
            "ipc:///tmp/x.sock",
            "--threads",
            "0",
            "--config",
            str(_config_file(tmp_path)),
        ],
        environ={},
    )
    assert code == 2
    assert "invalid config: threads=0 (from --threads): must be >= 1" in capsys.readouterr().err


def test_missing_connect_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_module.main(["--config", str(_config_file(tmp_path))], environ={}) == 2
    assert "connect" in capsys.readouterr().err


def test_bad_flag_value_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main_module.main(["--threads", "many"], environ={})
    assert caught.value.code == 2
    assert "--threads" in capsys.readouterr().err


def test_main_runs_until_sigterm(
    tmp_path: Path,
    model_repository: Path,
    endpoint: str,
    orchestrator: Orchestrator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In-process: the real signal handling of main(), with SIGTERM sent to this process."""
    seen: dict[str, object] = {}

    def orchestrate() -> None:
        identity, hello = orchestrator.handshake()
        seen["hello"] = hello
        seen["stats"] = orchestrator.call(identity, {"type": "stats"})
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=orchestrate)
    thread.start()
    code = main_module.main(
        [
            "--config",
            str(_config_file(tmp_path)),
            "--model-repository",
            str(model_repository),
            "--threads",
            "2",
            "--intra-op-threads",
            "1",
            "--log-level",
            "debug",
        ],
        environ={"INFERNEO_WORKER_CONNECT": endpoint, "INFERNEO_WORKER_ID": "in-process"},
    )
    thread.join(10)
    assert code == 0
    assert seen["hello"]["worker_id"] == "in-process"  # type: ignore[index]
    assert seen["hello"]["capacity"] == 2  # type: ignore[index]
    assert seen["stats"]["type"] == "result"  # type: ignore[index]
    err = capsys.readouterr().err
    assert "[in-process] " in err
    assert "received SIGTERM: stopping" in err


def test_worker_failure_exits_1(
    tmp_path: Path, model_repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: WorkerServer) -> None:
        raise RuntimeError("socket exploded")

    monkeypatch.setattr(WorkerServer, "run", broken)
    code = main_module.main(
        ["--connect", "ipc:///tmp/never.sock", "--model-repository", str(model_repository)],
        environ={},
    )
    assert code == 1


def test_parent_watch_stops_the_server(model_repository: Path, endpoint: str) -> None:
    server = WorkerServer(
        WorkerConfig(connect=endpoint, worker_id="w", model_repository=model_repository)
    )
    # A parent pid that is not ours: the watcher sees it "changed" at once.
    asyncio.run(asyncio.wait_for(main_module._watch_parent(server, os.getppid() + 1), 5))
    assert server._stop_requested


# -- real processes -----------------------------------------------------------------------------


def _spawn(tmp_path: Path, endpoint: str, repository: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inferneo_worker",
            "--connect",
            endpoint,
            "--worker-id",
            "proc-worker",
            "--model-repository",
            str(repository),
            "--config",
            str(_config_file(tmp_path)),
            *extra,
        ],
        cwd=tmp_path,
        env=worker_env(),
        stderr=subprocess.PIPE,
    )


def test_sigterm_answers_in_flight_requests_then_exits_0(
    tmp_path: Path, model_repository: Path, endpoint: str, orchestrator: Orchestrator
) -> None:
    write_slow_model(model_repository)
    process = _spawn(tmp_path, endpoint, model_repository)
    try:
        identity, hello = orchestrator.handshake(timeout=30)
        assert hello["pid"] == process.pid
        assert identity == b"proc-worker"
        loaded = orchestrator.call(identity, {"type": "load", "model": "slow", "version": "1"})
        assert loaded["type"] == "result"
        data = np.array([400.0], dtype="<f4")
        orchestrator.send(
            identity,
            {
                "type": "infer",
                "id": 77,
                "model": "slow",
                "version": "1",
                "requests": [
                    {
                        "inputs": [
                            {"name": "IN", "datatype": "FP32", "shape": [1], "data": data.tobytes()}
                        ]
                    }
                ],
            },
        )
        time.sleep(0.15)
        process.send_signal(signal.SIGTERM)
        answer = orchestrator.answer(77)
        assert answer["type"] == "result"
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert all(line.startswith("[proc-worker] ") for line in stderr.splitlines() if line)
    assert "received SIGTERM" in stderr
    assert (model_repository / "slow" / "1" / "finalized").read_text() == "yes"


def _state(pid: int) -> str | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    return next(line.split()[1] for line in status.splitlines() if line.startswith("State:"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_exit_with_parent(
    tmp_path: Path, model_repository: Path, endpoint: str, orchestrator: Orchestrator
) -> None:
    launcher = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen(sys.argv[1:])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    command = [
        sys.executable,
        "-m",
        "inferneo_worker",
        "--connect",
        endpoint,
        "--worker-id",
        "orphan",
        "--model-repository",
        str(model_repository),
        "--config",
        str(_config_file(tmp_path)),
        "--exit-with-parent",
    ]
    parent = subprocess.Popen(
        [sys.executable, "-c", launcher, *command],
        cwd=tmp_path,
        env=worker_env(),
        stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    worker_pid = int(parent.stdout.readline())
    try:
        orchestrator.handshake(timeout=30)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 15
        while _state(worker_pid) not in (None, "Z"):
            assert time.monotonic() < deadline, "the worker outlived its parent"
            time.sleep(0.05)
    finally:
        if _state(worker_pid) not in (None, "Z"):
            os.kill(worker_pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()
