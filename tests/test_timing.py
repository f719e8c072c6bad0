from __future__ import annotations

import numpy as np
import pytest

from edge_tl.timing import LatencyStats


def test_percentiles_of_known_samples() -> None:
    stats = LatencyStats.from_samples(list(range(1, 101)))  # 1..100 ms
    assert stats.count == 100 and stats.min_ms == 1 and stats.max_ms == 100
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.iqr_ms == pytest.approx(49.5)
    assert stats.noisy  # IQR is ~98% of p50


def test_steady_samples_are_not_noisy() -> None:
    samples = 5.0 + np.random.default_rng(0).normal(0, 0.05, 500)
    assert not LatencyStats.from_samples(samples).noisy


def test_empty_is_an_error() -> None:
    with pytest.raises(ValueError):
        LatencyStats.from_samples([])
