"""`edge-tl bench-streams`: how many cameras this box serves in real time.

N copies of a clip, looped and paced at its fps like cameras, run through the daemon (the
same code as `edge-tl serve`); after a warm-up, each camera's processed frames are counted over
a window. Copy k of N starts k/N of the way into the clip: independent cameras do not see the
same vehicle, or reach the end of a file, at the same moment. Copies in step (`in_step`) put
every camera's busiest moments together: at 8 highway cameras on 2 cores that alone took the
frames within 150 ms of due from 99.2 % to 96 % (p99 from <= 150 to <= 500 ms). A camera is
served in real time when it processed >= 95 % of the frames its clip delivered in that window.
The search doubles N until a camera falls behind, then bisects.

Per load it also records capture-to-result latency (from the time the paced frame was due,
so a backlog shows), the process's CPU use and RSS; and, measured alone on one camera, what a
camera-second costs in CPU: decoding, analysis (camera motion, motion detection, tracking,
crops, events), inference, and the rest (preprocessing, hand-offs, the daemon's loop) as the
remainder of the whole.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl.bench.system import current_rss_mb, system_info
from edge_tl.bundle import Bundle, Precision
from edge_tl.errors import EdgeTLError
from edge_tl.progress import track
from edge_tl.runtime.backends import create_backend
from edge_tl.runtime.config import ServeConfig, StreamConfig
from edge_tl.runtime.daemon import Daemon, open_daemon
from edge_tl.runtime.motion import MotionConfig
from edge_tl.runtime.prometheus import LATENCY_BUCKETS_MS
from edge_tl.runtime.sources import VideoFileSource, open_source, resolve_decoder

__all__ = [
    "StreamBenchConfig",
    "bench_streams",
    "run_load",
    "find_capacity",
    "cpu_breakdown",
    "to_markdown",
]

REALTIME_SHARE = 0.95
STARTUP_TIMEOUT_S = 60.0  # cameras that deliver no frame by then are measured as they are


@dataclass(frozen=True)
class StreamBenchConfig:
    bundle: Path
    source: Path
    mode: str = "motion"
    backend: str = "auto"
    precision: str = "fp32"
    threads: int | None = None
    max_cameras: int = 32
    seconds: float = 30.0
    warmup_s: float = 5.0
    line: tuple[tuple[float, float], tuple[float, float]] | None = None
    workers: int = 1
    decoder: str = "auto"
    # the copies read as cameras are (only recent frames kept): behind shows as frames
    # skipped, not as a backlog's latency
    live: bool = False
    in_step: bool = False  # every copy from the clip's start (default: spread over the clip)
    # the streams' background model (`[streams.motion] method`)
    motion_method: str = MotionConfig.model_fields["method"].default


def _clip_timing(source: Path) -> tuple[float, float]:
    """The clip's frame rate and duration; a missing or unreadable clip fails as `serve` would
    say it."""
    clip = VideoFileSource(source)
    fps, duration_s = clip.fps, clip.duration_s
    clip.close()
    if fps <= 0:
        raise EdgeTLError(f"{source}: no frame rate in the file; cannot pace it like a camera")
    return fps, duration_s


def _line(config: StreamBenchConfig) -> Any:
    """The clip's counting line: given, else from CLIP.counts.json beside it, else the default."""
    if config.line is not None:
        return config.line
    truth = config.source.with_suffix(".counts.json")
    if truth.is_file():
        return tuple(tuple(p) for p in json.loads(truth.read_text())["line"])
    return StreamConfig.model_fields["line"].default


def _serve_config(config: StreamBenchConfig, cameras: int) -> ServeConfig:
    duration_s = _clip_timing(config.source)[1]
    return ServeConfig(
        bundle=config.bundle,
        backend=config.backend,
        precision=config.precision,  # type: ignore[arg-type]
        threads=config.threads,
        workers=config.workers,
        metrics_port=None,
        streams=[
            StreamConfig(
                name=f"cam{i}",
                source=str(config.source),
                mode=config.mode,  # type: ignore[arg-type]
                realtime=True,
                loop=True,
                live=config.live,
                start_s=0.0 if config.in_step else duration_s * i / cameras,
                line=_line(config),
                decoder=config.decoder,  # type: ignore[arg-type]
                motion=MotionConfig(method=config.motion_method),  # type: ignore[arg-type]
            )
            for i in range(cameras)
        ],
    )


def _cpu_seconds(pids: Sequence[int] = ()) -> float:
    """CPU seconds of this process and of the live worker processes `pids`."""
    total = time.process_time()  # this process, all threads, ns resolution (os.times: 10 ms)
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a worker that just exited
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _rss_mb(pids: Sequence[int]) -> float:
    """RSS of this process and of the live worker processes `pids` (one that just exited: 0)."""
    workers = [current_rss_mb(pid) for pid in pids]
    return current_rss_mb() + sum(mb for mb in workers if mb == mb)  # NaN != NaN


def run_load(config: StreamBenchConfig, cameras: int) -> dict[str, Any]:
    """`cameras` paced copies of the clip for warm-up + window; per-camera fps and the rest."""
    fps = _clip_timing(config.source)[0]
    daemon = open_daemon(_serve_config(config, cameras))
    runner = threading.Thread(target=daemon.run, name="bench-daemon", daemon=True)
    runner.start()
    try:
        _wait_for_every_camera(daemon, runner, cameras)
        time.sleep(config.warmup_s)
        pids = daemon.worker_pids()
        frames0, cpu0, t0 = daemon.frame_counts(), _cpu_seconds(pids), time.perf_counter()
        latency0 = daemon.latency_buckets()
        rss = []
        while time.perf_counter() - t0 < config.seconds:
            time.sleep(min(1.0, config.seconds / 10))
            rss.append(_rss_mb(pids))
        elapsed = time.perf_counter() - t0
        frames1, cpu1 = daemon.frame_counts(), _cpu_seconds(pids)
        latency = np.asarray(daemon.latency_buckets()) - np.asarray(latency0)
        health = daemon.health()
    finally:
        daemon.stop()
        runner.join(timeout=60)
    # each camera's frames over the time between its two counts: a worker's count is as of
    # its last report (up to a second old), which over 30 s moved a share by up to 3 %
    per_camera = {
        name: round((frames - frames0[name][0]) / (at - frames0[name][1]), 2)
        if name in frames0 and at > frames0[name][1]
        else 0.0
        for name, (frames, at) in frames1.items()
    }
    worst = min(per_camera.values(), default=0.0)
    return {
        "cameras": cameras,
        "clip_fps": round(fps, 2),
        "per_camera_fps": per_camera,
        "worst_fps": worst,
        "worst_share": round(worst / fps, 3),
        "realtime": worst >= REALTIME_SHARE * fps and len(per_camera) == cameras,
        "cpu_cores_used": round((cpu1 - cpu0) / elapsed, 2),
        "latency_ms": _latency_summary(latency),
        "rss_mb": {"first": round(rss[0], 1), "last": round(rss[-1], 1), "max": round(max(rss), 1)}
        if rss
        else None,
        "errors": {n: s["error"] for n, s in health["streams"].items() if s["error"]},
        "mean_batch": health["mean_batch"],
    }


def _wait_for_every_camera(
    daemon: Any, runner: threading.Thread, cameras: int, timeout_s: float = STARTUP_TIMEOUT_S
) -> None:
    """Until every camera has a frame processed or an error: the warm-up is the cameras', and
    starting worker processes (imports, compiling the model: 1-3 s here) is no camera's time.
    Measured from the daemon's start, 10 highway cameras had 2-3 of the 5 s warm-up left."""
    deadline = time.perf_counter() + timeout_s
    while runner.is_alive() and time.perf_counter() < deadline:
        streams = daemon.health()["streams"]
        started = [s for s in streams.values() if s["frames"] > 0 or s["error"]]
        if len(started) >= cameras:
            return
        time.sleep(0.1)


def _latency_summary(counts: np.ndarray) -> dict[str, Any]:
    """p50/p99 from the daemon's histogram buckets (upper bounds), and the share within 150 ms."""
    total = float(counts[-1]) if len(counts) else 0.0
    if total <= 0:
        return {"frames": 0}
    bounds = [*LATENCY_BUCKETS_MS, float("inf")]

    def quantile(q: float) -> float:
        index = int(np.searchsorted(counts, q * total))
        return bounds[min(index, len(bounds) - 1)]

    within = counts[LATENCY_BUCKETS_MS.index(150)] / total
    return {
        "frames": int(total),
        "p50_le_ms": quantile(0.5),
        "p99_le_ms": quantile(0.99),
        "share_within_150ms": round(float(within), 4),
    }


def find_capacity(config: StreamBenchConfig) -> dict[str, Any]:
    """The largest real-time camera count up to `max_cameras`: double, then bisect."""
    loads: dict[int, dict[str, Any]] = {}

    def trial(n: int) -> bool:
        if n not in loads:
            loads[n] = run_load(config, n)
            load = loads[n]
            print(
                f"{n} cameras: worst {load['worst_fps']:.1f} fps ({load['worst_share']:.0%}), "
                f"{load['cpu_cores_used']:.2f} cores, p99 <= {load['latency_ms'].get('p99_le_ms')} ms"
                f" -> {'real time' if load['realtime'] else 'behind'}",
                flush=True,
            )
        return bool(loads[n]["realtime"])

    good, bad, n = 0, None, 1
    while n <= config.max_cameras:
        if trial(n):
            good, n = n, n * 2
        else:
            bad = n
            break
    if bad is None and good < config.max_cameras:
        if trial(config.max_cameras):
            good = config.max_cameras
        else:
            bad = config.max_cameras
    while bad is not None and bad - good > 1:
        middle = (good + bad) // 2
        if trial(middle):
            good = middle
        else:
            bad = middle
    return {"realtime_cameras": good, "loads": [loads[k] for k in sorted(loads)]}


@dataclass(frozen=True)
class _OneCamera:
    cpu_s: float  # CPU of the whole run, start-up included
    processed: int  # frames
    crops: int  # classified
    analysis_ms: float  # the stream thread's CPU per frame in the processor


def _one_camera(config: StreamBenchConfig, frames: int) -> _OneCamera:
    """One camera through the daemon, unpaced, for `frames` frames of the looped clip."""
    # unpaced and every frame (a live read would pace it and never stop at `frames`)
    serve = _serve_config(replace(config, max_cameras=1, workers=1, live=False), 1)
    serve.streams[0] = serve.streams[0].model_copy(
        update={"realtime": False, "max_frames": frames, "loop": True}
    )
    daemon = Daemon(serve)
    cpu0 = _cpu_seconds()
    daemon.run()
    return _OneCamera(
        cpu_s=_cpu_seconds() - cpu0,
        processed=daemon.frame_counts().get("cam0", (0, 0.0))[0],
        crops=daemon.scheduler.stats.images,
        analysis_ms=daemon.stage_cpu_ms().get("analysis", 0.0),
    )


def cpu_breakdown(config: StreamBenchConfig, frames: int = 300) -> dict[str, float]:
    """CPU milliseconds per camera-second, one camera, measured alone and unpaced: decoding
    (the clip read with nothing else), the whole pipeline, inference (CPU per classified crop ×
    crops per second), analysis (the stream thread's CPU in the processor), and the remainder."""
    fps = _clip_timing(config.source)[0]
    source = open_source(
        str(config.source),
        max_frames=frames,
        loop=True,
        decoder=config.decoder,  # type: ignore[arg-type]
    )
    cpu0 = _cpu_seconds()
    count = sum(1 for _ in track(source, "decode only"))
    decode_ms = (_cpu_seconds() - cpu0) * 1e3 / max(count, 1)

    # two runs, `frames` and 3 × `frames` long: their difference has no start-up in it (the
    # backend's first inferences, opening the clip), which in one 300-frame run read as ~60 ms
    # of "other" per camera-second
    short, long = _one_camera(config, frames), _one_camera(config, 3 * frames)
    processed = max(long.processed - short.processed, 1)
    whole_ms = (long.cpu_s - short.cpu_s) * 1e3 / processed
    crops = max(long.crops - short.crops, 0) / processed
    analysis_ms = long.analysis_ms

    with create_backend(
        Bundle.load(config.bundle),
        config.backend,
        Precision(config.precision),
        config.threads,
        shared_host=True,
    ) as backend:
        batch = backend.example_batch(1)
        backend.warmup()
        cpu0 = _cpu_seconds()
        for _ in range(50):
            backend.infer(batch)
        infer_ms = (_cpu_seconds() - cpu0) * 1e3 / 50
    per_second = {
        "decode": decode_ms * fps,
        "analysis": analysis_ms * fps,
        "inference": infer_ms * crops * fps,
    }
    per_second["other"] = max(0.0, whole_ms * fps - sum(per_second.values()))
    per_second["total"] = whole_ms * fps
    return {k: round(v, 1) for k, v in per_second.items()} | {
        "crops_per_frame": round(crops, 3),
        "decode_bound_cameras": round((os.cpu_count() or 1) * 1000 / (decode_ms * fps), 1)
        if decode_ms > 0
        else None,
    }


def bench_streams(config: StreamBenchConfig, breakdown: bool = True) -> dict[str, Any]:
    """The whole capacity benchmark: the search, then the per-camera CPU breakdown."""
    capacity = find_capacity(config)
    return {
        "source": str(config.source),
        "mode": config.mode,
        "backend": config.backend,
        "precision": config.precision,
        "threads": config.threads,
        "workers": config.workers,
        "decoder": resolve_decoder(config.decoder),  # type: ignore[arg-type]
        "motion_method": config.motion_method,
        "live": config.live,
        "in_step": config.in_step,
        "seconds": config.seconds,
        "warmup_s": config.warmup_s,
        **capacity,
        "cpu_ms_per_camera_second": cpu_breakdown(config) if breakdown else None,
        "system": system_info(),
    }


def to_markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Cameras per box: {Path(result['source']).name}, {result['mode']} mode",
        "",
        f"- machine: {result['system']['cpu']}, {result['system']['cores_usable']} usable cores",
        f"- backend: {result['backend']} {result['precision']}, threads "
        f"{result['threads'] or 'default'}; workers: {result['workers']}; window {result['seconds']} s "
        f"after every camera's first frame and {result['warmup_s']} s of warm-up; real time = >= 95 % of the clip's "
        f"{result['loads'][0]['clip_fps']} fps",
        f"- motion: {result.get('motion_method', 'mog2 (before the option)')} background model",
        "- copies read as cameras are (`--live`): a camera behind skips frames; latency from "
        "each frame's arrival"
        if result.get("live")
        else "- copies paced but never skipped: a camera behind works through a backlog, which "
        "shows as latency (`--live` reads them as cameras are)",
        "- every copy starts at the clip's start (`--in-step`): the cameras' busy moments coincide"
        if result.get("in_step")
        else "- copy k of N starts k/N of the way into the clip, as independent cameras would",
        f"- **{result['realtime_cameras']} real-time cameras**",
        "",
        "| cameras | worst camera fps | share | cores used | p50 <= ms | p99 <= ms | within 150 ms | RSS MB first/last | real time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for load in result["loads"]:
        lat, rss = load["latency_ms"], load["rss_mb"] or {}
        lines.append(
            f"| {load['cameras']} | {load['worst_fps']:.1f} | {load['worst_share']:.0%} | "
            f"{load['cpu_cores_used']:.2f} | {lat.get('p50_le_ms', '-')} | {lat.get('p99_le_ms', '-')} | "
            f"{lat.get('share_within_150ms', 0):.1%} | {rss.get('first', '-')}/{rss.get('last', '-')} | "
            f"{'yes' if load['realtime'] else 'no'} |"
        )
    breakdown = result.get("cpu_ms_per_camera_second")
    if breakdown:
        lines += [
            "",
            "CPU per camera-second (one camera alone, unpaced, ms of one core per second of video):",
            "",
            "| decode | analysis (camera motion, motion, tracking, crops, events) | inference | other | total | crops/frame | decode-only bound (cameras) |",
            "|---|---|---|---|---|---|---|",
            f"| {breakdown['decode']} | {breakdown['analysis']} | {breakdown['inference']} | "
            f"{breakdown['other']} | {breakdown['total']} | {breakdown['crops_per_frame']} | "
            f"{breakdown['decode_bound_cameras'] or '-'} |",
        ]
    return "\n".join(lines) + "\n"
