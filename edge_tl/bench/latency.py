"""The timing loop: milliseconds per call, warm-up excluded. Two perf_counter_ns calls and an
append per iteration (`edge-tl bench` reports what that costs); no progress drawing inside."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["time_backend"]


def time_backend(
    infer: Callable[[Any], Any], batch: Any, warmup: int, iterations: int
) -> list[float]:
    """Milliseconds per call of `infer(batch)`."""
    for _ in range(warmup):
        infer(batch)
    samples = [0.0] * iterations
    for i in range(iterations):
        t0 = time.perf_counter_ns()
        infer(batch)
        samples[i] = (time.perf_counter_ns() - t0) / 1e6
    return samples
