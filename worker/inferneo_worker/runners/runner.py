"""The contract between ``ModelHost`` and a model runner, and the values that cross it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy.typing as npt

from ..errors import WorkerError
from ..model_config import ModelConfig, kserve_shape


@dataclass(frozen=True)
class TensorSpec:
    """An input or output as model metadata reports it: ``shape`` uses -1 for variable dimensions
    and includes the batch dimension (as -1) when ``max_batch_size > 0``."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class GenerationInfo:
    """What a decoupled text-generation model reports at load (docs/worker-protocol.md)."""

    context_length: int
    """Tokens of one sequence, prompt and output together."""
    max_sequences: int
    """Sequences the version runs at once on this worker (over all its instances)."""
    default_max_tokens: int
    chat_template: bool
    """Whether it accepts chat ``messages`` (it has a chat template)."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "context_length": self.context_length,
            "max_sequences": self.max_sequences,
            "default_max_tokens": self.default_max_tokens,
            "chat_template": self.chat_template,
        }


@dataclass(frozen=True)
class ModelMetadata:
    """What a ``load`` result reports about a loaded version."""

    platform: str
    backend: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    generation: GenerationInfo | None = None
    """Set for decoupled text-generation models, which answer ``generate``."""

    @classmethod
    def from_config(
        cls, config: ModelConfig, backend: str, generation: GenerationInfo | None = None
    ) -> ModelMetadata:
        """Metadata as the config declares it (``backend`` when the config names none)."""

        def specs(tensors: Sequence[Any]) -> tuple[TensorSpec, ...]:
            return tuple(
                TensorSpec(t.name, t.datatype, tuple(kserve_shape(t.dims, config.max_batch_size)))
                for t in tensors
            )

        return cls(
            platform=config.platform or backend,
            backend=config.backend or backend,
            max_batch_size=config.max_batch_size,
            inputs=specs(config.input),
            outputs=specs(config.output),
            generation=generation,
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "platform": self.platform,
            "backend": self.backend,
            "max_batch_size": self.max_batch_size,
            "inputs": [t.to_wire() for t in self.inputs],
            "outputs": [t.to_wire() for t in self.outputs],
        }
        if self.generation is not None:
            out["generation"] = self.generation.to_wire()
        return out


@dataclass(frozen=True)
class InferRequest:
    """One request of an ``infer`` call, decoded: input arrays by name, in the order received."""

    inputs: Mapping[str, npt.NDArray[Any]]
    outputs: tuple[str, ...] = ()
    """Requested output names; empty means every output."""


@dataclass(frozen=True)
class InferResponse:
    """The outcome of one request: its outputs, or the error that concerns it alone."""

    outputs: Mapping[str, npt.NDArray[Any]] = field(default_factory=dict)
    error: WorkerError | None = None

    @classmethod
    def failed(cls, error: WorkerError) -> InferResponse:
        return cls(error=error)


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """The whole-batch form of an ``infer`` call: one array per input holding the rows of every
    request of the batch, one request after the other along the first (batch) dimension.

    ``rows[i]`` is how many rows request ``i`` contributed, so every input's first dimension is
    ``sum(rows)``; the answer's outputs hold the rows in the same order."""

    inputs: Mapping[str, npt.NDArray[Any]]
    rows: tuple[int, ...]
    outputs: tuple[str, ...] = ()
    """Requested output names, for every request of the batch; empty means every output."""


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What a runner did for one whole-batch call: the batch's outputs (first dimension
    ``sum(rows)``), or the error that fails the whole batch, plus the ``stats`` counters (the
    call may have run the model before it failed)."""

    outputs: Mapping[str, npt.NDArray[Any]]
    executions: int
    compute_ns: int
    rows: int
    error: WorkerError | None = None


@dataclass(frozen=True)
class RunReport:
    """What a runner did for one ``infer`` call: responses in request order plus the counters that
    ``stats`` reports."""

    responses: Sequence[InferResponse]
    executions: int
    """Model calls made (ONNX Runtime ``run`` or Python ``execute``)."""
    compute_ns: int
    """Time spent inside those calls."""
    rows: int
    """Inference count: batch rows of the requests that succeeded (1 per request when the model
    does not batch)."""


class Runner(Protocol):
    """A loaded model version. ``infer`` and ``infer_batch`` may be called from several threads
    at once; the runner serialises whatever must not run concurrently. ``close`` is idempotent
    and waits for calls in progress; a call after ``close`` raises ``ModelNotReadyError``.

    ``infer_batch`` serves the whole-batch form: it validates the batch (``validate_batch``),
    raises for whole-call failures like ``infer`` does, and reports a failure of the model's own
    making after the model ran in ``BatchReport.error``, so that the call is still counted."""

    @property
    def metadata(self) -> ModelMetadata: ...

    def infer(self, requests: Sequence[InferRequest]) -> RunReport: ...

    def infer_batch(self, batch: BatchRequest) -> BatchReport: ...

    def close(self) -> None: ...
