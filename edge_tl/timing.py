"""Timing: the loop that times a call, and latency statistics from its samples (percentiles,
spread, a noise verdict). Part of the torch-free foundation: bench, export and eval all time
with this one loop and summarize with this one statistic.

The loop costs two perf_counter_ns calls and an append per iteration (`edge-tl bench` reports
what that costs); no progress drawing inside.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["LatencyStats", "time_calls", "p50_ms"]

# A ratio between two backends is not trustworthy when either's IQR exceeds this share of p50.
NOISY_IQR_FRACTION = 0.25


@dataclass(frozen=True)
class LatencyStats:
    count: int
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    std_ms: float
    iqr_ms: float

    @classmethod
    def from_samples(cls, samples_ms: list[float] | np.ndarray) -> LatencyStats:
        values = np.asarray(samples_ms, dtype=np.float64)
        if values.size == 0:
            raise ValueError("no latency samples")
        p25, p50, p75, p90, p99 = np.percentile(values, [25, 50, 75, 90, 99])
        return cls(
            count=int(values.size),
            min_ms=float(values.min()),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            max_ms=float(values.max()),
            mean_ms=float(values.mean()),
            std_ms=float(values.std()),
            iqr_ms=float(p75 - p25),
        )

    @property
    def noisy(self) -> bool:
        return self.iqr_ms > NOISY_IQR_FRACTION * self.p50_ms

    def as_dict(self) -> dict[str, float | int | bool]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()} | {
            "noisy": self.noisy
        }


def time_calls(
    call: Callable[[Any], Any], argument: Any, warmup: int, iterations: int
) -> list[float]:
    """Milliseconds per call of `call(argument)`, after `warmup` untimed calls."""
    for _ in range(warmup):
        call(argument)
    samples = [0.0] * iterations
    for i in range(iterations):
        t0 = time.perf_counter_ns()
        call(argument)
        samples[i] = (time.perf_counter_ns() - t0) / 1e6
    return samples


def p50_ms(
    call: Callable[[Any], Any], argument: Any, warmup: int = 5, iterations: int = 30
) -> float:
    """Median milliseconds of `call(argument)`: the one figure export and eval report."""
    return LatencyStats.from_samples(time_calls(call, argument, warmup, iterations)).p50_ms
