"""OpenVINO backend: the bundle's ONNX graphs (fp32, fp16, int8 Q/DQ) read directly by OpenVINO's
CPU plugin, no IR conversion step; compiled models cached per graph hash outside the bundle.

Why beside ONNX Runtime: ORT runs the TensorRT-format int8 graph on CPU through its reference
Q/DQ path (57 ms against 8 ms fp32 for the default Lite2 bundle on this repository's AVX-512/AMX
Xeon), while OpenVINO executes it as int8 (4.3 ms, the same top class). Inference precision is
pinned to f32: OpenVINO otherwise picks bf16 on CPUs that have it, and fp32 logits would then
differ from PyTorch's by up to ~0.1 (measured; faster, but not what fp32 promises).

Imports openvino only inside the backend (`pip install "edge-tl[openvino]"`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl._deps import require
from edge_tl.bundle import ArtifactKind, Bundle, Precision
from edge_tl.errors import BackendError
from edge_tl.runtime.backends.base import Backend

__all__ = ["OpenVINOBackend", "OpenVINOBf16Backend"]

log = logging.getLogger(__name__)


class OpenVINOBackend(Backend):
    name = "openvino"
    requires = ("openvino", "openvino")
    auto_rank = 15  # before ONNX Runtime on CPU boxes: int8 that pays (see the module docstring)
    inference_precision = "f32"
    # the CPU plugin's first inference at a new batch size costs 15-45 ms more than the next
    # (measured, Lite2 fp32 and int8): under load that lands on a camera's first vehicles
    prepares_per_shape = True

    @classmethod
    def cannot_serve(cls, bundle: Bundle, precision: Precision) -> str | None:
        if bundle.find(ArtifactKind.ONNX, precision) is None:
            return f"the bundle has no {precision.value} ONNX graph"
        return None

    def describe(self) -> str:
        device = self._device or "not opened"
        return f"{self.name} {device} {self.precision.value} (inference precision {self.inference_precision})"

    @property
    def runs_on_cpu(self) -> bool:
        return True

    def _open(self) -> None:
        ov = require("openvino", "openvino")
        artifact = self.bundle.find(ArtifactKind.ONNX, self.precision)
        path = self.bundle.artifact_path(ArtifactKind.ONNX, self.precision)
        core = ov.Core()
        cache = (
            Path.home()
            / ".cache"
            / "edge-tl"
            / "openvino"
            / (artifact.sha256[:16] if artifact else "x")
        )
        try:
            cache.mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(cache)})
        except OSError as exc:  # a read-only home: compile every time, still correct
            log.warning("openvino: no model cache (%s: %s)", cache, exc.strerror)
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": self.inference_precision,
            "PERFORMANCE_HINT": "LATENCY",
        }
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            model = core.read_model(str(path))
            compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError with multi-line text
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"{path}: OpenVINO cannot compile it: {first}") from exc
        if len(compiled.inputs) != 1:
            raise BackendError(f"{path}: expected one input, the graph has {len(compiled.inputs)}")
        self._device = "CPU"
        self._request = compiled.create_infer_request()
        # graphs exported with --fp16-io take half-precision input
        element = compiled.inputs[0].get_element_type()
        self._input_dtype = np.float16 if element == ov.Type.f16 else None

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        if self._input_dtype is not None and batch.dtype == np.float32:
            batch = batch.astype(self._input_dtype)
        out = self._request.infer({0: batch})[0]
        return np.array(out, dtype=np.float32)  # a copy: the request reuses its output buffer

    def _close(self) -> None:
        self._request = None

    _request: Any = None
    _device: str | None = None
    _input_dtype: Any = None


class OpenVINOBf16Backend(OpenVINOBackend):
    """bf16 arithmetic on CPUs with AMX or AVX512-BF16: only when asked (`--backend
    openvino-bf16`), never by `auto`, because fp32 logits move by up to ~0.13 (measure it with
    `edge-tl eval --backend openvino-bf16` like any precision)."""

    name = "openvino-bf16"
    auto_rank = 95  # after every backend that keeps fp32 arithmetic
    inference_precision = "bf16"
