"""`edge-tl bench`: the model-level benchmark matrix (backend × precision × batch) in one run,
with the naive PyTorch baseline from a fresh process, per-stage breakdown on real images,
load time, memory, harness overhead and the machine it ran on."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_tl._malloc import tune_malloc
from edge_tl.bench.floor import CpuFloor, cpu_floor
from edge_tl.bench.naive import run_naive_torch
from edge_tl.bench.system import current_rss_mb, peak_rss_mb, system_info
from edge_tl.bundle import ArtifactKind, Bundle, Precision
from edge_tl.data.folder import scan_image_folder
from edge_tl.data.sample import sample_holdout_dir
from edge_tl.errors import BackendError, EdgeTLError
from edge_tl.evaluate import validation_images
from edge_tl.progress import track
from edge_tl.runtime.backends import create_backend
from edge_tl.runtime.classify import Classifier
from edge_tl.timing import LatencyStats, time_calls

__all__ = ["BenchConfig", "run_benchmark"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    backends: tuple[str, ...] = ("onnxruntime", "torch")
    precisions: tuple[Precision, ...] = (Precision.FP32,)
    batches: tuple[int, ...] = (1,)
    warmup: int = 10
    iterations: int = 100
    duration_s: float | None = None  # run each configuration this long instead of `iterations`
    threads: int | None = None
    naive_baseline: bool = True
    stages: bool = True
    stage_images: int = 64
    extra: dict[str, Any] = field(default_factory=dict)


def run_benchmark(bundle: Bundle, config: BenchConfig) -> dict[str, Any]:
    tune_malloc()
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    encoded = _encoded_images(bundle, config.stage_images) if config.stages else []
    for backend_name in config.backends:
        for precision in config.precisions:
            rss_before = current_rss_mb()
            t0 = time.perf_counter()
            try:
                backend = create_backend(bundle, backend_name, precision, config.threads).open()
            except (BackendError, EdgeTLError) as exc:
                skipped.append(
                    {"backend": backend_name, "precision": precision.value, "reason": str(exc)}
                )
                log.warning("skipping %s %s: %s", backend_name, precision.value, exc)
                continue
            load_seconds = time.perf_counter() - t0
            try:
                for batch_size in config.batches:
                    batch = backend.example_batch(batch_size)
                    samples = _timed(backend.infer, batch, config)
                    stats = LatencyStats.from_samples(samples)
                    row = {
                        "backend": backend_name,
                        "description": backend.describe(),
                        "precision": precision.value,
                        "batch": batch_size,
                        "on_cpu": backend.runs_on_cpu,
                        "load_seconds": round(load_seconds, 3),
                        "rss_after_load_mb": round(current_rss_mb() - rss_before, 1),
                        "throughput_ips": round(batch_size * 1e3 / stats.mean_ms, 2),
                        "latency": stats.as_dict(),
                        "samples_ms": [round(s, 4) for s in samples],
                    }
                    if encoded:
                        row["stages_ms_p50"] = _stages(backend, bundle, encoded, batch_size)
                    results.append(row)
            finally:
                backend.close()
    baselines: dict[str, Any] = {}
    if config.naive_baseline:
        for batch_size in config.batches:
            try:
                naive = run_naive_torch(
                    bundle.path, batch_size, config.warmup, config.iterations, config.threads
                )
            except EdgeTLError as exc:
                skipped.append({"backend": "torch-naive", "precision": "fp32", "reason": str(exc)})
                continue
            stats = LatencyStats.from_samples(naive["samples_ms"])
            baselines[str(batch_size)] = {
                "description": "torch eager, fresh process, NCHW, no_grad, default malloc",
                "threads": naive["threads"],
                "load_seconds": round(naive["load_seconds"], 3),
                "throughput_ips": round(batch_size * 1e3 / stats.mean_ms, 2),
                "latency": stats.as_dict(),
            }
        for row in results:
            naive_row = baselines.get(str(row["batch"]))
            if naive_row:
                row["speedup_vs_naive_torch_p50"] = round(
                    naive_row["latency"]["p50_ms"] / row["latency"]["p50_ms"], 3
                )
    floor = _cpu_floor(bundle, results, skipped)
    noisy = [
        f"{r['backend']} {r['precision']} b{r['batch']}" for r in results if r["latency"]["noisy"]
    ]
    return {
        "bundle": str(bundle.path),
        "model": bundle.manifest.model.backbone,
        "input": f"{bundle.input_spec.height}x{bundle.input_spec.width}",
        "config": {
            "backends": list(config.backends),
            "precisions": [p.value for p in config.precisions],
            "batches": list(config.batches),
            "warmup": config.warmup,
            "iterations": config.iterations,
            "duration_s": config.duration_s,
            "threads": config.threads,
        },
        "system": system_info(config.threads),
        "results": results,
        "naive_torch": baselines,
        "cpu_floor": floor.as_dict() if floor else None,
        "skipped": skipped,
        "accuracy": {k: v.top1 for k, v in bundle.manifest.metrics.items()},
        "harness_overhead_us": round(_harness_overhead_us(), 3),
        "noisy": noisy,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _cpu_floor(
    bundle: Bundle, results: list[dict[str, Any]], skipped: list[dict[str, str]]
) -> CpuFloor | None:
    """Adds "x of floor" to every CPU row: its p50 over the fp32 floor of this CPU (bench.floor)."""
    cpu_rows = [r for r in results if r["on_cpu"]]
    graph = bundle.find(ArtifactKind.ONNX, Precision.FP32)
    if not cpu_rows or graph is None:
        return None
    try:
        floor = cpu_floor(bundle.path / graph.file)
    except EdgeTLError as exc:
        skipped.append({"backend": "cpu floor", "precision": "fp32", "reason": str(exc)})
        return None
    for row in cpu_rows:
        row["x_of_floor"] = round(row["latency"]["p50_ms"] / floor.floor_ms(row["batch"]), 3)
    return floor


def _timed(infer: Any, batch: np.ndarray, config: BenchConfig) -> list[float]:
    if config.duration_s is None:
        return time_calls(infer, batch, config.warmup, config.iterations)
    for _ in range(config.warmup):
        infer(batch)
    samples: list[float] = []
    deadline = time.perf_counter() + config.duration_s
    while time.perf_counter() < deadline or len(samples) < 10:
        t0 = time.perf_counter_ns()
        infer(batch)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def _harness_overhead_us(iterations: int = 20000) -> float:
    """What the timing loop itself costs per iteration (timer calls, append), in µs."""
    samples = time_calls(lambda batch: None, None, 0, iterations)
    return float(np.median(samples) * 1e3)


def _encoded_images(bundle: Bundle, count: int) -> list[bytes]:
    """JPEG/PNG bytes of real images (the bundle's validation split, else the shipped holdout)."""
    images = validation_images(bundle, limit=count)
    if images is not None:
        paths = images.paths
    else:
        folder = scan_image_folder(sample_holdout_dir())
        paths = [folder.path(s) for s in folder.samples][:count]
    return [Path(p).read_bytes() for p in paths]


def _stages(
    backend: Any, bundle: Bundle, encoded: list[bytes], batch_size: int
) -> dict[str, float]:
    """Median ms per batch of decode → prepare → infer → postprocess on real encoded images.
    Host/device copies happen inside `infer` for GPU backends and are not split out here."""
    classifier = Classifier(backend, bundle.labels)
    timings: dict[str, list[float]] = {
        "decode": [],
        "preprocess": [],
        "infer": [],
        "postprocess": [],
    }
    batches = [
        encoded[i : i + batch_size] for i in range(0, len(encoded) - batch_size + 1, batch_size)
    ]
    for chunk in track(batches[: max(1, 64 // batch_size)], "stages"):
        t0 = time.perf_counter()
        images = [cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) for data in chunk]
        timings["decode"].append((time.perf_counter() - t0) * 1e3)
        classifier.classify(images)  # records preprocess, infer and postprocess
        for key, value in classifier.last_timings_ms.items():
            timings[key].append(value)
    return {key: round(float(np.median(values)), 4) for key, values in timings.items() if values}
