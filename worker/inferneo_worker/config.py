"""The worker's configuration: one typed, validated object built from flags, environment and YAML.

Precedence, highest first: command-line flags, environment variables (``ENV_VARS``), the YAML file
(``worker-config/worker.yaml`` by default), then the defaults documented on ``WorkerConfig``. Every
value is validated eagerly, when the config is built; a bad one raises ``ConfigError`` naming the
key, the value and where it came from, and ``main`` turns that into exit code 2.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

import yaml

DEFAULT_CONFIG_FILE: Final = Path("worker-config/worker.yaml")
"""Read when ``--config`` is not given; silently skipped when it does not exist."""

ENV_VARS: Final[Mapping[str, str]] = {
    "connect": "INFERNEO_WORKER_CONNECT",
    "worker_id": "INFERNEO_WORKER_ID",
    "model_repository": "INFERNEO_MODEL_REPOSITORY",
}
"""Environment variables that override the YAML file (flags override them in turn)."""

LOG_LEVELS: Final = ("debug", "info", "warning", "error")

_ENDPOINT_SCHEMES: Final = ("tcp://", "ipc://")

# A ZeroMQ routing id is at most 255 bytes, and ids starting with a zero byte are reserved.
_MAX_WORKER_ID_BYTES: Final = 255


def default_worker_id() -> str:
    """``<hostname>-<pid>``: unique per live process on a machine, readable in logs."""
    return f"{socket.gethostname()}-{os.getpid()}"


class ConfigError(ValueError):
    """A configuration value is missing or invalid.

    ``key`` is the config key (as in the YAML file), ``value`` the rejected value and ``source``
    where it came from (``"--threads"``, ``"INFERNEO_WORKER_ID"``, a file path, or ``"default"``).
    """

    def __init__(self, key: str, value: object, reason: str, *, source: str | None = None) -> None:
        where = f" (from {source})" if source else ""
        super().__init__(f"invalid config: {key}={value!r}{where}: {reason}")
        self.key = key
        self.value = value
        self.reason = reason
        self.source = source


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs to know; immutable once built and validated."""

    connect: str
    """ZeroMQ endpoint of the orchestrator's ROUTER socket, ``tcp://host:port`` or ``ipc:///path``.
    Required: no default."""

    worker_id: str = field(default_factory=default_worker_id)
    """The DEALER routing id and the prefix of every log line. @default ``<hostname>-<pid>``"""

    model_repository: Path = Path("model-repository")
    """Triton-layout model repository (relative paths are relative to the working directory).
    @default ``./model-repository``"""

    threads: int = 1
    """Inference and load calls run at once; announced to the orchestrator as ``capacity``.
    @default 1"""

    intra_op_threads: int = 1
    """ONNX Runtime threads inside one model call. @default 1"""

    models: tuple[str, ...] = ("*",)
    """Model names this worker may host; ``"*"`` means any model in its repository.
    @default ``["*"]``"""

    memory_budget_mb: int = 0
    """Loads that would take the models' estimated memory past this many MiB are refused with
    ``UNAVAILABLE``; 0 means no budget. @default 0"""

    heartbeat_interval_ms: int = 1000
    """Heartbeat period until the orchestrator's hello acknowledgement sets its own; the hello is
    resent every 3 × this until acknowledged. @default 1000"""

    log_level: str = "info"
    """One of ``debug``, ``info``, ``warning``, ``error``. @default ``info``"""

    exit_with_parent: bool = False
    """Exit (gracefully) when the parent process dies. @default false"""

    def __post_init__(self) -> None:
        _require(
            self.connect.startswith(_ENDPOINT_SCHEMES) and len(self.connect) > len("tcp://"),
            "connect",
            self.connect,
            "must be a ZeroMQ endpoint starting with tcp:// or ipc://",
        )
        encoded_id = self.worker_id.encode("utf-8")
        _require(
            0 < len(encoded_id) <= _MAX_WORKER_ID_BYTES and not self.worker_id.startswith("\0"),
            "worker_id",
            self.worker_id,
            f"must be 1 to {_MAX_WORKER_ID_BYTES} bytes of UTF-8 and not start with a NUL",
        )
        _require(self.threads >= 1, "threads", self.threads, "must be >= 1")
        _require(
            self.intra_op_threads >= 1, "intra_op_threads", self.intra_op_threads, "must be >= 1"
        )
        _require(
            len(self.models) > 0 and all(self.models),
            "models",
            list(self.models),
            'must be a non-empty list of model names (["*"] = any)',
        )
        _require(
            self.memory_budget_mb >= 0, "memory_budget_mb", self.memory_budget_mb, "must be >= 0"
        )
        _require(
            self.heartbeat_interval_ms >= 1,
            "heartbeat_interval_ms",
            self.heartbeat_interval_ms,
            "must be >= 1",
        )
        _require(
            self.log_level in LOG_LEVELS,
            "log_level",
            self.log_level,
            f"must be one of {', '.join(LOG_LEVELS)}",
        )

    @property
    def capacity(self) -> int:
        """Inference calls this worker runs at once (what ``hello`` announces)."""
        return self.threads

    @property
    def memory_budget_bytes(self) -> int:
        """``memory_budget_mb`` in bytes; 0 = no budget."""
        return self.memory_budget_mb * 1024 * 1024


def _require(ok: bool, key: str, value: object, reason: str) -> None:
    if not ok:
        raise ConfigError(key, value, reason)


_KEYS: Final = tuple(f.name for f in fields(WorkerConfig))


def load_config(
    flags: Mapping[str, object],
    *,
    environ: Mapping[str, str],
    config_file: Path | None,
) -> WorkerConfig:
    """Build the config from its sources.

    ``flags`` maps config keys to values given on the command line (``None`` = not given).
    ``config_file`` is an explicitly requested YAML file, which must exist; ``None`` reads
    ``DEFAULT_CONFIG_FILE`` if it exists.
    """
    layered: dict[str, tuple[object, str]] = {}
    path = config_file if config_file is not None else DEFAULT_CONFIG_FILE
    if config_file is not None or path.is_file():
        for key, value in _read_yaml(path).items():
            layered[key] = (value, str(path))
    for key, variable in ENV_VARS.items():
        env_value = environ.get(variable)
        if env_value:
            layered[key] = (env_value, variable)
    for key, value in flags.items():
        if key not in _KEYS:
            raise ConfigError(key, value, "unknown config key", source="command line")
        if value is not None:
            layered[key] = (value, "--" + key.replace("_", "-"))

    kwargs: dict[str, Any] = {}
    for key, (value, source) in layered.items():
        kwargs[key] = _coerce(key, value, source)
    if "connect" not in kwargs:
        raise ConfigError(
            "connect",
            None,
            f"required: pass --connect or set {ENV_VARS['connect']}",
        )
    try:
        config = WorkerConfig(**kwargs)
    except ConfigError as exc:
        source = layered.get(exc.key, (None, "default"))[1]
        raise ConfigError(exc.key, exc.value, exc.reason, source=source) from None
    if not config.model_repository.is_dir():
        raise ConfigError(
            "model_repository",
            str(config.model_repository),
            "is not a directory",
            source=layered.get("model_repository", (None, "default"))[1],
        )
    return config


def _read_yaml(path: Path) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("config", str(path), f"cannot read: {exc.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("config", str(path), f"not valid YAML: {exc}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError("config", str(path), "the top level must be a mapping of config keys")
    out: dict[str, object] = {}
    for key, value in document.items():
        if key not in _KEYS:
            raise ConfigError(
                str(key), value, f"unknown config key (known: {', '.join(_KEYS)})", source=str(path)
            )
        # An explicit null in the file means "use the default", so that the file can list every
        # key for documentation without pinning values such as connect.
        if value is not None:
            out[key] = value
    return out


def _coerce(key: str, value: object, source: str) -> object:
    """Check a raw value's type for ``key`` and convert it to the field's type."""
    if key in ("threads", "intra_op_threads", "memory_budget_mb", "heartbeat_interval_ms"):
        if type(value) is not int:
            raise ConfigError(key, value, "must be an integer", source=source)
        return value
    if key == "exit_with_parent":
        if not isinstance(value, bool):
            raise ConfigError(key, value, "must be true or false", source=source)
        return value
    if key == "model_repository":
        if not isinstance(value, str | Path) or not str(value):
            raise ConfigError(key, value, "must be a directory path", source=source)
        return Path(value)
    if key == "models":
        if not isinstance(value, list | tuple) or not all(isinstance(m, str) for m in value):
            raise ConfigError(key, value, "must be a list of model names", source=source)
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(key, value, "must be a string", source=source)
    return value.lower() if key == "log_level" else value
