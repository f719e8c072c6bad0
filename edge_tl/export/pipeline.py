"""`edge-tl export`: fp32.onnx (+ fp16.onnx, int8.onnx) into the bundle, every graph checked
for TensorRT compatibility, and accuracy of every precision measured on the validation split
on the path that computes what the target hardware computes. All staged: an interrupted or
failed export leaves the previous bundle as it was.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl._malloc import tune_malloc
from edge_tl.bundle import (
    ArtifactKind,
    Bundle,
    BundleStage,
    ColorOrder,
    Manifest,
    Precision,
    RawInput,
    stage_bundle,
)
from edge_tl.errors import ExportError
from edge_tl.evaluate import collect_logits, dataset_root, logits_on_images, validation_images
from edge_tl.export.calibration import calibration_feeds, training_images
from edge_tl.export.onnx import DEFAULT_OPSET, INPUT_NAME, embed_metadata, torch_to_onnx
from edge_tl.export.precision import (
    CalibrationMethod,
    check_fp16_ranges,
    convert_fp16,
    quantize_int8,
)
from edge_tl.export.trt_compat import require_tensorrt_compat
from edge_tl.metrics import agreement, max_abs_diff, top1
from edge_tl.models.backend import TorchBackend
from edge_tl.records import PrecisionMetrics
from edge_tl.runtime.backends.base import Backend
from edge_tl.runtime.backends.ort import OnnxRuntimeBackend
from edge_tl.timing import p50_ms

__all__ = [
    "ExportOptions",
    "PrecisionReport",
    "export_bundle",
    "record_precision_scores",
    "ONNX_FILES",
    "AUTO",
]

log = logging.getLogger(__name__)

ONNX_FILES = {p: f"{p.value}.onnx" for p in Precision}
AUTO = "auto"
# ORT's CPU kernels and PyTorch's differ by rounding only; more than this is a broken export.
PARITY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ExportOptions:
    precisions: tuple[Precision, ...] = (Precision.FP32, Precision.FP16, Precision.INT8)
    opset: int = DEFAULT_OPSET
    check_images: int = 1024  # validation images scored per precision
    calib_images: int = 256  # training images for INT8 ranges and the fp16 range check
    calib_method: CalibrationMethod = CalibrationMethod.PERCENTILE
    calib_percentile: float = 99.999  # 99.999 lost 0.28 pt on vehicles val, 99.99 0.69 pt
    # node names kept out of INT8; AUTO: the first Conv and the classifier Gemm
    int8_exclude: tuple[str, ...] | str = AUTO
    int8_rest_fp16: bool = True  # non-quantized layers in fp16, as TensorRT strong typing needs
    fp16_io: bool = False  # fp16 graph inputs/outputs instead of fp32
    data_dir: Path | None = None  # the training dataset, when it moved since training
    # graphs take uint8 NHWC camera pixels and normalize themselves; None keeps the bundle's choice
    fuse_preprocess: bool | None = None
    raw_color_order: ColorOrder = ColorOrder.BGR
    latency_iterations: int = 30
    seed: int = 0


@dataclass
class PrecisionReport:
    precision: str
    file: str
    bytes: int
    top1: float | None
    agreement_fp32: float | None
    max_abs_logit_diff_fp32: float | None
    cpu_latency_ms_p50: float
    measured_on: str
    images: int
    details: dict[str, Any] = field(default_factory=dict)
    # batch-1 p50 on every CPU backend installed here (onnxruntime, openvino)
    cpu_latency_ms_p50_by_backend: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def export_bundle(
    bundle_path: str | Path, options: ExportOptions = ExportOptions()
) -> list[PrecisionReport]:
    tune_malloc()
    if options.opset < 19:
        raise ExportError(
            f"--opset {options.opset}: TensorRT-ready Q/DQ and fp16 graphs need opset >= 19"
        )
    if not options.precisions:
        raise ExportError("--precision: name at least one of fp32, fp16, int8")
    bundle = Bundle.load(bundle_path)
    raw_input = bundle.manifest.raw_input
    if options.fuse_preprocess is not None:
        raw_input = (
            RawInput(color_order=options.raw_color_order) if options.fuse_preprocess else None
        )
    fusion_changed = raw_input != bundle.manifest.raw_input
    export_fp32 = (
        Precision.FP32 in options.precisions
        or fusion_changed
        or bundle.find(ArtifactKind.ONNX, Precision.FP32) is None
    )
    with stage_bundle(bundle.path, base=bundle) as stage:
        if fusion_changed:
            _drop_graph_artifacts(stage)  # they take the other input format
            stage.manifest.raw_input = raw_input
            bundle = Bundle(stage.dir, stage.manifest)
        fp32_path = stage.dir / ONNX_FILES[Precision.FP32]
        if export_fp32:
            t0 = time.perf_counter()
            torch_to_onnx(bundle, stage.new_file(fp32_path.name), options.opset, raw_input)
            embed_metadata(bundle, fp32_path, raw_input)
            _add_onnx(
                stage,
                Precision.FP32,
                {
                    "opset": options.opset,
                    "exporter": "torch.onnx.export(dynamo=True)",
                    "export_seconds": round(time.perf_counter() - t0, 2),
                },
            )
        derived = [p for p in options.precisions if p != Precision.FP32]
        feeds, calibrated = _calibration(bundle, derived, options)
        if Precision.FP16 in derived:
            ranges = check_fp16_ranges(fp32_path, feeds) if feeds else None
            convert_fp16(
                fp32_path,
                stage.new_file(ONNX_FILES[Precision.FP16]),
                keep_io_types=not options.fp16_io,
                blocked_nodes=ranges.blocked_nodes if ranges else [],
            )
            _add_onnx(
                stage,
                Precision.FP16,
                {
                    "io_dtype": "float16" if options.fp16_io else "float32",
                    "range_check": ranges.as_dict() | {"images": calibrated}
                    if ranges
                    else "skipped: no training images (export --data DIR checks them)",
                    "converter": "onnxruntime.transformers.float16",
                },
            )
        if Precision.INT8 in derived:
            exclude = _int8_exclusions(fp32_path, options.int8_exclude)
            quantize_int8(
                fp32_path,
                stage.new_file(ONNX_FILES[Precision.INT8]),
                feeds,
                options.calib_method,
                options.calib_percentile,
                exclude,
                options.int8_rest_fp16,
            )
            _add_onnx(
                stage,
                Precision.INT8,
                {
                    "format": "Q/DQ, int8 symmetric activations, per-channel symmetric weights, zero points 0, bias float",
                    "calibration": {
                        "images": calibrated,
                        "split": "train",
                        "method": options.calib_method.value,
                        "percentile": options.calib_percentile
                        if options.calib_method == CalibrationMethod.PERCENTILE
                        else None,
                    },
                    "excluded_nodes": exclude,
                    "other_layers": "fp16" if options.int8_rest_fp16 else "fp32",
                },
            )
        staged = Bundle(stage.dir, stage.manifest)  # the new graphs, not yet in place
        written = [
            p for p in Precision if p in options.precisions or (p == Precision.FP32 and export_fp32)
        ]
        reports = _measure(staged, written, compare_torch=export_fp32, options=options)
        _cpu_backends(staged, reports, options)
        for report in reports:
            stage.manifest.artifacts[report.file].details.update(report.details)
            if report.top1 is not None:
                record_precision_scores(stage.manifest, report)
    return reports


def record_precision_scores(manifest: Manifest, report: PrecisionReport) -> None:
    """A new graph's validation scores; replaces the entry of the graph it replaced, test-set
    scores included (they were measured on the old graph)."""
    manifest.metrics[report.precision] = PrecisionMetrics(
        precision=report.precision,  # type: ignore[arg-type]
        split="val",
        num_images=report.images,
        top1=report.top1,
        agreement_fp32=report.agreement_fp32,
        max_abs_logit_diff_fp32=report.max_abs_logit_diff_fp32,
        cpu_latency_ms_p50_batch1=report.cpu_latency_ms_p50,
        measured_on=report.measured_on,
    )


def _calibration(
    bundle: Bundle, derived: list[Precision], options: ExportOptions
) -> tuple[list[dict[str, object]], int]:
    """Training images for INT8 ranges and the fp16 range check. INT8 cannot do without them;
    fp16 converts without (its range check is then skipped, with a warning)."""
    if not derived:
        return [], 0
    root = dataset_root(bundle, options.data_dir)
    if root is None:
        dataset = bundle.manifest.provenance.dataset
        where = f"is not at {dataset.root}" if dataset else "was not recorded"
        if Precision.INT8 in derived:
            raise ExportError(
                f"{bundle.path}: int8 needs training images to calibrate, and the dataset the "
                f"bundle was trained on {where}; pass --data DIR (that dataset, wherever it is "
                "now) or export --precision fp32,fp16"
            )
        log.warning(
            "fp16: the dataset %s, so activation ranges are not checked (--data DIR checks them)",
            where,
        )
        return [], 0
    paths = training_images(bundle, root, options.calib_images, options.seed)
    feeds = calibration_feeds(bundle, paths, INPUT_NAME)
    return feeds, sum(len(f[INPUT_NAME]) for f in feeds)


def _cpu_backends(staged: Bundle, reports: list[PrecisionReport], options: ExportOptions) -> None:
    """Batch-1 latency of every precision on every CPU backend installed, and a warning where a
    precision is slower than fp32 on the backend `auto` would serve it with here."""
    from edge_tl._deps import is_available
    from edge_tl.runtime.backends import backend_classes

    cpu = [n for n in ("openvino", "onnxruntime") if is_available(backend_classes()[n].requires[0])]
    fp32 = Precision.FP32 if staged.find(ArtifactKind.ONNX, Precision.FP32) else None
    wanted = {Precision(r.precision) for r in reports} | ({fp32} if fp32 else set())
    # _measure timed every reported precision on ONNX Runtime already
    latency = {("onnxruntime", Precision(r.precision)): r.cpu_latency_ms_p50 for r in reports}
    for name in cpu:
        for precision in wanted - {p for n, p in latency if n == name}:
            with backend_classes()[name](staged, precision) as backend:
                latency[name, precision] = p50_ms(
                    backend.infer, backend.example_batch(1), iterations=options.latency_iterations
                )
    for report in reports:
        precision = Precision(report.precision)
        report.cpu_latency_ms_p50_by_backend = {n: round(latency[n, precision], 3) for n in cpu}
    serving = min(cpu, key=lambda n: backend_classes()[n].auto_rank, default=None)
    for report in reports:
        precision = Precision(report.precision)
        if serving is None or fp32 is None or precision == fp32:
            continue
        warning = slower_than_fp32_warning(
            report.file, serving, precision, latency[serving, precision], latency[serving, fp32]
        )
        if warning:
            log.warning("%s", warning)


def slower_than_fp32_warning(
    file: str, serving: str, precision: Precision, latency_ms: float, fp32_ms: float
) -> str | None:
    """The export warning for a derived precision that does not pay on the backend `auto` picks;
    None where it is at least as fast as fp32."""
    if latency_ms <= fp32_ms:
        return None
    hint = (
        "; ONNX Runtime runs int8 on CPU through its reference Q/DQ path: install "
        "edge-tl[openvino] for int8 that runs as int8"
        if serving == "onnxruntime" and precision == Precision.INT8
        else ""
    )
    return (
        f"{file} is slower than fp32 on {serving}, the CPU backend `auto` picks here: "
        f"{latency_ms:.1f} vs {fp32_ms:.1f} ms at batch 1{hint}"
    )


def _drop_graph_artifacts(stage: BundleStage) -> None:
    for name, artifact in list(stage.manifest.artifacts.items()):
        if artifact.kind in (ArtifactKind.ONNX, ArtifactKind.ENGINE):
            del stage.manifest.artifacts[name]
            stage.new_file(name)  # unlinks it
            stage.manifest.metrics.pop(artifact.precision.value if artifact.precision else "", None)


def _add_onnx(stage: BundleStage, precision: Precision, details: dict[str, Any]) -> None:
    file = ONNX_FILES[precision]
    require_tensorrt_compat(stage.dir / file)
    details["tensorrt_static_check"] = "passed"
    stage.add_artifact(file, ArtifactKind.ONNX, precision, details)


def _int8_exclusions(fp32_path: Path, requested: tuple[str, ...] | str) -> list[str]:
    """AUTO keeps the first Conv (it sees raw normalized pixels) and the classifier in fp16:
    on the vehicle model that halved the INT8 accuracy drop (performance-notes.md)."""
    from edge_tl._deps import require

    graph = require("onnx", "train").load(str(fp32_path), load_external_data=False).graph
    names = {n.name for n in graph.node}
    if requested != AUTO:
        unknown = [n for n in requested if n not in names]
        if unknown:
            raise ExportError(
                f"--int8-exclude: no node named {', '.join(unknown)} in {fp32_path.name}"
            )
        return list(requested)
    inputs = {i.name for i in graph.input}
    first = next(
        (n.name for n in graph.node if n.op_type == "Conv" and inputs & set(n.input)), None
    )
    last = next((n.name for n in reversed(graph.node) if n.op_type in ("Gemm", "MatMul")), None)
    return [n for n in (first, last) if n]


def _measure(
    staged: Bundle, precisions: list[Precision], compare_torch: bool, options: ExportOptions
) -> list[PrecisionReport]:
    """Score every precision on the same validation images; fp32 also against PyTorch."""
    images = validation_images(staged, limit=options.check_images, data_dir=options.data_dir)
    backends: list[Backend] = [OnnxRuntimeBackend(staged, p) for p in precisions]
    extra: list[Backend] = []
    if compare_torch:
        extra.append(TorchBackend(staged, device="cpu"))
    if Precision.FP32 not in precisions:  # agreement is always measured against fp32.onnx
        extra.append(OnnxRuntimeBackend(staged, Precision.FP32))
    everyone = [*backends, *extra]
    reports = []
    try:
        for backend in everyone:
            backend.open()
        if images is None:
            log.warning(
                "validation images not found; graphs checked on random images, accuracy not measured"
            )
            spec, rng = staged.input_spec, np.random.default_rng(0)
            synthetic = [
                rng.integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8) for _ in range(8)
            ]
            outputs, labels = logits_on_images(everyone, synthetic), None
        else:
            outputs = collect_logits(everyone, images.paths, description="accuracy per precision")
            labels = images.labels
        logits = outputs[: len(backends)]
        torch_logits = outputs[len(backends)] if compare_torch else None
        reference = (
            outputs[-1]
            if Precision.FP32 not in precisions
            else logits[precisions.index(Precision.FP32)]
        )
        for precision, backend, out in zip(precisions, backends, logits, strict=True):
            artifact = staged.find(ArtifactKind.ONNX, precision)
            latency = p50_ms(
                backend.infer, backend.example_batch(1), iterations=options.latency_iterations
            )
            details: dict[str, Any] = {}
            if precision == Precision.FP32 and torch_logits is not None:
                details["parity_vs_torch"] = _parity(
                    artifact.file, out, torch_logits, labels is not None
                )
            reports.append(
                PrecisionReport(
                    precision=precision.value,
                    file=artifact.file,
                    bytes=artifact.bytes,
                    top1=top1(out, labels) if labels is not None else None,
                    agreement_fp32=agreement(out, reference),
                    max_abs_logit_diff_fp32=max_abs_diff(out, reference),
                    cpu_latency_ms_p50=latency,
                    measured_on=backend.describe(),
                    images=len(out),
                    details=details,
                )
            )
    finally:
        for backend in everyone:
            backend.close()
    return reports


def _parity(
    file: str, ort_logits: np.ndarray, torch_logits: np.ndarray, real_images: bool
) -> dict[str, Any]:
    diff = max_abs_diff(ort_logits, torch_logits)
    agree = agreement(ort_logits, torch_logits)
    if diff > PARITY_TOLERANCE * max(1.0, float(np.abs(torch_logits).max())):
        raise ExportError(
            f"{file}: ONNX Runtime and PyTorch disagree (max |Δlogit| {diff:.3g}, top-1 agreement "
            f"{agree:.1%}); the export is wrong, nothing was written"
        )
    return {
        "images": len(ort_logits),
        "inputs": "validation split" if real_images else "random",
        "max_abs_logit_diff": diff,
        "top1_agreement": agree,
    }
