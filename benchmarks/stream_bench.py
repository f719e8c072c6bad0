"""Stream-level benchmarks (the stream issue's targets), written to benchmarks/results/.

    python benchmarks/stream_bench.py BUNDLE VIDEO_720P OUT_STEM [--minutes 5]

A. One 720p file stream, whole-frame classification with ONNX Runtime: end-to-end frames/s
   (decode + preprocess + infer + postprocess) against the bare model's batch-1 throughput
   measured in the same run, with and without a decode-ahead thread.
B. Four live RTSP streams (a real gst-rtsp-server on 127.0.0.1, 640x360 at 15 fps each) in
   motion mode through the daemon for N minutes: capture-to-result latency p99 per minute and
   resident memory over time.
C. Outage: the RTSP server is killed and restarted; seconds until each stream delivers again.
Needs ../shared/data/videos for A (never committed) and Debian's gst-rtsp-server for B and C.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl.bench.rtsp_server import start_rtsp_server, test_pattern_launch
from edge_tl.bench.system import current_rss_mb, system_info
from edge_tl.bundle import Bundle
from edge_tl.runtime.backends import create_backend
from edge_tl.runtime.classify import Classifier
from edge_tl.runtime.config import ServeConfig, StreamConfig
from edge_tl.runtime.daemon import Daemon
from edge_tl.runtime.sinks import Sink
from edge_tl.runtime.sources import VideoFileSource
from edge_tl.timing import time_calls


def single_stream(bundle: Bundle, video: Path) -> dict[str, Any]:
    with create_backend(bundle, "onnxruntime") as backend:
        batch = backend.example_batch(1)
        model_ms = float(np.median(time_calls(backend.infer, batch, 20, 300)))
        classifier = Classifier(backend, bundle.labels)
        runs = {}
        for prefetch in (0, 4):
            t0 = time.perf_counter()
            frames = 0
            for frame in VideoFileSource(video, prefetch=prefetch):
                classifier.classify([frame.image])
                frames += 1
            runs[f"prefetch={prefetch}"] = {
                "frames": frames,
                "fps": frames / (time.perf_counter() - t0),
            }
    model_fps = 1e3 / model_ms
    return {
        "video": video.name,
        "model_batch1_p50_ms": round(model_ms, 3),
        "model_batch1_fps": round(model_fps, 1),
        "end_to_end": {
            k: {
                "frames": v["frames"],
                "fps": round(v["fps"], 1),
                "share_of_model": round(v["fps"] / model_fps, 3),
            }
            for k, v in runs.items()
        },
    }


class _LatencyRecorder(Sink):
    def __init__(self) -> None:
        self.samples: list[tuple[float, str, float]] = []
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.samples.append(
                (time.time(), event["stream"], event["latency_ms"]["capture_to_result"])
            )


def four_streams(bundle_path: Path, minutes: float) -> dict[str, Any]:
    port = 8554 + int(time.time()) % 500
    server = _start_server(port)
    config = ServeConfig(
        bundle=bundle_path,
        metrics_port=None,
        max_batch=8,
        max_wait_ms=5,
        streams=[
            StreamConfig(
                name=f"cam{i}",
                source=f"rtsp://127.0.0.1:{port}/cam{i}",
                mode="frame",
                reconnect_initial_s=0.2,
                reconnect_max_s=1.0,
            )
            for i in range(4)
        ],
    )
    daemon = Daemon(config)
    recorder = _LatencyRecorder()
    daemon.sinks.append(recorder)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    rss: list[tuple[float, float]] = []
    started = time.time()
    try:
        while time.time() - started < minutes * 60:
            time.sleep(10)
            rss.append((time.time() - started, current_rss_mb()))
        frames_before = dict(daemon.frames)
        server.send_signal(signal.SIGKILL)
        server.wait()
        time.sleep(3)
        stalled = dict(daemon.frames)
        server = _start_server(port)
        restarted = time.time()
        recovery: dict[str, float | None] = dict.fromkeys(stalled, None)
        while time.time() - restarted < 30 and any(v is None for v in recovery.values()):
            for name, count in daemon.frames.items():
                if recovery.get(name, 0) is None and count > stalled[name]:
                    recovery[name] = round(time.time() - restarted, 2)
            time.sleep(0.05)
    finally:
        daemon.stop()
        runner.join(timeout=30)
        server.kill()
    per_minute = []
    for minute in range(int(np.ceil(minutes))):
        window = [
            lat for t, _, lat in recorder.samples if minute * 60 <= t - started < (minute + 1) * 60
        ]
        if window:
            per_minute.append(
                {
                    "minute": minute + 1,
                    "events": len(window),
                    "p50_ms": round(float(np.percentile(window, 50)), 2),
                    "p99_ms": round(float(np.percentile(window, 99)), 2),
                }
            )
    after_warmup = [m for t, m in rss if t >= 60] or [m for _, m in rss]
    return {
        "streams": 4,
        "minutes": minutes,
        "frames": frames_before,
        "mean_batch": round(daemon.scheduler.stats.mean_batch, 2),
        "latency_per_minute": per_minute,
        "rss_mb": [{"t_s": round(t), "rss_mb": round(m, 1)} for t, m in rss],
        "rss_growth_after_warmup": round(after_warmup[-1] / after_warmup[0] - 1, 4)
        if after_warmup
        else None,
        "dropped_frames": {
            name: source.stats.frames_dropped for name, source in daemon.sources.items()
        },
        "outage_recovery_s": recovery,
    }


def _start_server(port: int) -> subprocess.Popen[str]:
    patterns = ["ball", "snow", "ball", "smpte"]
    return start_rtsp_server(
        port, {f"/cam{i}": test_pattern_launch(p, 640, 360, 15) for i, p in enumerate(patterns)}
    )


def main() -> None:
    bundle_path, video, stem = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    minutes = float(sys.argv[sys.argv.index("--minutes") + 1]) if "--minutes" in sys.argv else 5.0
    bundle = Bundle.load(bundle_path)
    result = {
        "system": system_info(),
        "bundle": str(bundle_path),
        "model": bundle.manifest.model.backbone,
        "input": f"{bundle.input_spec.height}x{bundle.input_spec.width}",
    }
    result["single_720p_stream"] = single_stream(bundle, video)
    print(json.dumps(result["single_720p_stream"]), flush=True)
    result["four_rtsp_streams"] = four_streams(bundle_path, minutes)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["four_rtsp_streams"], indent=1))


if __name__ == "__main__":
    main()
