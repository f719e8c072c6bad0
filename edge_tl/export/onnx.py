"""fp32.onnx from the bundle's model.pt: torch.export-based exporter, one self-contained file,
dynamic batch, metadata inside the graph, then a parity and accuracy check on real images.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_tl import __version__
from edge_tl._deps import require
from edge_tl._malloc import tune_malloc
from edge_tl.bundle import ArtifactKind, Bundle, Precision, stage_bundle
from edge_tl.errors import ExportError
from edge_tl.evaluate import agreement, collect_logits, max_abs_diff, top1, validation_images
from edge_tl.runtime.backends.ort import OnnxRuntimeBackend
from edge_tl.runtime.backends.pytorch import TorchBackend

__all__ = ["ExportReport", "export_fp32", "FP32_FILE", "DEFAULT_OPSET"]

log = logging.getLogger(__name__)

FP32_FILE = "fp32.onnx"
DEFAULT_OPSET = 20
INPUT_NAME, OUTPUT_NAME = "input", "logits"
# ORT's CPU kernels and PyTorch's differ by rounding only; more than this is a broken export.
PARITY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ExportReport:
    precision: str
    file: str
    bytes: int
    seconds: float
    check_images: int
    check_inputs: str  # "validation split" or "random"
    max_abs_logit_diff: float
    top1_agreement: float
    top1: float | None

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def export_fp32(
    bundle_path: str | Path, opset: int = DEFAULT_OPSET, check_images: int = 512
) -> ExportReport:
    """Write fp32.onnx into the bundle (staged, then swapped in) and record the checks."""
    tune_malloc()
    if opset < 19:
        raise ExportError(
            f"opset {opset} is too old: TensorRT-ready Q/DQ and fp16 need opset >= 19"
        )
    bundle = Bundle.load(bundle_path)
    started = time.perf_counter()
    with stage_bundle(bundle.path, base=bundle) as stage:
        onnx_path = stage.new_file(FP32_FILE)
        _torch_to_onnx(bundle, onnx_path, opset)
        _embed_metadata(bundle, onnx_path)
        export_seconds = time.perf_counter() - started
        stage.add_artifact(FP32_FILE, ArtifactKind.ONNX, Precision.FP32)
        staged = Bundle(stage.dir, stage.manifest)  # the new graph, not yet in place
        report = _check(staged, export_seconds, check_images)
        stage.manifest.artifacts[FP32_FILE].details.update(
            {
                "opset": opset,
                "exporter": "torch.onnx.export(dynamo=True)",
                "export_seconds": round(export_seconds, 2),
                "parity_vs_torch": {
                    "images": report.check_images,
                    "inputs": report.check_inputs,
                    "max_abs_logit_diff": report.max_abs_logit_diff,
                    "top1_agreement": report.top1_agreement,
                },
            }
        )
        if report.top1 is not None:
            stage.manifest.metrics[Precision.FP32.value] = {
                "precision": Precision.FP32.value,
                "split": "val",
                "num_images": report.check_images,
                "top1": report.top1,
                "path": "onnxruntime CPUExecutionProvider",
            }
    log.info("wrote %s (%.1f MB)", bundle.path / FP32_FILE, report.bytes / 1e6)
    return report


def _torch_to_onnx(bundle: Bundle, onnx_path: Path, opset: int) -> None:
    torch = require("torch", "train")
    require("onnxscript", "train")  # the dynamo exporter needs it; fail early with the extra
    from edge_tl.models.checkpoint import load_model

    model = load_model(bundle.artifact_path(ArtifactKind.TORCH)).eval()
    spec = bundle.input_spec
    example = torch.zeros(2, 3, spec.height, spec.width)
    batch = torch.export.Dim("batch", min=1, max=4096)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(onnx_path),
                dynamo=True,
                external_data=False,  # one self-contained file (torch 2.14 defaults to external)
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                opset_version=opset,
            )
    except Exception as exc:
        log.debug("exporter output:\n%s", captured.getvalue())
        raise ExportError(
            f"{onnx_path.name}: torch.onnx.export failed: {str(exc).splitlines()[0]}"
        ) from exc
    log.debug("exporter output:\n%s", captured.getvalue())


def _embed_metadata(bundle: Bundle, onnx_path: Path) -> None:
    """Labels and preprocessing inside the graph too, so a lone .onnx file still says what it is."""
    onnx = require("onnx", "train")
    model = onnx.load(str(onnx_path))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{onnx_path.name}: onnx.checker rejects the graph: {exc}") from exc
    metadata = {
        "edge_tl.version": __version__,
        "edge_tl.labels": json.dumps(bundle.labels),
        "edge_tl.input": bundle.input_spec.model_dump_json(),
        "edge_tl.backbone": bundle.manifest.model.backbone,
    }
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "edge-tl"
    onnx.save(model, str(onnx_path))


def _check(staged: Bundle, export_seconds: float, check_images: int) -> ExportReport:
    """Parity of ORT vs PyTorch on real validation images (random inputs if the data is gone)."""
    onnx_file = staged.artifact_path(ArtifactKind.ONNX, Precision.FP32)
    images = validation_images(staged, limit=check_images)
    with (
        OnnxRuntimeBackend(staged) as ort_backend,
        TorchBackend(staged, device="cpu") as torch_backend,
    ):
        if images is not None:
            ort_logits, torch_logits = collect_logits(
                [ort_backend, torch_backend], images.paths, description="parity check"
            )
            inputs, accuracy = "validation split", top1(ort_logits, images.labels)
        else:
            log.warning("validation images not found; parity checked on random inputs only")
            spec = staged.input_spec
            x = np.random.default_rng(0).standard_normal(
                (8, 3, spec.height, spec.width), np.float32
            )
            ort_logits, torch_logits = ort_backend.infer(x), torch_backend.infer(x)
            inputs, accuracy = "random", None
    diff = max_abs_diff(ort_logits, torch_logits)
    agree = agreement(ort_logits, torch_logits)
    if diff > PARITY_TOLERANCE * max(1.0, float(np.abs(torch_logits).max())):
        raise ExportError(
            f"{onnx_file.name}: ONNX Runtime and PyTorch disagree (max |Δlogit| {diff:.3g}, "
            f"top-1 agreement {agree:.1%}); the export is wrong, nothing was written"
        )
    return ExportReport(
        precision=Precision.FP32.value,
        file=onnx_file.name,
        bytes=onnx_file.stat().st_size,
        seconds=export_seconds,
        check_images=len(ort_logits),
        check_inputs=inputs,
        max_abs_logit_diff=diff,
        top1_agreement=agree,
        top1=accuracy,
    )
