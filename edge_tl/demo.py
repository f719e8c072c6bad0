"""`edge-tl demo`: the whole flow on the vehicle sample shipped in the package.

train → export (fp32 + parity) → evaluate → benchmark (ONNX Runtime vs PyTorch eager) →
compose a clip from held-out images → stream it → summary table + report folder.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_tl.bench.run import BenchConfig, run_benchmark
from edge_tl.bundle import Bundle
from edge_tl.data.folder import scan_image_folder
from edge_tl.data.sample import sample_dataset_dir, sample_holdout_dir
from edge_tl.errors import SourceError
from edge_tl.export.pipeline import ExportOptions, export_bundle
from edge_tl.images import load_image
from edge_tl.runtime.daemon import stream_source
from edge_tl.train.pipeline import TrainConfig, train_bundle

__all__ = ["DemoConfig", "run_demo", "compose_clip"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("edge-tl-demo")
    input_size: int = 224
    bench_iterations: int = 100
    frames_per_image: int = 6
    clip_size: int = 320
    fps: float = 12.0
    threads: int | None = None


def compose_clip(
    image_paths: list[Path], labels: list[str], out: Path, config: DemoConfig
) -> list[str]:
    """Write an mp4 that shows each image for `frames_per_image` frames; returns per-frame truth."""
    writer = cv2.VideoWriter(
        str(out), cv2.VideoWriter_fourcc(*"mp4v"), config.fps, (config.clip_size, config.clip_size)
    )
    if not writer.isOpened():
        raise SourceError(f"{out}: OpenCV cannot write an mp4v video here")
    truth = []
    try:
        for path, label in zip(image_paths, labels, strict=False):
            frame = cv2.resize(
                load_image(path),
                (config.clip_size, config.clip_size),
                interpolation=cv2.INTER_CUBIC,
            )
            for _ in range(config.frames_per_image):
                writer.write(frame)
                truth.append(label)
    finally:
        writer.release()
    return truth


def run_demo(config: DemoConfig) -> dict[str, Any]:
    started = time.perf_counter()
    out = config.out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    bundle_dir = out / "bundle"
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    bundle = train_bundle(
        TrainConfig(
            data_dir=sample_dataset_dir(),
            output=bundle_dir,
            input_size=config.input_size,
            threads=config.threads,
            overwrite=True,
        )
    )
    timings["train_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    precisions = export_bundle(bundle_dir, ExportOptions(calib_images=120, latency_iterations=20))
    timings["export_s"] = time.perf_counter() - t0
    bundle = Bundle.load(bundle_dir)

    t0 = time.perf_counter()
    bench = run_benchmark(
        bundle,
        BenchConfig(iterations=config.bench_iterations, threads=config.threads, stage_images=32),
    )
    timings["bench_s"] = time.perf_counter() - t0
    by_backend = {r["backend"]: r for r in bench["results"]}
    ratio = (
        by_backend["torch"]["latency"]["p50_ms"] / by_backend["onnxruntime"]["latency"]["p50_ms"]
    )

    holdout = scan_image_folder(sample_holdout_dir())
    paths = [holdout.path(s) for s in holdout.samples]
    truth_labels = [holdout.classes[s.label] for s in holdout.samples]
    clip = out / "clip.mp4"
    truth = compose_clip(paths, truth_labels, clip, config)
    t0 = time.perf_counter()
    events_path = out / "stream.jsonl"
    summary = stream_source(
        bundle_dir, str(clip), out=events_path, backend="onnxruntime", threads=config.threads
    )
    timings["stream_s"] = time.perf_counter() - t0
    all_events = [json.loads(line) for line in events_path.read_text().splitlines()]
    events = [e for e in all_events if e["kind"] == "class"]
    drift = [e for e in all_events if e["kind"] == "drift"]
    predicted = [e["class"] for e in events]
    frame_accuracy = (
        float(np.mean([p == t for p, t in zip(predicted, truth, strict=False)])) if events else 0.0
    )

    manifest = bundle.manifest
    result: dict[str, Any] = {
        "bundle": str(bundle_dir),
        "dataset": {
            "train_pool": str(sample_dataset_dir()),
            "images": manifest.provenance.dataset.num_images
            if manifest.provenance.dataset
            else None,
            "val_images": manifest.metrics["torch"].num_images,
            "classes": bundle.labels,
        },
        "val_top1_torch": manifest.metrics["torch"].top1,
        "val_top1_onnxruntime_fp32": fp32.top1 if (fp32 := manifest.metrics.get("fp32")) else None,
        "export": [p.as_dict() for p in precisions],
        "bench": bench,
        "speedup_onnxruntime_vs_torch_p50": ratio,
        "stream": {
            "clip": str(clip),
            "events": str(events_path),
            "holdout_images": len(paths),
            "frame_accuracy": frame_accuracy,
            "drift_events": len(drift),  # held-out images of the training camera: expect 0
            **summary,
        },
        "seconds": {k: round(v, 2) for k, v in timings.items()}
        | {"total_s": round(time.perf_counter() - started, 2)},
    }
    report_dir = out / "report"
    report_dir.mkdir(exist_ok=True)
    (report_dir / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    (report_dir / "summary.md").write_text(summary_markdown(result))
    return result


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, value) rows shared by the terminal table and the Markdown report."""
    bench = {b["backend"]: b for b in result["bench"]["results"]}
    ort, torch = bench["onnxruntime"]["latency"], bench["torch"]["latency"]
    naive = result["bench"]["naive_torch"].get("1", {}).get("latency")
    by_precision = {p["precision"]: p for p in result["export"]}
    parity = by_precision["fp32"]["details"]["parity_vs_torch"]
    stream = result["stream"]
    seconds = result["seconds"]
    return [
        (
            "dataset",
            f"{result['dataset']['images']} images, {len(result['dataset']['classes'])} classes "
            f"({result['dataset']['val_images']} for validation)",
        ),
        ("train (frozen Lite0 + head)", f"{seconds['train_s']:.1f} s"),
        ("val top-1, PyTorch", f"{result['val_top1_torch']:.1%}"),
        ("val top-1, ONNX Runtime fp32", f"{result['val_top1_onnxruntime_fp32']:.1%}"),
        (
            "fp32.onnx parity vs PyTorch",
            f"largest logit difference {parity['max_abs_logit_diff']:.2g}, "
            f"top-1 agreement {parity['top1_agreement']:.1%} on {parity['images']} images",
        ),
        *[
            (
                f"val top-1, {p['precision']}.onnx",
                f"{p['top1']:.1%} (agreement with fp32 {p['agreement_fp32']:.1%}, "
                f"{p['bytes'] / 1e6:.1f} MB; {p['measured_on']})"
                + _above_fp32_caveat(p, by_precision["fp32"]),
            )
            for p in result["export"]
            if p["precision"] != "fp32"
        ],
        ("batch-1 p50 / p99, ONNX Runtime", f"{ort['p50_ms']:.2f} / {ort['p99_ms']:.2f} ms"),
        (
            "batch-1 p50 / p99, PyTorch (tuned eager)",
            f"{torch['p50_ms']:.2f} / {torch['p99_ms']:.2f} ms",
        ),
        (
            "ONNX Runtime speed-up (p50)",
            f"{result['speedup_onnxruntime_vs_torch_p50']:.2f}x vs tuned eager PyTorch"
            + (
                f", {naive['p50_ms'] / ort['p50_ms']:.2f}x vs naive PyTorch ({naive['p50_ms']:.2f} ms)"
                if naive
                else ""
            ),
        ),
        (
            "stream (held-out clip)",
            f"{stream['frames']} frames at {stream['fps']:.1f} fps, "
            f"frame accuracy {stream['frame_accuracy']:.1%}, drift alarms {stream['drift_events']}",
        ),
        *(
            [
                (
                    "noisy timings",
                    ", ".join(noisy) + " (p99/p50 spread high: re-run on a quiet machine)",
                )
            ]
            if (noisy := result["bench"].get("noisy"))
            else []
        ),
        ("wall time", f"{seconds['total_s']:.1f} s"),
    ]


def _above_fp32_caveat(precision: dict[str, Any], fp32: dict[str, Any]) -> str:
    """A reduced precision scoring above fp32 on a small set is chance, not accuracy."""
    if precision["top1"] is None or fp32["top1"] is None or precision["top1"] <= fp32["top1"]:
        return ""
    return f"; above fp32 by chance on {precision['images']} images, not more accurate"


def summary_markdown(result: dict[str, Any]) -> str:
    lines = ["# edge-tl demo summary", "", "| what | result |", "|---|---|"]
    lines += [f"| {what} | {value} |" for what, value in summary_rows(result)]
    lines += [
        "",
        f"Bundle: `{result['bundle']}`; stream events: `{result['stream']['events']}`.",
        "",
    ]
    return "\n".join(lines)
