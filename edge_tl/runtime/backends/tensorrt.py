"""Native TensorRT backend: a bundle's plan on the GPU through cuda-python, as NVIDIA's current
samples do it (tensor-name API, `execute_async_v3`, no pycuda, no binding indices).

Pinned host and device buffers are sized once from the profile's max batch; one non-default
stream; optional CUDA graph capture per batch size with fall-back to plain enqueue. A plan
built for another GPU or TensorRT version is refused with the command that rebuilds it.
Needs a GPU: written against the documented API, not run in CI (tests say so when they skip).
"""

from __future__ import annotations

import importlib.util
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl.bundle import Artifact, ArtifactKind, Bundle, Precision
from edge_tl.errors import BackendError
from edge_tl.records import EngineInfo
from edge_tl.runtime.backends.base import Backend
from edge_tl.runtime.trt_flavour import (
    FLAVOURS,
    EngineTarget,
    engine_mismatch,
    import_tensorrt,
    make_logger,
)

__all__ = ["TensorRTBackend", "LoadedEngine", "load_engine", "engine_target"]

log = logging.getLogger(__name__)


def engine_target(artifact: Artifact) -> EngineTarget:
    info = _engine_info(artifact)
    return EngineTarget(
        flavour=info.flavour,
        version=info.tensorrt_version,
        sm=info.target,
        gpu_name=info.gpu_name,
        hardware_compatible=info.hardware_compatible,
        version_compatible=info.version_compatible,
    )


def _engine_info(artifact: Artifact) -> EngineInfo:
    if artifact.engine is None:  # the manifest validator makes this unreachable for engines
        raise BackendError(f"{artifact.file}: no engine info in the manifest")
    return artifact.engine


@dataclass
class LoadedEngine:
    trt: Any  # the tensorrt or tensorrt_rtx module
    logger: Any
    runtime: Any
    engine: Any


def load_engine(plan_path: Path, artifact: Artifact) -> LoadedEngine:
    """The loader: a plan file deserialized into an engine, every TensorRT None checked on the
    spot with the logged reason. Holds no device memory of its own beyond the engine."""
    info = _engine_info(artifact)
    _, trt = import_tensorrt(info.flavour)
    logger = make_logger(trt)
    runtime = trt.Runtime(logger)
    if runtime is None:
        raise BackendError(f"{plan_path.name}: trt.Runtime failed: {_last_errors(logger)}")
    if info.version_compatible:
        runtime.engine_host_code_allowed = True
    engine = runtime.deserialize_cuda_engine(plan_path.read_bytes())
    if engine is None:
        raise BackendError(
            f"{plan_path.name}: deserialize_cuda_engine failed: {_last_errors(logger)}"
        )
    return LoadedEngine(trt, logger, runtime, engine)


def _builder_installed() -> bool:
    """Whether `edge-tl build` could run here (a hint to run it is noise otherwise)."""
    return any(importlib.util.find_spec(module) for module, _ in FLAVOURS.values())


def _last_errors(logger: Any) -> str:
    return "; ".join(logger.errors()[-2:]) or "no reason logged"


class TensorRTBackend(Backend):
    """The runner: an engine from `load_engine`, its execution context, pinned and device
    buffers, one stream and CUDA graphs per batch size."""

    name = "tensorrt"
    requires = ("cuda.bindings", "trt")
    auto_rank = 10  # fastest where it can run: a plan for this GPU and TensorRT

    def __init__(
        self,
        bundle: Bundle,
        precision: Precision = Precision.FP16,
        threads: int | None = None,
        shared_host: bool = False,
        cuda_graphs: bool = True,
    ) -> None:
        super().__init__(bundle, precision, threads, shared_host)
        self.cuda_graphs = cuda_graphs
        self._buffers: list[Any] = []
        self._graphs: dict[int, Any] = {}

    @classmethod
    def cannot_serve(cls, bundle: Bundle, precision: Precision) -> str | None:
        engines = [
            a
            for a in bundle.manifest.artifacts.values()
            if a.kind == ArtifactKind.ENGINE and a.precision == precision
        ]
        if not engines:
            build = ["edge-tl", "build", str(bundle.path), "--precision", precision.value]
            hint = f" (run: {shlex.join(build)})" if _builder_installed() else ""
            return f"the bundle has no {precision.value} TensorRT engine{hint}"
        try:
            here = _runtime_target(_engine_info(engines[0]).flavour)
        except Exception as exc:  # no GPU, no TensorRT: say so instead of failing later
            return str(exc)
        reasons = []
        for artifact in engines:
            problem = engine_mismatch(engine_target(artifact), here)
            if problem is None:
                return None
            reasons.append(f"{artifact.file}: {problem}")
        return (
            "; ".join(reasons)
            + f"; rebuild here with: edge-tl build {bundle.path} --precision {precision.value}"
        )

    def describe(self) -> str:
        return f"tensorrt {self._artifact.file if self._artifact else ''} {self.precision.value}".strip()

    _artifact: Artifact | None = None

    def _open(self) -> None:
        from edge_tl.runtime import cuda

        problem = self.cannot_serve(self.bundle, self.precision)
        if problem:
            raise BackendError(f"tensorrt: {problem}")
        self._artifact = next(
            a
            for a in self.bundle.manifest.artifacts.values()
            if a.kind == ArtifactKind.ENGINE
            and a.precision == self.precision
            and engine_mismatch(engine_target(a), _runtime_target(_engine_info(a).flavour)) is None
        )
        loaded = load_engine(self.bundle.path / self._artifact.file, self._artifact)
        trt, self._logger = loaded.trt, loaded.logger
        self._runtime, self._engine = loaded.runtime, loaded.engine
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise BackendError(
                f"{self._artifact.file}: create_execution_context failed: {self._errors()}"
            )
        self._stream = cuda.Stream()
        self._inputs, self._outputs = [], []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self._inputs if is_input else self._outputs).append(name)
        if len(self._inputs) != 1 or len(self._outputs) < 1:
            raise BackendError(f"{self._artifact.file}: expected 1 input and >= 1 output")
        input_name = self._inputs[0]
        _, _, max_shape = self._engine.get_tensor_profile_shape(input_name, 0)
        self._max_batch = int(max_shape[0])
        self._host: dict[str, Any] = {}
        self._device: dict[str, Any] = {}
        self._context.set_input_shape(input_name, tuple(max_shape))
        for name in [*self._inputs, *self._outputs]:
            shape = (
                tuple(self._context.get_tensor_shape(name))
                if name in self._outputs
                else tuple(max_shape)
            )
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            host = cuda.PinnedBuffer(shape, dtype)
            device = cuda.DeviceBuffer(host.nbytes)
            self._buffers += [host, device]
            self._host[name], self._device[name] = host, device
            if not self._context.set_tensor_address(name, device.ptr):
                raise BackendError(f"{self._artifact.file}: set_tensor_address({name}) failed")

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        from edge_tl.runtime import cuda

        n = batch.shape[0]
        if n > self._max_batch:
            raise BackendError(
                f"{self._artifact.file if self._artifact else 'engine'}: batch {n} exceeds the "
                f"profile's max {self._max_batch}; rebuild with a larger --batch"
            )
        input_name, output_name = self._inputs[0], self._outputs[0]
        host_in = self._host[input_name]
        if not self._context.set_input_shape(input_name, batch.shape):
            raise BackendError(
                f"set_input_shape({input_name}, {batch.shape}) failed: {self._errors()}"
            )
        staged = host_in.array.reshape(-1)[: batch.size].reshape(batch.shape)
        np.copyto(staged, batch, casting="same_kind" if host_in.dtype == batch.dtype else "unsafe")
        in_bytes = staged.nbytes
        cuda.copy_async(self._device[input_name].ptr, host_in.ptr, in_bytes, True, self._stream)
        self._enqueue(n)
        out_shape = tuple(self._context.get_tensor_shape(output_name))
        host_out = self._host[output_name]
        out_bytes = int(np.prod(out_shape)) * host_out.dtype.itemsize
        cuda.copy_async(host_out.ptr, self._device[output_name].ptr, out_bytes, False, self._stream)
        self._stream.synchronize()
        result = host_out.array.reshape(-1)[: int(np.prod(out_shape))].reshape(out_shape)
        return result.astype(np.float32, copy=True)

    def _enqueue(self, batch_size: int) -> None:
        """Replay a captured CUDA graph for this batch size, capturing it on first use."""
        from edge_tl.runtime import cuda

        rt = cuda.cudart()
        graph = self._graphs.get(batch_size)
        if graph is not None:
            cuda.check(rt.cudaGraphLaunch(graph, self._stream.handle), "cudaGraphLaunch")
            return
        if not self._context.execute_async_v3(self._stream.handle):
            raise BackendError(f"execute_async_v3 failed: {self._errors()}")
        if not self.cuda_graphs:
            return
        # first run done (not captured: it may allocate); now capture the same enqueue
        self._stream.synchronize()
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        cuda.check(rt.cudaStreamBeginCapture(self._stream.handle, mode), "cudaStreamBeginCapture")
        captured = self._context.execute_async_v3(self._stream.handle)
        err, cuda_graph = rt.cudaStreamEndCapture(self._stream.handle)
        if not captured or int(err) != 0:
            rt.cudaGetLastError()
            log.info("CUDA graph capture not possible for this engine; plain enqueue from now on")
            self.cuda_graphs = False
            return
        self._graphs[batch_size] = cuda.check(
            rt.cudaGraphInstantiate(cuda_graph, 0), "cudaGraphInstantiate"
        )

    def _errors(self) -> str:
        return _last_errors(self._logger)

    def _close(self) -> None:
        """Free what was made, also after an `_open` that failed half-way (the base class
        calls this then): graphs, buffers and the stream exist only if they were created."""
        if self._graphs:
            from edge_tl.runtime import cuda

            rt = cuda.cudart()
            for graph in self._graphs.values():
                rt.cudaGraphExecDestroy(graph)
            self._graphs.clear()
        for buffer in self._buffers:
            buffer.close()
        self._buffers.clear()
        if getattr(self, "_stream", None) is not None:
            self._stream.close()
            self._stream = None
        self._context = self._engine = self._runtime = None


def _runtime_target(flavour: str) -> EngineTarget:
    """This machine's TensorRT and GPU, to compare with what a plan was built for."""
    from edge_tl.runtime.cuda import gpu_info

    name, trt = import_tensorrt(flavour)
    gpu = gpu_info()
    return EngineTarget(flavour=name, version=trt.__version__, sm=gpu.sm, gpu_name=gpu.name)
