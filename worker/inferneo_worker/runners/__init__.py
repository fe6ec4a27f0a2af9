"""Model runners: one per kind of model, behind the ``Runner`` protocol that ``ModelHost`` uses."""

from .runner import (
    BatchReport,
    BatchRequest,
    GenerationInfo,
    InferRequest,
    InferResponse,
    ModelMetadata,
    Runner,
    RunReport,
    TensorSpec,
)

__all__ = [
    "BatchReport",
    "BatchRequest",
    "GenerationInfo",
    "InferRequest",
    "InferResponse",
    "ModelMetadata",
    "RunReport",
    "Runner",
    "TensorSpec",
]
