"""Command line of the worker process.

    python -m inferneo_worker --connect ENDPOINT [--worker-id ID] [--config FILE]
        [--model-repository PATH] [--threads N] [--intra-op-threads N] [--exit-with-parent]
        [--log-level LEVEL]

Flags override ``INFERNEO_WORKER_CONNECT`` / ``INFERNEO_WORKER_ID`` / ``INFERNEO_MODEL_REPOSITORY``,
which override the YAML file, which overrides the defaults (``config.WorkerConfig``). Exit codes:
0 after a graceful stop (SIGTERM, SIGINT, or the parent's death with ``--exit-with-parent``), 2 for
an invalid configuration, 1 if the worker fails.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from ._proc import set_parent_death_signal
from .config import LOG_LEVELS, ConfigError, WorkerConfig, load_config
from .server import WorkerServer

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_BAD_CONFIG: Final = 2

# The parent-death signal covers Linux; polling getppid covers the rest and the rare case of a
# parent that died before prctl took effect.
_PARENT_POLL_S: Final = 0.5

_log = logging.getLogger("inferneo_worker")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inferneo_worker",
        description="Inferneo Python worker: serves models to the orchestrator over ZeroMQ.",
    )
    parser.add_argument("--connect", help="orchestrator ROUTER endpoint (tcp://… or ipc://…)")
    parser.add_argument("--worker-id", help="routing id and log prefix (default <hostname>-<pid>)")
    parser.add_argument(
        "--config",
        type=Path,
        help="YAML config file (default worker-config/worker.yaml when it exists)",
    )
    parser.add_argument("--model-repository", help="Triton-layout model repository directory")
    parser.add_argument("--threads", type=int, help="inference calls run at once (capacity)")
    parser.add_argument("--intra-op-threads", type=int, help="ONNX Runtime threads per call")
    parser.add_argument(
        "--exit-with-parent",
        action="store_const",
        const=True,
        default=None,
        help="stop gracefully when the parent process dies",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="log verbosity (default info)")
    return parser


def _configure_logging(config: WorkerConfig) -> None:
    prefix = config.worker_id.replace("%", "%%")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"[{prefix}] %(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.log_level.upper())


async def _watch_parent(server: WorkerServer, parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        await asyncio.sleep(_PARENT_POLL_S)
    _log.info("parent process %d is gone: stopping", parent_pid)
    server.stop()


def _on_signal(signum: int, server: WorkerServer) -> None:
    _log.info("received %s: stopping", signal.Signals(signum).name)
    server.stop()


async def _serve(config: WorkerConfig, parent_pid: int) -> None:
    server = WorkerServer(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, functools.partial(_on_signal, signum, server))
    watcher = (
        asyncio.create_task(_watch_parent(server, parent_pid)) if config.exit_with_parent else None
    )
    try:
        await server.run()
    finally:
        if watcher is not None:
            watcher.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run a worker until it is stopped; returns the process exit code."""
    parent_pid = os.getppid()
    args = _parser().parse_args(argv)
    flags = {
        "connect": args.connect,
        "worker_id": args.worker_id,
        "model_repository": args.model_repository,
        "threads": args.threads,
        "intra_op_threads": args.intra_op_threads,
        "exit_with_parent": args.exit_with_parent,
        "log_level": args.log_level,
    }
    try:
        config = load_config(
            flags, environ=os.environ if environ is None else environ, config_file=args.config
        )
    except ConfigError as exc:
        print(f"inferneo-worker: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    _configure_logging(config)
    if config.exit_with_parent and not set_parent_death_signal(signal.SIGTERM):
        _log.info("no parent-death signal on this platform: watching the parent pid instead")
    _log.info("starting (pid %d, protocol 1)", os.getpid())
    try:
        asyncio.run(_serve(config, parent_pid))
    except Exception:
        _log.exception("the worker failed")
        return EXIT_FAILED
    return EXIT_OK
