"""Triton's module name for the Python-backend utilities, for tools that import models outside the
worker (type checkers, unit tests of a model.py). Inside the worker, ``python_runner`` registers
``inferneo_worker.runners.pb_utils`` under this name directly."""

from inferneo_worker.runners.pb_utils import *  # noqa: F403
from inferneo_worker.runners.pb_utils import __all__ as __all__
