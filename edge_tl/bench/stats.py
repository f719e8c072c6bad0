"""Latency statistics from raw samples: percentiles, spread and a noise verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["LatencyStats"]

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
