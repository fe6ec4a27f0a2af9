"""Model runners: one per kind of model, behind the ``Runner`` protocol that ``ModelHost`` uses."""

from .runner import InferRequest, InferResponse, ModelMetadata, Runner, RunReport, TensorSpec

__all__ = ["InferRequest", "InferResponse", "ModelMetadata", "RunReport", "Runner", "TensorSpec"]
