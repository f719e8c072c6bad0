"""Stream runtime with real components: OpenCV-encoded clips decoded back, the daemon as a
subprocess stopped with SIGTERM, a fast producer under the newest-frame policy."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_tl.bench.rtsp_server import rtsp_server_available, start_rtsp_server
from edge_tl.bench.rtsp_server import test_pattern_launch as pattern_launch  # not a test
from edge_tl.bench.system import free_port
from edge_tl.bundle import Bundle
from edge_tl.errors import EdgeTLError
from edge_tl.runtime.backends import create_backend
from edge_tl.runtime.classify import Classifier
from edge_tl.runtime.config import StreamConfig, load_config
from edge_tl.runtime.daemon import Daemon
from edge_tl.runtime.processor import StreamProcessor
from edge_tl.runtime.scheduler import BatchScheduler
from edge_tl.runtime.sources import Backoff, LiveSource, VideoFileSource
from tests.conftest import _pattern

REPO = Path(__file__).resolve().parents[2]


def make_traffic_clip(
    path: Path,
    classes: list[str],
    size: tuple[int, int] = (320, 160),
    fps: int = 20,
    speed: int = 8,
    seed: int = 0,
) -> list[str]:
    """Objects of the given pattern classes cross the frame left to right, one after another,
    over a static noisy background; returns the classes in crossing order (ground truth)."""
    rng = np.random.default_rng(seed)
    width, height = size
    background = np.clip(rng.normal(110, 6, (height, width, 3)), 0, 255).astype(np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for _ in range(15):  # empty road first: the background model learns it
        writer.write(background)
    for name in classes:
        sprite = cv2.resize(_pattern(name, rng), (56, 56), interpolation=cv2.INTER_NEAREST)
        for x in range(-56, width + 1, speed):
            frame = background.copy()
            x0, x1 = max(0, x), min(width, x + 56)
            if x1 > x0:
                frame[52:108, x0:x1] = sprite[:, x0 - x : x1 - x]
            writer.write(frame)
        for _ in range(4):
            writer.write(background)
    writer.release()
    return classes


@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["opencv", "pyav"])
def test_motion_mode_counts_every_crossing(
    exported_bundle: Path, tmp_path: Path, decoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if decoder == "pyav":
        pytest.importorskip("av", reason="PyAV (the [video] extra) is not installed")
        from edge_tl.runtime.pyav_capture import YuvPicture

        converted = []  # frames made BGR, whole or a region: only those with crops classified
        to_bgr, to_region = YuvPicture.bgr, YuvPicture.bgr_region
        monkeypatch.setattr(
            YuvPicture, "bgr", lambda self: converted.append(id(self)) or to_bgr(self)
        )
        monkeypatch.setattr(
            YuvPicture,
            "bgr_region",
            lambda self, *box: converted.append(id(self)) or to_region(self, *box),
        )
    truth = make_traffic_clip(
        tmp_path / "road.mp4", ["disc", "stripes", "checker", "disc", "stripes"]
    )
    bundle = Bundle.load(exported_bundle)
    with create_backend(bundle, "onnxruntime") as backend:
        scheduler = BatchScheduler(Classifier(backend, bundle.labels), max_batch=4, max_wait_ms=1)
        processor = StreamProcessor(
            StreamConfig(name="road", source="road.mp4", mode="motion"), scheduler, bundle.labels
        )
        source = VideoFileSource(tmp_path / "road.mp4", decoder=decoder)  # type: ignore[arg-type]
        events = [e for frame in source for e in processor.process(frame)]
        frames = source.stats.frames_read
        scheduler.close()
    if decoder == "pyav":
        votes = sum(e["votes"] for e in events if e["kind"] == "count")
        assert 0 < len(set(converted)) <= votes < frames / 2
    counted = [e["class"] for e in events if e["kind"] == "count"]
    assert len(counted) == len(truth)  # one count per object, none twice
    assert sum(c == t for c, t in zip(counted, truth, strict=True)) >= len(truth) - 1
    assert processor.counts == {name: counted.count(name) for name in bundle.labels}
    assert all(e["track_id"] and e["votes"] >= 1 for e in events)


@pytest.mark.slow
def test_classify_at_line_counts_the_same_and_skips_tracks_that_never_cross(
    exported_bundle: Path, tmp_path: Path
) -> None:
    # a tall frame: the road (y 52-108) far from its bottom
    make_traffic_clip(tmp_path / "road.mp4", ["disc", "stripes", "checker"], size=(320, 320))
    bundle = Bundle.load(exported_bundle)
    reference = bundle.manifest.reference

    def run(classify: str, line: tuple, drift: bool = False) -> tuple[list[tuple[int, str]], int]:
        with create_backend(bundle, "onnxruntime") as backend:
            scheduler = BatchScheduler(Classifier(backend, bundle.labels), max_batch=8)
            config = StreamConfig(
                name="road", source="-", classify=classify, line=line, drift={"enabled": drift}
            )
            processor = StreamProcessor(config, scheduler, bundle.labels, reference=reference)
            events = [
                e for f in VideoFileSource(tmp_path / "road.mp4") for e in processor.process(f)
            ]
            scheduler.close()
        counts = [(e["frame"], e["class"]) for e in events if e["kind"] == "count"]
        return counts, scheduler.stats.images

    across = ((0.5, 0.0), (0.5, 1.0))
    eager, eager_crops = run("eager", across)
    at_line, at_line_crops = run("at_line", across)
    assert len(eager) == 3 and at_line == eager  # same vehicles, same frames, same classes
    assert 3 <= at_line_crops <= eager_crops
    # a line no vehicle comes near (far below the road): nothing counted, and at_line
    # classifies nothing
    below = ((0.0, 0.9), (1.0, 0.9))
    assert run("eager", below)[0] == [] and run("eager", below)[1] > 0
    assert run("at_line", below) == ([], 0)
    # from the stream's first frame, also while the drift check has no verdict yet
    assert reference is not None and run("at_line", below, drift=True) == ([], 0)


@pytest.mark.slow
def test_a_vehicle_past_the_line_in_its_second_frame_is_counted_at_10_fps(
    exported_bundle: Path, tmp_path: Path
) -> None:
    """A 10 fps camera: a vehicle comes out from behind a pole 10 px before the line and is
    20 px past it one frame later. Its track is confirmed on its second sighting (`min_hits`):
    its side must be known from its first, or the crossing is never seen."""
    rng = np.random.default_rng(0)
    size = (320, 160)
    background = np.clip(rng.normal(110, 6, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    sprite = cv2.resize(_pattern("disc", rng), (56, 56), interpolation=cv2.INTER_NEAREST)
    writer = cv2.VideoWriter(str(tmp_path / "pole.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    frames = [background] * 15
    for left in range(160 - 10 - 28, 320 - 56, 30):  # centre 10 px before the line, then on
        frame = background.copy()
        frame[52:108, left : left + 56] = sprite
        frames.append(frame)
    for frame in [*frames, *[background] * 5]:
        writer.write(frame)
    writer.release()
    bundle = Bundle.load(exported_bundle)
    with create_backend(bundle, "onnxruntime") as backend:
        scheduler = BatchScheduler(Classifier(backend, bundle.labels), max_batch=4)
        processor = StreamProcessor(StreamConfig(name="pole", source="-"), scheduler, bundle.labels)
        source = VideoFileSource(tmp_path / "pole.mp4")
        events = [e for frame in source for e in processor.process(frame)]
        events += processor.finish()  # the count's votes come in after the clip's end
        scheduler.close()
    assert [e["frame"] for e in events if e["kind"] == "count"] == [16]


class _SlowClassifier(Classifier):
    """The real classifier, `delay_s` slower per batch (a busy box, a remote server)."""

    def __init__(self, backend: object, labels: list[str], delay_s: float) -> None:
        super().__init__(backend, labels)  # type: ignore[arg-type]
        self.delay_s = delay_s

    def classify(self, images: list[np.ndarray]) -> list:  # type: ignore[override]
        time.sleep(self.delay_s)
        return super().classify(images)


@pytest.mark.slow
def test_counts_do_not_wait_for_inference_nor_depend_on_its_speed(
    exported_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truth = make_traffic_clip(tmp_path / "road.mp4", ["disc", "stripes", "checker"])
    bundle = Bundle.load(exported_bundle)
    waits = []  # votes taken before their classification was done: the stream waited
    take = StreamProcessor._result
    monkeypatch.setattr(
        StreamProcessor, "_result", lambda self, f: waits.append(not f.done()) or take(self, f)
    )

    def run(delay_s: float, pace_s: float = 0.0) -> tuple[list[tuple], list[tuple]]:
        waits.clear()
        with create_backend(bundle, "onnxruntime") as backend:
            scheduler = BatchScheduler(_SlowClassifier(backend, bundle.labels, delay_s))
            config = StreamConfig(name="road", source="-")
            processor = StreamProcessor(config, scheduler, bundle.labels)
            events, crossed, seen = [], [], set()
            for frame in VideoFileSource(tmp_path / "road.mp4"):
                events += processor.process(frame)
                for track in processor._tracker.tracks.values():
                    if track.counted and track.id not in seen:
                        seen.add(track.id)
                        crossed.append((frame.index, track.id))
                time.sleep(pace_s)  # a camera's frame interval
            events += processor.finish()  # counted before the end, classified after it
            scheduler.close()
        counts = [e for e in events if e["kind"] == "count"]
        return [
            (e["frame"], e["track_id"], e["class"], e["votes"], e["box"]) for e in counts
        ], crossed

    fast, crossed = run(0.0)
    slow, _ = run(0.15)  # every batch later than the vote is due: the stream waits for them
    assert len(fast) == len(truth) and slow == fast  # same frames, tracks, classes, votes
    assert any(waits)
    # each count carries the frame its track crossed in, though it went out frames later
    assert [(frame, track) for frame, track, *_ in fast] == crossed
    # frames a camera's interval apart, inference well inside the vote's delay: no frame waits
    # (classifying at the crossing itself made every crossing wait for its crops)
    paced, _ = run(0.01, pace_s=0.03)
    assert paced == fast and waits and not any(waits)


@pytest.mark.slow
def test_frame_and_roi_modes(exported_bundle: Path, tiny_dataset: Path) -> None:
    bundle = Bundle.load(exported_bundle)
    image = cv2.imread(str(next((tiny_dataset / "stripes").iterdir())))
    from edge_tl.runtime.sources import Frame

    frame = Frame(0, np.hstack([image, image]), 0.0, time.time(), 0.1)
    with create_backend(bundle, "onnxruntime") as backend:
        scheduler = BatchScheduler(Classifier(backend, bundle.labels), max_batch=4)
        whole = list(
            StreamProcessor(
                StreamConfig(name="a", source="-", mode="frame"), scheduler, bundle.labels
            ).process(frame)
        )
        rois = StreamConfig(
            name="b", source="-", mode="roi", rois=[(0, 0, 0.5, 1), (0.5, 0, 0.5, 1)]
        )
        regions = list(StreamProcessor(rois, scheduler, bundle.labels).process(frame))
        scheduler.close()
    assert len(whole) == 1 and whole[0]["box"] == [0, 0, 96, 48]
    assert [e["roi"] for e in regions] == [0, 1] and all(e["class"] == "stripes" for e in regions)
    assert scheduler.stats.images == 3


class _FastCamera:
    """Stands in for cv2.VideoCapture: a frame every ~1 ms, numbered in its first pixel."""

    def __init__(self) -> None:
        self.count = 0

    def isOpened(self) -> bool:  # noqa: N802  (OpenCV's name)
        return True

    def read(self) -> tuple[bool, np.ndarray]:
        time.sleep(0.001)
        self.count += 1
        return True, np.full((4, 4, 3), self.count % 256, np.uint8)

    def release(self) -> None:
        pass


def test_newest_frame_policy_keeps_latency_bounded() -> None:
    source = LiveSource("fast", _FastCamera)
    latencies, taken = [], 0
    deadline = time.time() + 2.0
    try:
        while time.time() < deadline:
            frame = source.latest(timeout=1.0)
            assert frame is not None
            latencies.append(time.time() - frame.captured_at)
            taken += 1
            time.sleep(0.05)  # a consumer 50x slower than the camera
    finally:
        source.close()
    assert source.stats.frames_read > 10 * taken  # the camera kept producing...
    assert source.stats.frames_dropped > 5 * taken  # ...and stale frames were dropped, not queued
    first, last = np.median(latencies[:5]), np.median(latencies[-5:])
    assert max(latencies) < 0.06 and last < first + 0.02  # latency does not grow with time


class _PacedCamera(_FastCamera):
    """A frame every 10 ms, as a camera sends them whatever the reader does."""

    def read(self) -> tuple[bool, np.ndarray]:
        time.sleep(0.01)
        self.count += 1
        return True, np.full((4, 4, 3), self.count % 256, np.uint8)


@pytest.mark.parametrize("max_lag_s", [0.0, 0.2])
def test_a_lag_allowance_rides_out_a_stalled_consumer(max_lag_s: float) -> None:
    source = LiveSource("paced", _PacedCamera, max_lag_s=max_lag_s)
    taken = []
    try:
        for _ in range(20):
            frame = source.latest(timeout=1.0)
            assert frame is not None
            taken.append(frame)
            if len(taken) == 10:
                time.sleep(0.08)  # the stream's thread busy elsewhere for 8 frames
    finally:
        source.close()
    indices = [f.index for f in taken]
    if max_lag_s:  # every frame, in order, none older than the allowance
        assert indices == list(range(indices[0], indices[0] + 20))
        assert source.stats.frames_dropped == 0
    else:  # the newest only: the frames of the stall are gone
        assert indices[10] - indices[9] >= 4 and source.stats.frames_dropped >= 3


def test_stream_threads_run_below_the_inference_thread() -> None:
    from edge_tl.runtime.daemon import STREAM_NICE, _lower_priority

    def priorities() -> tuple[int, int]:
        _lower_priority(STREAM_NICE)
        child = []
        thread = threading.Thread(
            target=lambda: child.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        )
        thread.start()
        thread.join()
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), child[0]

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    result: list[tuple[int, int]] = []
    stream = threading.Thread(target=lambda: result.append(priorities()))
    stream.start()
    stream.join()
    expected = min(19, before + STREAM_NICE)
    assert result == [(expected, expected)]  # lowered, and its reader thread inherits it
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # not others


class _GrabbingCamera(_FastCamera):
    """A capture that, like cv2.VideoCapture, can decode (grab) without converting (retrieve)."""

    def __init__(self) -> None:
        super().__init__()
        self.retrieved = 0

    def grab(self) -> bool:
        time.sleep(0.001)
        self.count += 1
        return True

    def retrieve(self) -> tuple[bool, np.ndarray]:
        self.retrieved += 1
        return True, np.full((4, 4, 3), self.count % 256, np.uint8)


def test_max_fps_converts_only_the_frames_it_keeps() -> None:
    cameras: list[_GrabbingCamera] = []
    source = LiveSource(
        "capped", lambda: cameras.append(_GrabbingCamera()) or cameras[-1], max_fps=20
    )
    frames = []
    deadline = time.time() + 1.0
    try:
        while time.time() < deadline:
            frame = source.latest(timeout=0.5)
            if frame is not None:
                frames.append(frame)
    finally:
        source.close()
    camera = cameras[0]
    assert 10 <= camera.retrieved <= 25  # ~20 a second converted...
    assert camera.count > 5 * camera.retrieved  # ...of many more decoded
    assert source.stats.frames_dropped >= camera.count - camera.retrieved - 1
    assert frames and all(f.image.shape == (4, 4, 3) for f in frames)


class _FlakyCamera(_FastCamera):
    opened = 0

    def __init__(self) -> None:
        super().__init__()
        type(self).opened += 1

    def read(self) -> tuple[bool, np.ndarray]:
        if self.count >= 5:
            return False, np.empty(0)
        return super().read()


def test_failed_stream_reconnects_with_backoff() -> None:
    _FlakyCamera.opened = 0
    source = LiveSource("flaky", _FlakyCamera, backoff=Backoff(initial_s=0.05, max_s=0.2))
    time.sleep(0.8)
    source.close()
    assert _FlakyCamera.opened >= 3 and source.stats.reconnects >= 2
    delays = [
        Backoff(initial_s=0.5, max_s=30, jitter=0.2).delay(n, random.Random(1)) for n in range(8)
    ]
    assert 0.4 <= delays[0] <= 0.6 and delays[3] > delays[1] * 2 and max(delays) <= 36


def test_config_typo_names_field_and_file(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text('bundle = "b"\n[[streams]]\nname = "a"\nsource = "x.mp4"\nmdoe = "frame"\n')
    with pytest.raises(
        EdgeTLError, match=r"edge\.toml: field 'streams\.0\.mdoe': unknown field \(typo\?\)"
    ):
        load_config(config)
    config.write_text('bundle = "b"\nstreams = []\n')
    with pytest.raises(EdgeTLError, match="field 'streams'"):
        load_config(config)
    config.write_text("bundle = \n")
    with pytest.raises(EdgeTLError, match="not valid TOML"):
        load_config(config)
    # a field that was renamed says what it became
    config.write_text('bundle = "b"\n[[streams]]\nname = "a"\nsource = "x"\nrecount_frames = 15\n')
    with pytest.raises(EdgeTLError, match=r"streams\.0.*'recount_frames' is now 'recount_s'"):
        load_config(config)
    config.write_text(
        'bundle = "b"\n[[streams]]\nname = "a"\nsource = "x"\n[streams.motion]\nhistory = 300\n'
    )
    with pytest.raises(EdgeTLError, match=r"streams\.0\.motion.*'history' is now 'history_s'"):
        load_config(config)


def test_shipped_example_config_is_valid() -> None:
    config = load_config(REPO / "deploy" / "edge-tl.toml")
    assert [s.name for s in config.streams] == ["gate-north", "jetson-csi"]


@pytest.mark.slow
def test_sigterm_flushes_sinks(exported_bundle: Path, tmp_path: Path) -> None:
    clip = tmp_path / "road.mp4"
    make_traffic_clip(clip, ["disc", "stripes"] * 10)  # long enough to still run at SIGTERM
    config = tmp_path / "serve.toml"
    config.write_text(
        f'bundle = "{exported_bundle}"\nevents = "{tmp_path / "events.jsonl"}"\ncounts = "{tmp_path / "counts.jsonl"}"\n'
        f"counts_interval_s = 600\nmetrics_port = 0\n"
        f'[[streams]]\nname = "road"\nsource = "{clip}"\nmode = "frame"\nrealtime = true\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_tl.cli", "serve", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    events_file = tmp_path / "events.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (
        not events_file.exists() or events_file.stat().st_size < 2000
    ):
        time.sleep(0.2)
    assert process.poll() is None, process.stderr.read() if process.stderr else ""
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    lines = events_file.read_text().splitlines()
    assert lines and all(
        json.loads(line)["stream"] == "road" for line in lines
    )  # every line complete
    counts = [json.loads(line) for line in (tmp_path / "counts.jsonl").read_text().splitlines()]
    assert len(counts) == 1  # written on shutdown, not by the 600 s timer
    assert len(lines) < 20 * 40  # stopped early: the clip has far more frames


@contextlib.contextmanager
def running(daemon: Daemon) -> Iterator[Daemon]:
    """Run the daemon on a thread for the block; stop it (flushing sinks) afterwards."""
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        runner.join(timeout=20)


def _wait(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
@pytest.mark.skipif(
    not rtsp_server_available(),
    reason="gst-rtsp-server not installed (apt: gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-ugly)",
)
def test_rtsp_outage_reconnects_without_stopping_other_streams(
    exported_bundle: Path, tmp_path: Path
) -> None:
    port = free_port()
    server = start_rtsp_server(port, {"/cam": pattern_launch()})
    clip = tmp_path / "other.mp4"
    make_traffic_clip(clip, ["disc", "stripes"] * 15)
    config = tmp_path / "serve.toml"
    config.write_text(
        f'bundle = "{exported_bundle}"\nmetrics_port = 0\n'
        f'[[streams]]\nname = "cam"\nsource = "rtsp://127.0.0.1:{port}/cam"\nmode = "frame"\n'
        f"reconnect_initial_s = 0.2\nreconnect_max_s = 1.0\nstall_timeout_s = 2\n"
        f'[[streams]]\nname = "file"\nsource = "{clip}"\nmode = "frame"\nrealtime = true\n'
    )
    try:
        with running(Daemon(load_config(config))) as daemon:
            assert _wait(lambda: daemon.frames.get("cam", 0) > 10, 20), "no RTSP frames at all"
            server.send_signal(signal.SIGKILL)
            server.wait()
            time.sleep(2.0)
            file_frames = daemon.frames.get("file", 0)
            time.sleep(1.5)
            assert daemon.frames.get("file", 0) > file_frames  # the other stream kept going
            cam_before = daemon.frames.get("cam", 0)
            server = start_rtsp_server(port, {"/cam": pattern_launch()})
            restarted = time.time()
            assert _wait(lambda: daemon.frames.get("cam", 0) > cam_before + 5, 10), (
                "RTSP frames did not come back"
            )
            recovery = time.time() - restarted
            assert recovery < 5.0, f"frames flowed again after {recovery:.1f} s"
            assert daemon.sources["cam"].stats.reconnects >= 1
            assert b'edge_tl_reconnects_total{stream="cam"}' in daemon.metrics.exposition()
    finally:
        server.kill()


@pytest.mark.slow
def test_metrics_and_healthz_endpoints(exported_bundle: Path, tmp_path: Path) -> None:
    import urllib.request

    clip = tmp_path / "road.mp4"
    make_traffic_clip(clip, ["disc", "stripes"] * 4)
    config = tmp_path / "serve.toml"
    config.write_text(
        f'bundle = "{exported_bundle}"\nmetrics_port = 0\n'
        f'[[streams]]\nname = "road"\nsource = "{clip}"\nmode = "motion"\nrealtime = true\n'
        f'[[streams]]\nname = "broken"\nsource = "{tmp_path / "missing.mp4"}"\n'
    )
    with running(Daemon(load_config(config))) as daemon:
        assert _wait(lambda: daemon.frames.get("road", 0) > 20, 20)
        port = daemon._http.server_address[1]  # type: ignore[union-attr]
        local = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        with pytest.raises(urllib.error.HTTPError) as unhealthy:  # one stream could not open
            local.open(f"http://127.0.0.1:{port}/healthz")
        health = json.loads(unhealthy.value.read())
        assert unhealthy.value.code == 503 and "missing.mp4" in health["streams"]["broken"]["error"]
        assert health["streams"]["road"]["state"] == "live"
        metrics = local.open(f"http://127.0.0.1:{port}/metrics").read().decode()
        assert 'edge_tl_frames_total{stream="road"}' in metrics
        assert "edge_tl_capture_to_result_ms_bucket" in metrics


def looped_cameras(clip: Path, count: int) -> str:
    """Config sections for `count` cameras played by one clip, looped at its fps, frame mode."""
    return "".join(
        f'[[streams]]\nname = "cam{i}"\nsource = "{clip}"\nmode = "frame"\n'
        "realtime = true\nloop = true\n"
        for i in range(count)
    )


@pytest.mark.slow
def test_sigterm_with_eight_cameras_loses_no_event(exported_bundle: Path, tmp_path: Path) -> None:
    """Eight looped clips decoding when SIGTERM comes: the process exits 0 (no FFmpeg abort from
    a capture freed under a running read) and every processed frame's event is in the file."""
    clip = tmp_path / "road.mp4"
    make_traffic_clip(clip, ["disc", "stripes"])
    events = tmp_path / "events.jsonl"
    config = tmp_path / "serve.toml"
    config.write_text(
        f'bundle = "{exported_bundle}"\nevents = "{events}"\nmetrics_port = 0\n'
        + looped_cameras(clip, 8)
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_tl.cli", "serve", str(config), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    deadline = time.time() + 60
    while time.time() < deadline and (not events.exists() or events.stat().st_size < 50_000):
        time.sleep(0.2)
    assert process.poll() is None, process.stderr.read() if process.stderr else ""
    time.sleep(3)  # past the clip's end: every camera has looped at least once
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    final = json.loads(stdout)
    written: dict[str, int] = {}
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "class":  # one per processed frame in frame mode
            written[event["stream"]] = written.get(event["stream"], 0) + 1
    frames = {name: state["frames"] for name, state in final["streams"].items()}
    assert len(frames) == 8 and min(frames.values()) > 0
    assert written == frames  # one event per processed frame, none lost at shutdown
