from __future__ import annotations

import dataclasses
import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO_ROOT
from inferneo_worker.config import (
    DEFAULT_CONFIG_FILE,
    ENV_VARS,
    ConfigError,
    WorkerConfig,
    default_worker_id,
    load_config,
)


def _yaml(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "worker.yaml"
    path.write_text(content)
    return path


def _load(
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> WorkerConfig:
    return load_config(flags or {}, environ=environ or {}, config_file=config_file)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty directory: no default worker-config/worker.yaml, a model-repository dir."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model-repository").mkdir()


def test_defaults() -> None:
    config = _load({"connect": "tcp://127.0.0.1:5555"})
    assert config.worker_id == f"{socket.gethostname()}-{os.getpid()}" == default_worker_id()
    assert config.model_repository == Path("model-repository")
    assert (config.threads, config.capacity, config.intra_op_threads) == (1, 1, 1)
    assert config.models == ("*",)
    assert (config.memory_budget_mb, config.memory_budget_bytes) == (0, 0)
    assert config.heartbeat_interval_ms == 1000
    assert config.log_level == "info"
    assert config.exit_with_parent is False


def test_precedence_flags_env_yaml_defaults(tmp_path: Path) -> None:
    (tmp_path / "from-yaml").mkdir()
    (tmp_path / "from-env").mkdir()
    config_file = _yaml(
        tmp_path,
        "connect: ipc:///yaml.sock\nworker_id: yaml-id\nmodel_repository: from-yaml\n"
        "threads: 4\nmemory_budget_mb: 64\nlog_level: WARNING\nmodels: [a, b]\n",
    )
    environ = {
        ENV_VARS["worker_id"]: "env-id",
        ENV_VARS["model_repository"]: str(tmp_path / "from-env"),
        ENV_VARS["connect"]: "",  # empty means unset
    }
    config = _load({"worker_id": "flag-id", "threads": None}, environ, config_file)
    assert config.connect == "ipc:///yaml.sock"
    assert config.worker_id == "flag-id"
    assert config.model_repository == tmp_path / "from-env"
    assert config.threads == 4
    assert config.memory_budget_bytes == 64 * 1024 * 1024
    assert config.log_level == "warning"
    assert config.models == ("a", "b")


def test_default_file_is_read_when_present(tmp_path: Path) -> None:
    (tmp_path / DEFAULT_CONFIG_FILE).parent.mkdir()
    (tmp_path / DEFAULT_CONFIG_FILE).write_text("connect: tcp://h:1\nthreads: 2\nworker_id: ~\n")
    config = _load()
    assert (config.connect, config.threads) == ("tcp://h:1", 2)


def test_bundled_worker_yaml_documents_every_key() -> None:
    path = REPO_ROOT / "worker-config" / "worker.yaml"
    document = yaml.safe_load(path.read_text())
    assert set(document) == {f.name for f in dataclasses.fields(WorkerConfig)}
    lines = path.read_text().splitlines()
    for key in document:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
        assert lines[index - 1].startswith("#"), f"{key} has no comment above it"
    config = load_config(
        {"connect": "ipc:///x", "model_repository": str(REPO_ROOT / "model-repository")},
        environ={},
        config_file=path,
    )
    assert config.threads == 1


@pytest.mark.parametrize(
    ("flags", "yaml_text", "key", "fragment"),
    [
        ({}, "", "connect", "required"),
        ({"connect": "http://x"}, "", "connect", "tcp:// or ipc://"),
        ({"threads": 0}, "", "threads", "'threads'=0|threads=0"),
        ({}, "threads: two\n", "threads", "must be an integer"),
        ({}, "threads: true\n", "threads", "must be an integer"),
        ({"intra_op_threads": -1}, "", "intra_op_threads", ">= 1"),
        ({}, "memory_budget_mb: -5\n", "memory_budget_mb", ">= 0"),
        ({}, "heartbeat_interval_ms: 0\n", "heartbeat_interval_ms", ">= 1"),
        ({}, "models: classifier\n", "models", "list of model names"),
        ({}, "models: []\n", "models", "non-empty"),
        ({}, "models: ['']\n", "models", "non-empty"),
        ({"log_level": "loud"}, "", "log_level", "one of debug"),
        ({}, "log_level: 3\n", "log_level", "must be a string"),
        ({}, "exit_with_parent: yes please\n", "exit_with_parent", "true or false"),
        ({}, "model_repository: 5\n", "model_repository", "directory path"),
        ({"model_repository": "missing-dir"}, "", "model_repository", "is not a directory"),
        ({"worker_id": "x" * 256}, "", "worker_id", "1 to 255 bytes"),
        ({"worker_id": "\0id"}, "", "worker_id", "NUL"),
        ({}, "colour: blue\n", "colour", "unknown config key"),
        ({"colour": "blue"}, "", "colour", "unknown config key"),
    ],
)
def test_invalid_values_name_key_and_value(
    tmp_path: Path, flags: dict[str, Any], yaml_text: str, key: str, fragment: str
) -> None:
    if "connect" not in flags and "connect" not in yaml_text and key != "connect":
        flags = {"connect": "ipc:///tmp/x.sock", **flags}
    with pytest.raises(ConfigError) as caught:
        _load(flags, config_file=_yaml(tmp_path, yaml_text) if yaml_text else None)
    error = caught.value
    assert error.key == key
    assert f"{key}=" in str(error)
    assert re.search(fragment, str(error))


def test_error_names_the_source(tmp_path: Path) -> None:
    config_file = _yaml(tmp_path, "connect: ipc:///a\nthreads: 0\n")
    with pytest.raises(ConfigError) as from_file:
        _load(config_file=config_file)
    assert from_file.value.source == str(config_file)
    assert str(from_file.value) == (f"invalid config: threads=0 (from {config_file}): must be >= 1")
    with pytest.raises(ConfigError) as from_flag:
        _load({"connect": "ipc:///a", "intra_op_threads": 0})
    assert from_flag.value.source == "--intra-op-threads"
    with pytest.raises(ConfigError) as from_env:
        _load({}, {ENV_VARS["connect"]: "udp://x"})
    assert from_env.value.source == "INFERNEO_WORKER_CONNECT"
    assert from_env.value.value == "udp://x"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("threads: [\n", "not valid YAML"), ("- a\n- b\n", "mapping of config keys")],
)
def test_bad_yaml_files(tmp_path: Path, content: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as caught:
        _load({"connect": "ipc:///a"}, config_file=_yaml(tmp_path, content))
    assert caught.value.key == "config"


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read") as caught:
        _load({"connect": "ipc:///a"}, config_file=tmp_path / "nope.yaml")
    assert caught.value.value == str(tmp_path / "nope.yaml")


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert _load({"connect": "ipc:///a"}, config_file=_yaml(tmp_path, "# nothing\n")).threads == 1
