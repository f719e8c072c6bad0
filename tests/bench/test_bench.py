"""`edge-tl bench` on a real (tiny) bundle: every figure present, baselines, reports, compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_tl.bench.compare import compare_runs
from edge_tl.bench.report import write_reports
from edge_tl.bench.run import BenchConfig, run_benchmark
from edge_tl.bundle import Bundle, Precision
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result(exported_bundle: Path) -> dict:
    pytest.importorskip("torch")
    config = BenchConfig(
        backends=("onnxruntime", "torch", "tensorrt"),
        precisions=(Precision.FP32, Precision.INT8),
        batches=(1, 4),
        warmup=2,
        iterations=8,
        stage_images=8,
    )
    return run_benchmark(Bundle.load(exported_bundle), config)


def test_matrix_rows_and_baseline(result: dict) -> None:
    configs = {(r["backend"], r["precision"], r["batch"]) for r in result["results"]}
    assert configs == {
        ("onnxruntime", "fp32", 1), ("onnxruntime", "fp32", 4),
        ("onnxruntime", "int8", 1), ("onnxruntime", "int8", 4),
        ("torch", "fp32", 1), ("torch", "fp32", 4),
    }  # fmt: skip
    reasons = {(s["backend"], s["precision"]): s["reason"] for s in result["skipped"]}
    assert "int8 runs from int8.onnx" in reasons[("torch", "int8")]
    assert ("tensorrt", "fp32") in reasons  # no engine / no GPU here, and the report says why
    for row in result["results"]:
        latency = row["latency"]
        assert (
            latency["count"] == 8
            and latency["min_ms"] <= latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
        )
        assert row["throughput_ips"] > 0 and row["speedup_vs_naive_torch_p50"] > 0
        assert set(row["stages_ms_p50"]) == {"decode", "preprocess", "infer", "postprocess"}
    assert set(result["naive_torch"]) == {"1", "4"}
    assert result["naive_torch"]["1"]["latency"]["count"] == 8


def test_machine_and_overhead_are_recorded(result: dict) -> None:
    system = result["system"]
    assert system["cpu"] and system["cores_usable"] >= 1 and "onnxruntime" in system["versions"]
    assert 0 < result["harness_overhead_us"] < 50  # µs per iteration, a 5 ms inference is 5000 µs
    assert result["peak_rss_mb"] > 0


def test_reports_are_written(result: dict, tmp_path: Path) -> None:
    written = write_reports(result, tmp_path, "run")
    names = {p.name for p in written}
    assert {"run.json", "run.md", "run-latency.png", "run-accuracy-latency.png"} <= names
    markdown = (tmp_path / "run.md").read_text()
    assert "| onnxruntime CPUExecutionProvider fp32 | 1 |" in markdown and "naive" in markdown


def test_compare_flags_regressions(result: dict, tmp_path: Path) -> None:
    before = tmp_path / "before.json"
    before.write_text(json.dumps(result))
    slower = json.loads(json.dumps(result))
    for row in slower["results"]:
        row["latency"]["p50_ms"] *= 1.5
        row["latency"]["noisy"] = False
    for row in result["results"]:
        row["latency"]["noisy"] = False
    before.write_text(json.dumps(result))
    after = tmp_path / "after.json"
    after.write_text(json.dumps(slower))
    changes = compare_runs(before, after)
    assert len(changes) == 6 and all(
        c["regression"] and c["change"] == pytest.approx(0.5) for c in changes
    )
    cli = run_cli("bench", "--compare", str(before), str(after))
    assert cli.returncode == 1 and "REGRESSION" in cli.stdout
    assert run_cli("bench", "--compare", str(before), str(before)).returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    cli = run_cli("bench", "--compare", str(bad), str(after))
    assert cli.returncode == 1 and "not an edge-tl bench result" in cli.stderr
