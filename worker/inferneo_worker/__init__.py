"""Inferneo Python worker: serves models from a Triton-layout repository to the orchestrator over
ZeroMQ + MessagePack (protocol: docs/worker-protocol.md).

Entry point: ``python -m inferneo_worker --connect ENDPOINT``.
"""

from .config import WorkerConfig
from .errors import ErrorCode, WorkerError
from .model_host import ModelHost
from .server import WorkerServer

__version__ = "0.1.0"

__all__ = ["ErrorCode", "ModelHost", "WorkerConfig", "WorkerError", "WorkerServer", "__version__"]
