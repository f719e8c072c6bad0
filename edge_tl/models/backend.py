"""PyTorch backend: the bundle's fine-tuned weights in eager mode, the reference baseline.

Lives on the torch side and reaches the runtime's registry through the `edge_tl.backends`
entry point (pyproject), so `edge_tl.runtime` never imports `edge_tl.models`. Needs the
[train] extra; torch is imported when the backend is opened, never at module import.
"""

from __future__ import annotations

import numpy as np

from edge_tl._deps import require
from edge_tl.bundle import ArtifactKind, Bundle, Precision
from edge_tl.errors import BackendError
from edge_tl.runtime.backends.base import Backend

__all__ = ["TorchBackend"]


class TorchBackend(Backend):
    name = "torch"
    requires = ("torch", "train")
    runs_exported_graphs = False
    auto_rank = 90  # the reference baseline: chosen by `auto` only when nothing faster can run

    def __init__(
        self,
        bundle: Bundle,
        precision: Precision = Precision.FP32,
        threads: int | None = None,
        shared_host: bool = False,
        device: str | None = None,
        channels_last: bool = True,
    ) -> None:
        super().__init__(bundle, precision, threads, shared_host)
        self.device = device
        self.channels_last = channels_last

    @classmethod
    def cannot_serve(cls, bundle: Bundle, precision: Precision) -> str | None:
        if bundle.find(ArtifactKind.TORCH) is None:
            return "the bundle has no model.pt weights"
        if precision == Precision.INT8:
            return "int8 runs from int8.onnx (onnxruntime or tensorrt), not from PyTorch"
        return None

    def describe(self) -> str:
        return f"torch eager {self.device or 'cpu'} {self.precision.value}"

    @property
    def runs_on_cpu(self) -> bool:
        return self.device in (None, "cpu")

    def _open(self) -> None:
        torch = require("torch", "train")
        from edge_tl.models.checkpoint import load_model

        if self.threads:
            torch.set_num_threads(self.threads)
        if self.device is None:
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.precision == Precision.FP16 and self.device == "cpu":
            raise BackendError("torch fp16 needs a CUDA device (autocast); none is available")
        self._torch = torch
        path = self.bundle.artifact_path(ArtifactKind.TORCH)
        model = load_model(path, with_prior=True).eval().to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self._model = model

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(
                device_type="cuda", dtype=torch.float16, enabled=self.precision == Precision.FP16
            ):
                logits = self._model(x)
            return logits.float().cpu().numpy()

    def _close(self) -> None:
        self._model = None
