"""Runs Triton-Python-backend-style models (``<model>/<version>/model.py``) in the worker process.

The module is imported under a unique name, ``TritonPythonModel`` is instantiated once per instance
of the config's ``instance_group`` (one instance by default) and ``initialize(args)`` gets Triton's
keys. One ``infer`` call is one ``execute(requests)`` call on a free instance; an instance runs one
``execute`` at a time, as in Triton, so model code need not be thread-safe.

A whole-batch call (``infer_batch``) is split back into its requests by ``rows`` (views of the
batch's arrays, no copies) for that one ``execute``, and the responses' outputs are concatenated
back in order. The form has no per-request errors: a response that carries one fails the whole
call with the model's code and message (Triton's ``INVALID_ARG`` → ``INVALID_ARGUMENT`` and so
on; anything else ``INTERNAL``).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import sys
import threading
import time
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ..errors import (
    ErrorCode,
    InternalError,
    LoadFailedError,
    ModelNotReadyError,
    UnsupportedError,
    WorkerError,
)
from ..model_config import ModelConfig
from ..wire import datatype_of
from . import pb_utils
from ._validation import InputSpec, validate_batch, validate_request
from .runner import (
    BatchReport,
    BatchRequest,
    InferRequest,
    InferResponse,
    ModelMetadata,
    RunReport,
)

BACKEND: Final = "python"

# Models import the utilities under Triton's name; a real Triton module, if one is importable, is
# not used because it only works inside Triton's stub process.
sys.modules["triton_python_backend_utils"] = pb_utils

_module_counter = itertools.count()

_TRITON_CODE_TO_ERROR: Final = {
    pb_utils.TritonError.INVALID_ARG: ErrorCode.INVALID_ARGUMENT,
    pb_utils.TritonError.NOT_FOUND: ErrorCode.NOT_FOUND,
    pb_utils.TritonError.UNAVAILABLE: ErrorCode.UNAVAILABLE,
    pb_utils.TritonError.UNSUPPORTED: ErrorCode.UNSUPPORTED,
}


def _model_error(error: pb_utils.TritonError | None) -> WorkerError:
    message = error.message() if error is not None else "model returned an error"
    code = _TRITON_CODE_TO_ERROR.get(error.code() if error is not None else -1, ErrorCode.INTERNAL)
    return WorkerError(message, code=code)


class _Instance:
    __slots__ = ("model", "name")

    def __init__(self, name: str, model: Any) -> None:
        self.name = name
        self.model = model


class PythonRunner:
    """One Python-backend model version: its module and its initialised instances."""

    def __init__(
        self,
        config: ModelConfig,
        version: str,
        model_file: Path,
        *,
        model_dir: Path,
    ) -> None:
        self._config = config
        self._version = version
        self._inputs = {
            t.name: InputSpec(t.name, t.datatype, t.dims, t.optional) for t in config.input
        }
        self._outputs = tuple(t.name for t in config.output)
        self._metadata = ModelMetadata.from_config(config, BACKEND)
        self._module_name = self._unique_module_name()
        module = self._import(model_file)
        model_class = getattr(module, "TritonPythonModel", None)
        if not isinstance(model_class, type):
            sys.modules.pop(self._module_name, None)
            raise self._load_failed(f"{model_file} does not define class TritonPythonModel")

        # Guarded by _idle: instances not running execute, and whether close() has begun.
        self._idle = threading.Condition()
        self._free: list[_Instance] = []
        self._closed = False
        self._count = 0
        config_json = json.dumps(config.to_json())
        try:
            for name in self._instance_names():
                model = model_class()
                initialize = getattr(model, "initialize", None)
                if initialize is not None:
                    initialize(
                        {
                            "model_config": config_json,
                            "model_instance_kind": "CPU",
                            "model_instance_name": name,
                            "model_instance_device_id": "0",
                            "model_repository": str(model_dir),
                            "model_version": version,
                            "model_name": config.name,
                        }
                    )
                self._free.append(_Instance(name, model))
                self._count += 1
        except Exception as exc:
            self.close()
            raise self._load_failed(
                f"initialize() of model '{config.name}' raised {type(exc).__name__}: {exc}"
            ) from exc

    def _unique_module_name(self) -> str:
        safe = re.sub(r"\W", "_", f"{self._config.name}_{self._version}")
        return f"inferneo_model_{safe}_{next(_module_counter)}"

    def _import(self, model_file: Path) -> types.ModuleType:
        spec = importlib.util.spec_from_file_location(self._module_name, model_file)
        if spec is None or spec.loader is None:
            raise self._load_failed(f"cannot import {model_file}")
        module = importlib.util.module_from_spec(spec)
        # Registered before executing so that dataclasses, pickling and the like inside model.py
        # can find their own module.
        sys.modules[self._module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            sys.modules.pop(self._module_name, None)
            raise self._load_failed(
                f"importing {model_file} raised {type(exc).__name__}: {exc}"
            ) from exc
        return module

    def _instance_names(self) -> list[str]:
        groups = self._config.instance_group or ()
        if not groups:
            return [f"{self._config.name}_0_0"]
        names: list[str] = []
        for group_index, group in enumerate(groups):
            group_name = group.name or f"{self._config.name}_{group_index}"
            names.extend(f"{group_name}_{i}" for i in range(group.count))
        return names

    def _load_failed(self, message: str) -> LoadFailedError:
        return LoadFailedError(message, model=self._config.name, version=self._version)

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    def infer(self, requests: Sequence[InferRequest]) -> RunReport:
        responses: list[InferResponse | None] = [None] * len(requests)
        accepted: list[tuple[int, int]] = []
        pb_requests: list[pb_utils.InferenceRequest] = []
        for index, request in enumerate(requests):
            try:
                rows = validate_request(
                    request, self._inputs, self._outputs, self._config.max_batch_size
                )
            except WorkerError as exc:
                responses[index] = InferResponse.failed(exc)
                continue
            accepted.append((index, rows))
            pb_requests.append(self._pb_request(request.inputs.items(), request.outputs))
        if not pb_requests:
            return RunReport(_complete(responses), executions=0, compute_ns=0, rows=0)

        results, compute_ns = self._execute(pb_requests)
        rows_done = 0
        for (index, rows), result in zip(accepted, results, strict=True):
            response = self._response(requests[index], result)
            responses[index] = response
            if response.error is None:
                rows_done += rows
        return RunReport(_complete(responses), executions=1, compute_ns=compute_ns, rows=rows_done)

    def _execute(self, pb_requests: list[pb_utils.InferenceRequest]) -> tuple[list[Any], int]:
        """One ``execute`` on a free instance: its responses (one per request, checked) and the
        time it took. An exception in the model is ``InternalError``."""
        instance = self._acquire()
        try:
            started = time.perf_counter_ns()
            try:
                results = instance.model.execute(pb_requests)
            except Exception as exc:
                raise InternalError(
                    f"execute() of model '{self._config.name}' raised {type(exc).__name__}: {exc}"
                ) from exc
            compute_ns = time.perf_counter_ns() - started
        finally:
            self._release(instance)

        if not isinstance(results, list | tuple) or len(results) != len(pb_requests):
            got = f"{len(results)} items" if isinstance(results, list | tuple) else repr(results)
            raise InternalError(
                f"execute() of model '{self._config.name}' must return a list of "
                f"{len(pb_requests)} InferenceResponse, got {got}"
            )
        return list(results), compute_ns

    def _pb_request(
        self, inputs: Iterable[tuple[str, npt.NDArray[Any]]], outputs: tuple[str, ...]
    ) -> pb_utils.InferenceRequest:
        return pb_utils.InferenceRequest(
            inputs=[pb_utils.Tensor(name, array) for name, array in inputs],
            requested_output_names=list(outputs),
            model_name=self._config.name,
            model_version=int(self._version),
        )

    def infer_batch(self, batch: BatchRequest) -> BatchReport:
        """Split the batch by ``rows`` into requests (views), run one ``execute``, concatenate
        the responses' outputs; any response error fails the whole call."""
        total = validate_batch(batch, self._inputs, self._outputs, self._config.max_batch_size)
        outputs = tuple(dict.fromkeys(batch.outputs))
        items = list(batch.inputs.items())
        pb_requests: list[pb_utils.InferenceRequest] = []
        offset = 0
        for rows in batch.rows:
            end = offset + rows
            pb_requests.append(
                self._pb_request(((name, array[offset:end]) for name, array in items), outputs)
            )
            offset = end
        results, compute_ns = self._execute(pb_requests)

        request = InferRequest(inputs={}, outputs=outputs)
        pieces: list[Mapping[str, npt.NDArray[Any]]] = []
        for index, (rows, result) in enumerate(zip(batch.rows, results, strict=True)):
            response = self._response(request, result)
            if response.error is not None:
                return self._batch_failed(response.error, compute_ns)
            for name, array in response.outputs.items():
                if array.ndim == 0 or array.shape[0] != rows:
                    return self._batch_failed(
                        InternalError(
                            f"model '{self._config.name}' returned output '{name}' of shape "
                            f"{list(array.shape)} for request {index} of the batch, which has "
                            f"{rows} row(s)"
                        ),
                        compute_ns,
                    )
            pieces.append(response.outputs)

        names = outputs or tuple(pieces[0])
        merged: dict[str, npt.NDArray[Any]] = {}
        for name in names:
            arrays: list[npt.NDArray[Any]] = []
            for index, piece in enumerate(pieces):
                found = piece.get(name)
                if found is None or found.dtype != pieces[0][name].dtype:
                    what = "no" if found is None else f"a {found.dtype} array for"
                    return self._batch_failed(
                        InternalError(
                            f"model '{self._config.name}' returned {what} output '{name}' for "
                            f"request {index} of the batch, unlike request 0"
                        ),
                        compute_ns,
                    )
                arrays.append(found)
            try:
                merged[name] = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
            except ValueError as exc:
                return self._batch_failed(
                    InternalError(
                        f"model '{self._config.name}' returned outputs '{name}' that cannot be "
                        f"put back together: {exc}"
                    ),
                    compute_ns,
                )
        return BatchReport(merged, executions=1, compute_ns=compute_ns, rows=total)

    def _batch_failed(self, error: WorkerError, compute_ns: int) -> BatchReport:
        # execute() ran, so the call counts as an execution, but no row succeeded.
        return BatchReport({}, executions=1, compute_ns=compute_ns, rows=0, error=error)

    def _response(self, request: InferRequest, result: object) -> InferResponse:
        if not isinstance(result, pb_utils.InferenceResponse):
            return InferResponse.failed(
                InternalError(
                    f"execute() of model '{self._config.name}' returned {type(result).__name__} "
                    "where an InferenceResponse was expected"
                )
            )
        if result.has_error():
            return InferResponse.failed(_model_error(result.error()))
        produced: dict[str, npt.NDArray[Any]] = {}
        for tensor in result.output_tensors():
            array = tensor.as_numpy()
            try:
                datatype_of(array, tensor=tensor.name())
            except UnsupportedError as exc:
                return InferResponse.failed(InternalError(exc.message))
            produced[tensor.name()] = array
        if not request.outputs:
            return InferResponse(outputs=produced)
        missing = [name for name in request.outputs if name not in produced]
        if missing:
            return InferResponse.failed(
                InternalError(
                    f"model '{self._config.name}' did not return requested output(s) "
                    f"{', '.join(missing)}"
                )
            )
        return InferResponse(outputs={name: produced[name] for name in request.outputs})

    def _acquire(self) -> _Instance:
        with self._idle:
            while not self._free and not self._closed:
                self._idle.wait()
            if self._closed:
                raise ModelNotReadyError(
                    f"model '{self._config.name}' version {self._version} is unloading",
                    model=self._config.name,
                    version=self._version,
                )
            return self._free.pop()

    def _release(self, instance: _Instance) -> None:
        with self._idle:
            self._free.append(instance)
            self._idle.notify_all()

    def close(self) -> None:
        """Wait for every ``execute`` in progress, then ``finalize()`` each instance once."""
        with self._idle:
            if self._closed:
                return
            self._closed = True
            self._idle.notify_all()
            while len(self._free) < self._count:
                self._idle.wait()
            instances, self._free = self._free, []
        for instance in instances:
            finalize = getattr(instance.model, "finalize", None)
            if finalize is None:
                continue
            try:
                finalize()
            except Exception as exc:
                # Unloading goes on: the model is gone either way, and the host logs nothing
                # better than this.
                pb_utils.Logger.log_error(
                    f"finalize() of {instance.name} raised {type(exc).__name__}: {exc}"
                )
        sys.modules.pop(self._module_name, None)


def _complete(responses: list[InferResponse | None]) -> list[InferResponse]:
    return [
        r if r is not None else InferResponse.failed(InternalError("request was not answered"))
        for r in responses
    ]
