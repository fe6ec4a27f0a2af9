from __future__ import annotations

import ctypes
import signal
import subprocess
import sys

import pytest

from conftest import worker_env
from inferneo_worker import _proc


def test_rss_bytes_is_positive_and_plausible() -> None:
    rss = _proc.rss_bytes()
    assert 1 << 20 < rss < 1 << 40


def test_rss_bytes_without_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*_args: object, **_kwargs: object) -> None:
        raise OSError("no /proc")

    monkeypatch.setattr("builtins.open", missing)
    assert _proc.rss_bytes() == 0


def test_parent_death_signal_in_a_child() -> None:
    # Set it in a throwaway child process: setting it in the test process would outlive the test.
    code = (
        "import signal, sys\n"
        "from inferneo_worker import _proc\n"
        "sys.exit(0 if _proc.set_parent_death_signal(signal.SIGTERM) else 1)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, timeout=30, env=worker_env())
    assert result.returncode == (0 if sys.platform.startswith("linux") else 1)


def test_parent_death_signal_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert _proc.set_parent_death_signal(signal.SIGTERM) is False


def test_parent_death_signal_without_libc(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_libc(*_args: object, **_kwargs: object) -> None:
        raise OSError("no libc")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert _proc.set_parent_death_signal(signal.SIGTERM) is False
