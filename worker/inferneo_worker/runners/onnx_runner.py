"""Runs ONNX models with ONNX Runtime on the CPU.

The requests of one ``infer`` call are run as few model calls as possible: for a batching model
(``max_batch_size > 0``) requests whose non-batch dimensions agree are concatenated along axis 0,
run once (in chunks of at most ``max_batch_size`` rows) and the outputs split back per request as
views. A whole-batch call (``infer_batch``) arrives already concatenated: its arrays go to
``InferenceSession.run`` as they are (views of the received bytes) and its outputs come back
whole. ``InferenceSession.run`` is thread-safe, so calls from several worker threads share one
session and run in parallel.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from ..errors import (
    InternalError,
    InvalidArgumentError,
    LoadFailedError,
    ModelNotReadyError,
    WorkerError,
)
from ..model_config import ModelConfig, kserve_shape
from ._validation import InputSpec, validate_batch, validate_request
from .runner import (
    BatchReport,
    BatchRequest,
    InferRequest,
    InferResponse,
    ModelMetadata,
    RunReport,
    TensorSpec,
)

PLATFORM: Final = "onnxruntime_onnx"
BACKEND: Final = "onnxruntime"

_ORT_TO_KSERVE: Final[Mapping[str, str]] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
    "tensor(bfloat16)": "BF16",
}


class _Port:
    """A model input or output as the worker sees it (config dims) and as ORT sees it (reshape)."""

    __slots__ = ("datatype", "dims", "model_dims", "name", "optional")

    def __init__(
        self,
        name: str,
        datatype: str,
        dims: tuple[int, ...],
        model_dims: tuple[int, ...] | None,
        optional: bool,
    ) -> None:
        self.name = name
        self.datatype = datatype
        self.dims = dims
        self.model_dims = model_dims
        self.optional = optional


def _ort_dims(shape: Sequence[object], batching: bool) -> tuple[int, ...]:
    dims = [d if isinstance(d, int) and d >= 0 else -1 for d in shape]
    return tuple(dims[1:] if batching else dims)


class OnnxRunner:
    """One ONNX model version loaded into one ``InferenceSession``."""

    def __init__(
        self, config: ModelConfig, version: str, model_file: Path, *, intra_op_threads: int
    ) -> None:
        self._config = config
        self._version = version
        self._max_batch_size = config.max_batch_size
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        # Parallelism across requests comes from the worker's threads; one graph runs sequentially.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise LoadFailedError(
                f"ONNX Runtime cannot load {model_file}: {exc}", model=config.name, version=version
            ) from exc
        self._inputs = self._resolve_ports(is_input=True)
        self._outputs = self._resolve_ports(is_input=False)
        self._output_names_all = list(self._outputs)
        self._input_specs = {
            p.name: InputSpec(p.name, p.datatype, p.dims, p.optional) for p in self._inputs.values()
        }
        self._string_inputs = frozenset(
            p.name for p in self._inputs.values() if p.datatype == "BYTES"
        )
        self._metadata = ModelMetadata(
            platform=config.platform or PLATFORM,
            backend=config.backend or BACKEND,
            max_batch_size=config.max_batch_size,
            inputs=tuple(
                TensorSpec(p.name, p.datatype, tuple(kserve_shape(p.dims, self._max_batch_size)))
                for p in self._inputs.values()
            ),
            outputs=tuple(
                TensorSpec(p.name, p.datatype, tuple(kserve_shape(p.dims, self._max_batch_size)))
                for p in self._outputs.values()
            ),
        )
        self._closed = False

    def _resolve_ports(self, *, is_input: bool) -> dict[str, _Port]:
        """Match the config's inputs/outputs to the graph's; a config without them takes the
        graph's (Triton's auto-complete does the same for ONNX)."""
        kind = "input" if is_input else "output"
        batching = self._max_batch_size > 0
        graph = {
            node.name: node
            for node in (self._session.get_inputs() if is_input else self._session.get_outputs())
        }
        declared = self._config.input if is_input else self._config.output
        model = self._config.name
        if not declared:
            ports: dict[str, _Port] = {}
            for node in graph.values():
                datatype = _ORT_TO_KSERVE.get(node.type)
                if datatype is None:
                    raise LoadFailedError(
                        f"{kind} '{node.name}' has ONNX type {node.type}, which the worker cannot "
                        "serve",
                        model=model,
                        version=self._version,
                    )
                ports[node.name] = _Port(
                    node.name, datatype, _ort_dims(node.shape, batching), None, False
                )
            return ports
        ports = {}
        for tensor in declared:
            node = graph.get(tensor.name)
            if node is None:
                raise LoadFailedError(
                    f"config {kind} '{tensor.name}' is not a {kind} of the ONNX graph (it has "
                    f"{', '.join(graph) or 'none'})",
                    model=model,
                    version=self._version,
                )
            graph_type = _ORT_TO_KSERVE.get(node.type)
            if graph_type != tensor.datatype:
                raise LoadFailedError(
                    f"config {kind} '{tensor.name}' is {tensor.data_type} but the ONNX graph has "
                    f"{node.type}",
                    model=model,
                    version=self._version,
                )
            model_dims = tensor.reshape if tensor.reshape is not None else tensor.dims
            graph_rank = len(node.shape) - (1 if batching else 0)
            if graph_rank != len(model_dims):
                raise LoadFailedError(
                    f"config {kind} '{tensor.name}' has {len(model_dims)} non-batch dimension(s) "
                    f"but the ONNX graph's shape is {list(node.shape)}"
                    + (" (max_batch_size > 0 adds the batch dimension)" if batching else ""),
                    model=model,
                    version=self._version,
                )
            ports[tensor.name] = _Port(
                tensor.name, tensor.datatype, tensor.dims, tensor.reshape, tensor.optional
            )
        if is_input:
            # get_inputs() leaves out graph inputs that have an initializer, so every name left
            # here is one ORT needs fed.
            undeclared = [name for name in graph if name not in ports]
            if undeclared:
                raise LoadFailedError(
                    f"the ONNX graph needs input(s) {', '.join(undeclared)} that config.pbtxt "
                    "does not declare",
                    model=model,
                    version=self._version,
                )
        return ports

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    def _check_open(self) -> None:
        if self._closed:
            raise ModelNotReadyError(
                f"model '{self._config.name}' version {self._version} is unloading",
                model=self._config.name,
                version=self._version,
            )

    def _run(
        self, wanted: list[str], feeds: dict[str, npt.NDArray[Any]]
    ) -> tuple[list[npt.NDArray[Any]], int]:
        """One ``InferenceSession.run``: the outputs in ``wanted`` order and the time it took."""
        started = time.perf_counter_ns()
        try:
            results = self._session.run(wanted, feeds)
        except Exception as exc:
            raise InternalError(
                f"ONNX Runtime failed running model '{self._config.name}': {exc}"
            ) from exc
        return results, time.perf_counter_ns() - started

    def infer(self, requests: Sequence[InferRequest]) -> RunReport:
        self._check_open()
        responses: list[InferResponse | None] = [None] * len(requests)
        pending: list[tuple[int, int, dict[str, npt.NDArray[Any]]]] = []
        for index, request in enumerate(requests):
            try:
                rows = validate_request(
                    request, self._input_specs, self._outputs, self._max_batch_size
                )
                pending.append((index, rows, self._feeds(request.inputs, rows)))
            except WorkerError as exc:
                responses[index] = InferResponse.failed(exc)

        executions = compute_ns = total_rows = 0
        for group in self._groups(pending):
            wanted = self._output_names(requests[index] for index, _, _ in group)
            feeds = (
                group[0][2]
                if len(group) == 1
                else {
                    name: np.concatenate([feeds[name] for _, _, feeds in group], axis=0)
                    for name in group[0][2]
                }
            )
            results, elapsed = self._run(wanted, feeds)
            compute_ns += elapsed
            executions += 1
            outputs = dict(zip(wanted, results, strict=True))
            offset = 0
            for index, rows, _ in group:
                requested = requests[index].outputs or self._output_names_all
                responses[index] = InferResponse(
                    outputs={
                        name: self._slice_output(name, outputs[name], offset, rows)
                        for name in requested
                    }
                )
                offset += rows
            total_rows += offset
        return RunReport(
            responses=[r if r is not None else _unanswered() for r in responses],
            executions=executions,
            compute_ns=compute_ns,
            rows=total_rows,
        )

    def infer_batch(self, batch: BatchRequest) -> BatchReport:
        """One ``InferenceSession.run`` over the batch as it came: no concatenation, no split."""
        self._check_open()
        total = validate_batch(batch, self._input_specs, self._outputs, self._max_batch_size)
        feeds = self._feeds(batch.inputs, total)
        wanted = list(dict.fromkeys(batch.outputs)) if batch.outputs else self._output_names_all
        results, compute_ns = self._run(wanted, feeds)
        outputs = {
            name: self._slice_output(name, array, 0, total)
            for name, array in zip(wanted, results, strict=True)
        }
        return BatchReport(outputs, executions=1, compute_ns=compute_ns, rows=total)

    def _feeds(
        self, inputs: Mapping[str, npt.NDArray[Any]], rows: int
    ) -> dict[str, npt.NDArray[Any]]:
        feeds: dict[str, npt.NDArray[Any]] = {}
        for name, array in inputs.items():
            port = self._inputs[name]
            if name in self._string_inputs:
                # ORT string tensors hold str; the wire carries bytes, which must then be UTF-8.
                try:
                    array = np.array(
                        [bytes(item).decode("utf-8") for item in array.reshape(-1)],
                        dtype=np.object_,
                    ).reshape(array.shape)
                except UnicodeDecodeError as exc:
                    raise InvalidArgumentError(
                        f"input '{name}' is BYTES but the ONNX model takes strings, which must be "
                        f"UTF-8: {exc}",
                        field=name,
                    ) from None
            if port.model_dims is not None:
                array = array.reshape(
                    ((rows,) if self._max_batch_size > 0 else ()) + port.model_dims
                )
            feeds[name] = array
        return feeds

    def _groups(
        self, pending: list[tuple[int, int, dict[str, npt.NDArray[Any]]]]
    ) -> list[list[tuple[int, int, dict[str, npt.NDArray[Any]]]]]:
        """Partition requests into model calls: same non-batch shapes, <= max_batch_size rows."""
        if self._max_batch_size == 0:
            return [[item] for item in pending]
        # Per signature: the chunks so far and the rows of the last one.
        by_signature: dict[object, tuple[list[list[tuple[int, int, dict[str, Any]]]], list[int]]]
        by_signature = {}
        for item in pending:
            _, rows, feeds = item
            if len(feeds) == 1:
                ((name, array),) = feeds.items()
                signature: object = (name, array.shape[1:])
            else:
                signature = frozenset((name, a.shape[1:]) for name, a in feeds.items())
            entry = by_signature.get(signature)
            if entry is None:
                by_signature[signature] = ([[item]], [rows])
                continue
            chunks, filled = entry
            if filled[0] + rows > self._max_batch_size:
                chunks.append([item])
                filled[0] = rows
            else:
                chunks[-1].append(item)
                filled[0] += rows
        return [chunk for chunks, _ in by_signature.values() for chunk in chunks]

    def _output_names(self, requests: Iterable[InferRequest]) -> list[str]:
        requested: set[str] = set()
        for request in requests:
            if not request.outputs:
                return self._output_names_all
            requested.update(request.outputs)
        return [name for name in self._outputs if name in requested]

    def _slice_output(
        self, name: str, array: npt.NDArray[Any], offset: int, rows: int
    ) -> npt.NDArray[Any]:
        port = self._outputs[name]
        if self._max_batch_size > 0:
            if array.ndim == 0 or array.shape[0] < offset + rows:
                raise InternalError(
                    f"output '{name}' of model '{self._config.name}' has shape "
                    f"{list(array.shape)}, which has no batch dimension of {offset + rows} rows"
                )
            array = array[offset : offset + rows]
            if port.model_dims is not None:
                array = array.reshape((rows, *port.dims))
        elif port.model_dims is not None:
            array = array.reshape(port.dims)
        return array

    def close(self) -> None:
        # Nothing to wait for: calls in progress hold their own reference to the session, which
        # ONNX Runtime frees when the last one ends and the host drops this runner.
        self._closed = True


def _unanswered() -> InferResponse:
    return InferResponse.failed(InternalError("request was neither run nor rejected"))
