"""`workers = 2`: streams split over worker processes, events reaching the parent's sinks, a
killed worker started again while the other keeps running, SIGTERM losing nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edge_tl.bench.system import free_port
from edge_tl.runtime.config import load_config
from edge_tl.runtime.workers import WorkerPool
from tests.runtime.test_stream_runtime import REPO, looped_cameras, make_traffic_clip

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, bundle: Path, clip: Path, port: int) -> Path:
    config = tmp_path / "serve.toml"
    config.write_text(
        f'bundle = "{bundle}"\nevents = "{tmp_path / "events.jsonl"}"\nworkers = 2\n'
        f"metrics_port = {port}\n" + looped_cameras(clip, 4)
    )
    return config


def _health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503 while not every stream is live
        return json.loads(exc.read())


def _wait(condition, timeout: float = 60) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if condition():
                return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def _serve(tmp_path: Path, bundle: Path, port: int, output: int) -> subprocess.Popen:
    """`edge-tl serve` with 2 workers on 4 looped cameras of a generated clip."""
    clip = tmp_path / "road.mp4"
    make_traffic_clip(clip, ["disc", "stripes"])
    return subprocess.Popen(
        [sys.executable, "-m", "edge_tl.cli", "serve", str(_config(tmp_path, bundle, clip, port)), "--json"],
        stdout=output, stderr=output, text=True, cwd=REPO,
    )  # fmt: skip


def test_workers_restart_and_lose_no_event(exported_bundle: Path, tmp_path: Path) -> None:
    port = free_port()
    process = _serve(tmp_path, exported_bundle, port, subprocess.PIPE)
    try:
        assert _wait(lambda: all(s["frames"] > 0 for s in _health(port)["streams"].values()))
        health = _health(port)
        assert {s["worker"] for s in health["streams"].values()} == {0, 1}
        assert health["streams"]["cam0"]["worker"] == health["streams"]["cam2"]["worker"] == 0
        victim = health["workers"][1]["pid"]
        frames_cam0 = health["streams"]["cam0"]["frames"]
        frames_cam1 = health["streams"]["cam1"]["frames"]  # on the victim
        os.kill(victim, signal.SIGKILL)
        assert _wait(lambda: _health(port)["workers"][1]["restarts"] == 1)
        assert _wait(lambda: _health(port)["workers"][1]["pid"] != victim)
        # the other worker never stopped; the restarted one delivers frames again
        assert _wait(lambda: _health(port)["streams"]["cam0"]["frames"] > frames_cam0 + 20)
        assert _wait(lambda: _health(port)["streams"]["cam1"]["state"] == "live")
        # the new process counts from 0; the stream's total goes on from the old one's
        seen: list[int] = []
        assert _wait(
            lambda: (
                seen.append(_health(port)["streams"]["cam1"]["frames"])
                or seen[-1] > frames_cam1 + 20
            )
        )
        assert min(seen) >= frames_cam1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            metrics = response.read().decode()
        assert "edge_tl_worker_restarts_total 1.0" in metrics
        total = next(
            line
            for line in metrics.splitlines()
            if line.startswith('edge_tl_frames_total{stream="cam1"}')
        )
        assert float(total.split()[-1]) > frames_cam1 + 20
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    final = json.loads(stdout)
    written: dict[str, int] = {}
    for line in (tmp_path / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "class":
            written[event["stream"]] = written.get(event["stream"], 0) + 1
    # the surviving worker's streams: every processed frame's event reached the parent's sink
    for name in ("cam0", "cam2"):
        assert written[name] == final["streams"][name]["frames"], name


def test_a_worker_killed_inside_its_queue_lock_stalls_no_other(
    exported_bundle: Path, tmp_path: Path
) -> None:
    """A worker SIGKILLed while its feeder thread holds its event queue's write lock never
    releases it. CI caught the surviving worker frozen that way when both shared one queue;
    here the lock is taken and kept from outside, which is what such a death leaves behind."""
    clip = tmp_path / "road.mp4"
    make_traffic_clip(clip, ["disc", "stripes"])
    pool = WorkerPool(load_config(_config(tmp_path, exported_bundle, clip, free_port())))
    exited: set[int] = set()

    def cam0_frames() -> int:
        pool._drain(timeout=0.3, exited=exited)
        return pool.health()["streams"]["cam0"]["frames"]

    try:
        for index in range(2):
            pool._start(index)
        assert pool.groups[0][0].name == "cam0"
        # multiprocessing's private lock, the one a killed writer leaves held
        assert pool._events[1]._wlock.acquire(timeout=10)
        assert _wait(lambda: cam0_frames() > 0)
        before = cam0_frames()
        assert _wait(lambda: cam0_frames() > before + 20)
    finally:
        pool._events[1]._wlock.release()
        pool.shutdown()


def _running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its reaper has stopped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_workers_stop_when_the_parent_is_killed(exported_bundle: Path, tmp_path: Path) -> None:
    port = free_port()
    process = _serve(tmp_path, exported_bundle, port, subprocess.DEVNULL)
    workers: list[int] = []
    try:
        assert _wait(lambda: all(s["frames"] > 0 for s in _health(port)["streams"].values()))
        workers = [w["pid"] for w in _health(port)["workers"]]
        assert len(workers) == 2 and all(_running(pid) for pid in workers)
        process.kill()  # SIGKILL: no handler runs in the parent, no signal reaches the workers
        process.wait(timeout=10)
        assert _wait(lambda: not any(_running(pid) for pid in workers), timeout=30)
    finally:
        process.kill()
        for pid in workers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
