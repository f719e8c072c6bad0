"""Benchmarks: timing harness, statistics, system facts, reports and comparisons."""

from edge_tl.bench.run import BenchConfig, run_benchmark
from edge_tl.timing import LatencyStats

__all__ = ["BenchConfig", "LatencyStats", "run_benchmark"]
