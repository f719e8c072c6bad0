"""`edge-tl bench-streams` on a generated clip: paced cameras through the real daemon, the
real-time rule, the capacity search and the CPU breakdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_tl.bench.streams import (
    StreamBenchConfig,
    _serve_config,
    cpu_breakdown,
    find_capacity,
    run_load,
)
from edge_tl.runtime.sources import VideoFileSource
from tests.conftest import run_cli
from tests.runtime.test_stream_runtime import make_traffic_clip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "road.mp4"
    make_traffic_clip(path, ["disc", "stripes"], fps=10)
    return path


@pytest.mark.parametrize(("live", "workers"), [(False, 1), (True, 1), (False, 2)])
def test_one_load_measures_every_camera(
    exported_bundle: Path, clip: Path, live: bool, workers: int
) -> None:
    # with workers, frames are counted as of each worker's last report and timed by it
    config = StreamBenchConfig(
        exported_bundle, clip, seconds=3, warmup_s=1, live=live, workers=workers
    )
    load = run_load(config, 2)
    assert set(load["per_camera_fps"]) == {"cam0", "cam1"}
    assert load["worst_fps"] == min(load["per_camera_fps"].values())
    # a 10 fps clip paced like a camera cannot be processed faster than it is delivered
    assert 0 < load["worst_fps"] <= 10 * 1.1
    assert load["realtime"] == (load["worst_fps"] >= 0.95 * load["clip_fps"])
    assert load["latency_ms"]["frames"] > 0 and load["cpu_cores_used"] > 0
    assert not load["errors"]


def test_copies_start_spread_over_the_clip_unless_in_step(
    exported_bundle: Path, clip: Path
) -> None:
    duration = VideoFileSource(clip).duration_s
    spread = _serve_config(StreamBenchConfig(exported_bundle, clip), 4)
    starts = [stream.start_s for stream in spread.streams]
    assert starts == pytest.approx([0, duration / 4, duration / 2, 3 * duration / 4])
    in_step = _serve_config(StreamBenchConfig(exported_bundle, clip, in_step=True), 4)
    assert [stream.start_s for stream in in_step.streams] == [0, 0, 0, 0]


def test_capacity_search_stops_at_the_limit(exported_bundle: Path, clip: Path) -> None:
    config = StreamBenchConfig(exported_bundle, clip, seconds=2, warmup_s=1, max_cameras=2)
    result = find_capacity(config)
    tried = [load["cameras"] for load in result["loads"]]
    assert tried[0] == 1 and max(tried) <= 2
    realtime = [load["cameras"] for load in result["loads"] if load["realtime"]]
    assert result["realtime_cameras"] == max(realtime, default=0)


@pytest.mark.parametrize("live", [False, True])  # live loads: the breakdown still unpaced
def test_cpu_breakdown_adds_up(exported_bundle: Path, clip: Path, live: bool) -> None:
    parts = cpu_breakdown(StreamBenchConfig(exported_bundle, clip, live=live), frames=60)
    assert parts["decode"] > 0 and parts["total"] > 0
    named = parts["decode"] + parts["analysis"] + parts["inference"]
    assert parts["other"] == pytest.approx(max(0.0, parts["total"] - named), abs=0.2)


def test_cli_writes_reports(exported_bundle: Path, clip: Path, tmp_path: Path) -> None:
    run_cli("bench-streams", str(exported_bundle), "--source", str(clip), "--max", "1",
            "--seconds", "2", "--warmup", "1", "--no-breakdown", "--out", str(tmp_path),
            "--motion", "knn")  # fmt: skip
    result = json.loads((tmp_path / "streams.json").read_text())
    assert result["realtime_cameras"] in (0, 1) and result["loads"][0]["cameras"] == 1
    assert result["motion_method"] == "knn"
    report = (tmp_path / "streams.md").read_text()
    assert "real-time cameras" in report and "motion: knn" in report


def test_cameras_get_the_chosen_background_model(exported_bundle: Path, clip: Path) -> None:
    for method in ("mog2", "knn"):
        serve = _serve_config(StreamBenchConfig(exported_bundle, clip, motion_method=method), 2)
        assert [stream.motion.method for stream in serve.streams] == [method, method]
