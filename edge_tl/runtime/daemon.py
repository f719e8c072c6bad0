"""`edge-tl serve CONFIG`: several streams in one process, one shared batching backend, sinks,
Prometheus metrics and /healthz; SIGTERM/SIGINT stop sources, flush sinks and exit 0.

The config (TOML, or YAML when PyYAML is installed) is validated with pydantic: an unknown or
misspelt field is an error that names the field and the file.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_tl.bundle import Bundle, Precision
from edge_tl.errors import EdgeTLError
from edge_tl.runtime.backends import create_backend
from edge_tl.runtime.classify import Classifier
from edge_tl.runtime.metrics import DaemonMetrics, serve_http
from edge_tl.runtime.motion import MotionConfig
from edge_tl.runtime.pipeline import StreamProcessor, StreamSettings
from edge_tl.runtime.scheduler import BatchScheduler
from edge_tl.runtime.sinks import AnnotatedVideoSink, CountsSink, JsonlSink, MqttSink, Sink
from edge_tl.runtime.sources import Backoff, LiveSource, SourceState, SourceStats, open_source

__all__ = ["ServeConfig", "StreamConfig", "load_config", "Daemon"]

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MotionSection(_Strict):
    method: Literal["mog2", "knn"] = "mog2"
    width: int = Field(default=320, ge=64)
    min_area: float = Field(default=0.002, gt=0, lt=1)
    warmup_frames: int = Field(default=10, ge=0)


class StreamConfig(_Strict):
    name: str
    source: str  # file, folder, camera index, /dev/videoN, rtsp://..., gst:PIPELINE
    mode: Literal["frame", "roi", "motion"] = "motion"
    realtime: bool = False  # files: pace at the file's fps instead of as fast as possible
    stride: int = Field(default=1, ge=1)
    max_fps: float | None = Field(default=None, gt=0)
    smoothing: float = Field(default=0.5, gt=0, le=1)
    rois: list[tuple[float, float, float, float]] = Field(default_factory=list)
    line: tuple[tuple[float, float], tuple[float, float]] = ((0.5, 0.0), (0.5, 1.0))
    motion: MotionSection = Field(default_factory=MotionSection)
    annotated_video: Path | None = None
    stall_timeout_s: float = Field(default=5.0, gt=0)
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)


class MqttSection(_Strict):
    host: str
    port: int = 1883
    topic: str = "edge-tl"


class ServeConfig(_Strict):
    bundle: Path
    backend: str = "auto"
    precision: Precision = Precision.FP32
    threads: int | None = Field(default=None, ge=1)
    max_batch: int = Field(default=8, ge=1)
    max_wait_ms: float = Field(default=5.0, ge=0)
    events: Path | None = None  # JSON Lines of every event
    counts: Path | None = None  # periodic per-class counts
    counts_interval_s: float = Field(default=60.0, gt=0)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=9108, ge=0, le=65535)  # None: no HTTP endpoint
    mqtt: MqttSection | None = None
    streams: list[StreamConfig] = Field(min_length=1)


def load_config(path: Path) -> ServeConfig:
    if not path.is_file():
        raise EdgeTLError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            from edge_tl._deps import require

            raw = require("yaml", "serve").safe_load(text)
        else:
            raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EdgeTLError(f"{path}: not valid TOML ({exc})") from exc
    except Exception as exc:  # yaml.YAMLError and friends
        if isinstance(exc, EdgeTLError):
            raise
        raise EdgeTLError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    try:
        config = ServeConfig.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        message = "unknown field (typo?)" if first["type"] == "extra_forbidden" else first["msg"]
        raise EdgeTLError(f"{path}: field '{where}': {message}") from exc
    names = [s.name for s in config.streams]
    if len(set(names)) != len(names):
        raise EdgeTLError(
            f"{path}: field 'streams': stream names must be unique ({', '.join(names)})"
        )
    base = path.parent
    config.bundle = config.bundle if config.bundle.is_absolute() else base / config.bundle
    return config


class Daemon:
    """Runs every stream in its own thread until stopped; one bad stream never stops the others."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.bundle = Bundle.load(config.bundle)
        self.backend = create_backend(
            self.bundle, config.backend, config.precision, config.threads
        ).open()
        self.scheduler = BatchScheduler(
            Classifier(self.backend, self.bundle.labels), config.max_batch, config.max_wait_ms
        )
        self.sinks: list[Sink] = []
        if config.events:
            self.sinks.append(JsonlSink(config.events))
        if config.counts:
            self.sinks.append(CountsSink(config.counts, config.counts_interval_s))
        if config.mqtt:
            self.sinks.append(MqttSink(config.mqtt.host, config.mqtt.port, config.mqtt.topic))
        self.metrics = DaemonMetrics()
        self.stop_event = threading.Event()
        self.sources: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.frames: dict[str, int] = {}
        self._threads: list[threading.Thread] = []
        self._video_sinks: dict[str, AnnotatedVideoSink] = {}
        self._lock = threading.Lock()
        self._http = None

    def health(self) -> dict[str, Any]:
        streams = {}
        for stream in self.config.streams:
            name, source = stream.name, self.sources.get(stream.name)
            if source is None:
                state = "failed" if name in self.errors else "connecting"
            else:
                state = (
                    source.current_state() if isinstance(source, LiveSource) else source.state
                ).value
            streams[name] = {
                "state": state,
                "frames": self.frames.get(name, 0),
                "error": self.errors.get(name),
            }
        ok = bool(streams) and all(
            s["state"] in ("live", "stopped") and not s["error"] for s in streams.values()
        )
        return {
            "ok": ok,
            "streams": streams,
            "backend": self.backend.describe(),
            "mean_batch": round(self.scheduler.stats.mean_batch, 2),
        }

    def run(self) -> int:
        if self.config.metrics_port is not None:
            self._http = serve_http(
                self.config.metrics_host, self.config.metrics_port, self.metrics, self.health
            )
            log.info(
                "metrics on http://%s:%d/metrics",
                self.config.metrics_host,
                self._http.server_address[1],
            )
        for stream in self.config.streams:
            thread = threading.Thread(
                target=self._run_stream, args=(stream,), name=f"stream-{stream.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        while not self.stop_event.is_set() and any(t.is_alive() for t in self._threads):
            self.stop_event.wait(1.0)
            self.metrics.batch.set(self.scheduler.stats.mean_batch)
        self.shutdown()
        return 0

    def stop(self, *_: Any) -> None:
        log.info("stopping: closing sources and flushing sinks")
        self.stop_event.set()

    def shutdown(self) -> None:
        self.stop_event.set()
        for source in list(self.sources.values()):
            source.close()
        for thread in self._threads:
            thread.join(timeout=10)
        self.scheduler.close()
        for sink in [*self.sinks, *self._video_sinks.values()]:
            sink.close()
        self.backend.close()
        if self._http is not None:
            self._http.shutdown()

    def _run_stream(self, stream: StreamConfig) -> None:
        try:
            source = open_source(
                stream.source,
                name=stream.name,
                stride=stream.stride,
                realtime=stream.realtime,
                max_fps=stream.max_fps,
                stall_timeout_s=stream.stall_timeout_s,
                backoff=Backoff(initial_s=stream.reconnect_initial_s, max_s=stream.reconnect_max_s),
            )
        except EdgeTLError as exc:
            self.errors[stream.name] = str(exc)
            log.error("stream %s: %s", stream.name, exc)
            return
        self.sources[stream.name] = source
        settings = StreamSettings(
            name=stream.name,
            mode=stream.mode,
            smoothing=stream.smoothing,
            rois=tuple(stream.rois),
            line=stream.line,
            motion=MotionConfig(
                method=stream.motion.method,
                width=stream.motion.width,
                min_area=stream.motion.min_area,
                warmup_frames=stream.motion.warmup_frames,
            ),
        )
        processor = StreamProcessor(settings, self.scheduler, self.bundle.labels)
        video = (
            AnnotatedVideoSink(stream.annotated_video, source.fps or 15.0)
            if stream.annotated_video
            else None
        )
        if video:
            self._video_sinks[stream.name] = video
        window_start, window_frames = time.time(), 0
        seen = {"reconnects": 0, "dropped": 0}
        try:
            for frame in source:
                if self.stop_event.is_set():
                    break
                events = list(processor.process(frame))
                # per frame, whatever the mode: motion mode emits events only on line crossings
                self.metrics.latency.labels(stream.name).observe(
                    (time.time() - frame.captured_at) * 1e3
                )
                self.frames[stream.name] = self.frames.get(stream.name, 0) + 1
                self.metrics.frames.labels(stream.name).inc()
                for event in events:
                    self.metrics.events.labels(stream.name, event["kind"], event["class"]).inc()
                    for sink in self.sinks:
                        sink.emit(event)
                if video:
                    video.frame(stream.name, frame.image, events)
                window_frames += 1
                now = time.time()
                if now - window_start >= 2.0:
                    self.metrics.fps.labels(stream.name).set(window_frames / (now - window_start))
                    window_start, window_frames = now, 0
                self._sync_counters(stream.name, source.stats, seen)
                self.metrics.state.labels(stream.name).set(
                    1 if source.state == SourceState.LIVE else 0
                )
        except Exception as exc:  # one broken stream is reported, the others keep running
            self.errors[stream.name] = f"{type(exc).__name__}: {exc}"
            log.exception("stream %s failed", stream.name)
        finally:
            self._sync_counters(stream.name, source.stats, seen)
            self.metrics.state.labels(stream.name).set(0)

    def _sync_counters(self, name: str, stats: SourceStats, seen: dict[str, int]) -> None:
        """Advance the Prometheus counters by what the source counted since the last call."""
        for key, counter, value in (
            ("reconnects", self.metrics.reconnects, stats.reconnects),
            ("dropped", self.metrics.dropped, stats.frames_dropped),
        ):
            if value > seen[key]:
                counter.labels(name).inc(value - seen[key])
                seen[key] = value


def serve(config_path: Path) -> dict[str, Any]:
    """Run until SIGTERM/SIGINT (or until every file stream has ended); returns the final health."""
    daemon = Daemon(load_config(config_path))
    previous = {sig: signal.signal(sig, daemon.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        daemon.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    report = daemon.health()
    log.info("final state: %s", json.dumps(report))
    return report
