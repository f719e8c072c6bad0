"""Benchmarks: timing harness, statistics and reports."""

from edge_tl.bench.latency import BackendResult, bench_backends
from edge_tl.bench.stats import LatencyStats

__all__ = ["BackendResult", "LatencyStats", "bench_backends"]
