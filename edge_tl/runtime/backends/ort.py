"""ONNX Runtime backend: the bundle's precision-explicit ONNX graph on the best provider installed.

CPU wheel (`edge-tl[cpu]`) → CPUExecutionProvider; GPU wheel (`edge-tl[gpu]`) → CUDA first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl._deps import require
from edge_tl.bundle import GRAPH_INPUT, ArtifactKind, Bundle, Precision
from edge_tl.errors import BackendError
from edge_tl.runtime.backends.base import Backend

__all__ = ["OnnxRuntimeBackend", "ort_session"]

log = logging.getLogger(__name__)

_PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)


def ort_session(
    model: str | bytes,
    threads: int | None = None,
    providers: list[Any] | None = None,
    config: dict[str, str] | None = None,
    optimize: bool = True,
) -> Any:
    """An onnxruntime.InferenceSession (from a path or serialized bytes) with explicit threads
    and providers; a load failure becomes a one-line BackendError."""
    ort = require("onnxruntime", "cpu")
    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if optimize
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    installed = ort.get_available_providers()
    chosen = providers or [p for p in _PREFERRED_PROVIDERS if p in installed]
    try:
        return ort.InferenceSession(model, sess_options=options, providers=chosen)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = model if isinstance(model, str) else "in-memory graph"
        raise BackendError(f"{where}: ONNX Runtime cannot load it: {first_line}") from exc


def _provider_name(provider: Any) -> str:
    return provider[0] if isinstance(provider, tuple) else str(provider)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    requires = ("onnxruntime", "cpu")
    auto_rank = 20

    @classmethod
    def cannot_serve(cls, bundle: Bundle, precision: Precision) -> str | None:
        if bundle.find(ArtifactKind.ONNX, precision) is None:
            return (
                f"the bundle has no {precision.value} ONNX graph "
                f"(run: edge-tl export {bundle.path} --precision {precision.value})"
            )
        return None

    def describe(self) -> str:
        provider = self._session.get_providers()[0] if self._session else "not opened"
        reference = " reference Q/DQ (session.disable_quant_qdq=1)" if self._reference_qdq else ""
        return f"onnxruntime {provider} {self.precision.value}{reference}"

    @property
    def runs_on_cpu(self) -> bool:
        return (
            self._session is not None and self._session.get_providers()[0] == "CPUExecutionProvider"
        )

    def _open(self) -> None:
        path = self.bundle.artifact_path(ArtifactKind.ONNX, self.precision)
        ort = require("onnxruntime", "cpu")
        installed = ort.get_available_providers()
        on_cpu = not {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(installed)
        # Without VNNI, ORT's fused int8 CPU kernels saturate (top-1 36-45% on the vehicle
        # model, performance-notes.md); the reference Q/DQ path computes what TensorRT does.
        self._reference_qdq = self.precision == Precision.INT8 and on_cpu
        config = {"session.disable_quant_qdq": "1"} if self._reference_qdq else {}
        if self.shared_host:  # spinning threads steal the decoder's core (issue 17: 2x slower)
            config["session.intra_op.allow_spinning"] = "0"
        providers = [
            self._tensorrt_provider(path) if p == "TensorrtExecutionProvider" else p
            for p in _PREFERRED_PROVIDERS
            if p in installed
        ]
        self._session = ort_session(
            str(path), threads=self.threads, providers=providers, config=config
        )
        if providers and self._session.get_providers()[0] != _provider_name(providers[0]):
            log.warning(
                "onnxruntime fell back from %s to %s",
                _provider_name(providers[0]),
                self._session.get_providers()[0],
            )
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1:
            raise BackendError(f"{path}: expected one input, the graph has {len(inputs)}")
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name
        # graphs exported with --fp16-io take half-precision input
        self._input_dtype = np.float16 if inputs[0].type == "tensor(float16)" else None

    def _tensorrt_provider(self, path: Path) -> tuple[str, dict[str, Any]]:
        """ORT's TensorRT EP: weakly typed (TensorRT 10), so the precision flags must match the
        graph; engines and timing caches are cached per graph hash, outside the bundle."""
        artifact = self.bundle.find(ArtifactKind.ONNX, self.precision)
        cache = (
            Path.home()
            / ".cache"
            / "edge-tl"
            / "ort-tensorrt"
            / (artifact.sha256[:16] if artifact else "x")
        )
        cache.mkdir(parents=True, exist_ok=True)
        spec = self.input_spec
        dims = (
            f"{spec.height}x{spec.width}x3" if self.raw_input else f"3x{spec.height}x{spec.width}"
        )
        shape = f"{GRAPH_INPUT}:{{}}x{dims}"
        return (
            "TensorrtExecutionProvider",
            {
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(cache),
                "trt_fp16_enable": self.precision != Precision.FP32,
                "trt_int8_enable": self.precision
                == Precision.INT8,  # Q/DQ graph: no calibration table
                "trt_profile_min_shapes": shape.format(1),
                "trt_profile_opt_shapes": shape.format(8),
                "trt_profile_max_shapes": shape.format(32),
            },
        )

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        if self._input_dtype is not None and batch.dtype == np.float32:
            batch = batch.astype(self._input_dtype)
        out = self._session.run([self._output_name], {self._input_name: batch})[0]
        return out.astype(np.float32, copy=False)

    def _close(self) -> None:
        self._session = None

    _session: Any = None
    _reference_qdq = False
    _input_dtype: Any = None
