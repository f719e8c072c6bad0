"""The CPU floor: MACs counted from the ONNX graph agree with PyTorch's own layers, the GEMM rate
is a real measurement, and bench puts "x of floor" on every CPU row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_tl.bench.floor import graph_macs, measure_fp32_mac_rate
from edge_tl.bench.report import to_markdown
from edge_tl.bench.run import BenchConfig, run_benchmark
from edge_tl.bundle import ArtifactKind, Bundle

pytestmark = pytest.mark.slow


def _torch_macs(bundle: Bundle) -> int:
    """MACs per image of the checkpoint's Conv2d and Linear layers, counted by forward hooks."""
    torch = pytest.importorskip("torch")
    from edge_tl.models.checkpoint import load_model

    model = load_model(bundle.artifact_path(ArtifactKind.TORCH), with_prior=True).eval()
    total = [0]

    def count(layer: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
        if isinstance(layer, torch.nn.Conv2d):
            per_output = layer.in_channels // layer.groups * int(np.prod(layer.kernel_size))
        else:
            per_output = layer.in_features
        total[0] += output.numel() * per_output

    for layer in model.modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
            layer.register_forward_hook(count)
    spec = bundle.input_spec
    with torch.no_grad():
        model(torch.zeros(1, 3, spec.height, spec.width))
    return total[0]


def test_graph_macs_match_the_pytorch_layers(exported_bundle: Path) -> None:
    bundle = Bundle.load(exported_bundle)
    onnx_macs = graph_macs(bundle.artifact_path(ArtifactKind.ONNX))
    assert onnx_macs == _torch_macs(bundle)
    assert onnx_macs > 1e6  # a Lite0 at the tiny input still does millions


def test_fp32_rate_is_a_measurement() -> None:
    rate = measure_fp32_mac_rate(size=256, repeats=3)
    # between a slow core without SIMD and far more than any two-core box
    assert 0.5 < rate < 20_000


def test_bench_rows_carry_x_of_floor(exported_bundle: Path) -> None:
    config = BenchConfig(
        backends=("onnxruntime",), warmup=1, iterations=5, naive_baseline=False, stages=False
    )
    result = run_benchmark(Bundle.load(exported_bundle), config)
    floor = result["cpu_floor"]
    assert floor["macs_per_image"] > 0 and floor["fp32_gmacs_per_s"] > 0
    (row,) = result["results"]
    assert row["on_cpu"]
    expected = row["latency"]["p50_ms"] / floor["floor_ms_b1"]
    assert row["x_of_floor"] == pytest.approx(expected, rel=0.01)
    assert "x of floor: p50 ÷ this CPU's fp32 floor" in to_markdown(result)
