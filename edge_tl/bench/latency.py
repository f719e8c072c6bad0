"""Batch latency of backends through the one Backend interface, measured in one process run.

Warm-up iterations are excluded; each backend is timed on the same input; the harness itself
costs two perf_counter_ns calls and a list append per iteration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_tl._malloc import tune_malloc
from edge_tl.bench.stats import LatencyStats
from edge_tl.bundle import Bundle, Precision
from edge_tl.progress import track
from edge_tl.runtime.backends import create_backend

__all__ = ["BackendResult", "bench_backends", "time_backend"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendResult:
    backend: str
    description: str
    precision: str
    batch: int
    load_seconds: float
    latency: LatencyStats

    @property
    def throughput(self) -> float:
        """Images per second at the mean latency."""
        return self.batch * 1e3 / self.latency.mean_ms

    def as_dict(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "description": self.description,
            "precision": self.precision,
            "batch": self.batch,
            "load_seconds": round(self.load_seconds, 3),
            "throughput_ips": round(self.throughput, 2),
            "latency": self.latency.as_dict(),
        }


def time_backend(infer, batch: np.ndarray, warmup: int, iterations: int, label: str) -> list[float]:  # type: ignore[no-untyped-def]
    """Milliseconds per call of `infer(batch)`, warm-up calls excluded."""
    for _ in range(warmup):
        infer(batch)
    samples = []
    for _ in track(range(iterations), label, total=iterations):
        t0 = time.perf_counter_ns()
        infer(batch)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def bench_backends(
    bundle: Bundle,
    backends: Sequence[str],
    precision: Precision = Precision.FP32,
    batch_size: int = 1,
    warmup: int = 10,
    iterations: int = 100,
    threads: int | None = None,
) -> list[BackendResult]:
    tune_malloc()
    results = []
    for name in backends:
        t0 = time.perf_counter()
        with create_backend(bundle, name, precision, threads=threads) as backend:
            load_seconds = time.perf_counter() - t0
            batch = backend.example_batch(batch_size)
            samples = time_backend(backend.infer, batch, warmup, iterations, f"bench {name}")
            results.append(
                BackendResult(
                    backend=backend.name,
                    description=backend.describe(),
                    precision=precision.value,
                    batch=batch_size,
                    load_seconds=load_seconds,
                    latency=LatencyStats.from_samples(samples),
                )
            )
    return results
