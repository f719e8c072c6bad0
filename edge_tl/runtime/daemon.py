"""`edge-tl serve CONFIG`: several streams in one process, one shared batching backend, sinks,
Prometheus metrics and /healthz; SIGTERM/SIGINT stop sources, flush sinks and exit 0.

`edge-tl stream` is the same daemon with one file stream and a JSON Lines sink: one code path
for a stream, whichever command runs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from edge_tl.bundle import MANIFEST_NAME, Bundle, Precision
from edge_tl.errors import EdgeTLError, SourceError
from edge_tl.runtime.backends import create_backend
from edge_tl.runtime.backends.base import Backend
from edge_tl.runtime.classify import Classifier
from edge_tl.runtime.config import ServeConfig, StreamConfig, load_config
from edge_tl.runtime.harvest import TRACKS_FILE
from edge_tl.runtime.processor import StreamProcessor
from edge_tl.runtime.prometheus import DaemonMetrics, serve_http
from edge_tl.runtime.scheduler import BatchScheduler
from edge_tl.runtime.sinks import (
    AnnotatedVideoSink,
    CountsSink,
    JsonlSink,
    MqttSink,
    Sink,
    SummarySink,
)
from edge_tl.runtime.sources import (
    Backoff,
    Source,
    SourceState,
    SourceStats,
    check_file_source,
    open_source,
)

__all__ = ["Daemon", "serve", "stream_source", "build_sinks"]

log = logging.getLogger(__name__)

# stream threads (decode, motion, tracking) run this much below the inference thread that
# serves them all: at equal priority the one inference thread got a 1/N share like each
# camera's threads, its queue grew and cameras waited up to 0.5 s for their votes (8 live
# 720p cameras on 2 cores: 273 waits, 38 s in all over 35 s; with +10, 9 waits, 0.5 s)
STREAM_NICE = 10


def build_sinks(config: ServeConfig) -> list[Sink]:
    """The config's sinks; if one cannot be created, the ones already made are closed."""
    sinks: list[Sink] = []
    try:
        if config.events:
            sinks.append(JsonlSink(config.events))
        if config.counts:
            sinks.append(CountsSink(config.counts, config.counts_interval_s))
        if config.mqtt:
            mqtt = config.mqtt
            sinks.append(
                MqttSink(
                    mqtt.host, mqtt.port, mqtt.topic, tuple(mqtt.kinds), mqtt.queue, mqtt.client_id
                )
            )
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


class Daemon:
    """Runs every stream in its own thread until stopped; one bad stream never stops the others.

    Construction opens what can fail cheaply first (bundle, sinks) and the backend last; if
    anything fails, whatever was opened is closed again.
    """

    def __init__(self, config: ServeConfig, extra_sinks: Sequence[Sink] = ()) -> None:
        self.config = config
        self.bundle = Bundle.load(config.bundle)
        self.bundle_sha256 = bundle_digest(self.bundle)  # of the bundle serving, for /healthz
        self.metrics = DaemonMetrics()
        self.stop_event = threading.Event()
        self.sources: dict[str, Source] = {}
        self.errors: dict[str, str] = {}
        self.frames: dict[str, int] = {}
        self.started_at = time.perf_counter()
        self._threads: list[threading.Thread] = []
        self._video_sinks: dict[str, AnnotatedVideoSink] = {}
        self._http = None
        self._processors: dict[str, StreamProcessor] = {}
        self._reload_lock = threading.Lock()
        self.sinks: list[Sink] = [*build_sinks(config), *extra_sinks]
        try:
            self.backend: Backend = self._open_backend(self.bundle)
            self.backend_description = self.backend.describe()  # what ran, also after close
            self.scheduler = BatchScheduler(
                Classifier(self.backend, self.bundle.labels, config.top_k),
                config.max_batch,
                config.max_wait_ms,
            )
        except BaseException:
            if getattr(self, "backend", None) is not None:
                self.backend.close()
            for sink in self.sinks:
                sink.close()
            raise

    def _open_backend(self, bundle: Bundle) -> Backend:
        """The configured backend for `bundle`, opened and ready for every batch size the
        scheduler makes; its threads share the cores with the streams' decoding, so they must
        not spin."""
        config = self.config
        backend = create_backend(
            bundle, config.backend, config.precision, config.threads, shared_host=True
        ).open()
        try:
            if backend.prepares_per_shape:
                for size in range(1, config.max_batch + 1):
                    backend.warmup(iterations=1, batch_size=size)
        except BaseException:
            backend.close()
            raise
        return backend

    def reload(self) -> tuple[bool, str]:
        """Load the bundle at the configured path again (SIGHUP, POST /reload): checked beside
        the one serving, swapped between batches, no stream restarted. A bundle that fails its
        checks or has other labels is refused and the old one keeps serving."""
        with self._reload_lock:
            try:
                bundle = Bundle.load(self.config.bundle)  # every artifact's sha256 checked
                digest = bundle_digest(bundle)
                if bundle.labels != self.bundle.labels:
                    raise EdgeTLError(
                        f"labels {bundle.labels} differ from the serving bundle's "
                        f"{self.bundle.labels}; counts per class would not add up: restart instead"
                    )
                backend = self._open_backend(bundle)
            except Exception as exc:
                self.metrics.reloads.labels("refused").inc()
                message = f"reload refused: {exc}; still serving {self.bundle_sha256[:12]}"
                log.error("%s", message)
                return False, message
            previous = self.scheduler.swap(Classifier(backend, bundle.labels, self.config.top_k))
            previous.backend.close()
            self.bundle, self.backend, self.bundle_sha256 = bundle, backend, digest
            self.backend_description = backend.describe()
            for processor in self._processors.values():
                processor.use_reference(bundle.manifest.reference)
            self.metrics.reloads.labels("ok").inc()
            message = f"reloaded {bundle.path} ({digest[:12]}) on {self.backend_description}"
            log.info("%s", message)
            return True, message

    def health(self) -> dict[str, Any]:
        streams = {}
        for stream in self.config.streams:
            name, source = stream.name, self.sources.get(stream.name)
            processor = self._processors.get(name)
            if source is None:
                state = "failed" if name in self.errors else "connecting"
            elif processor is not None and processor.remote_down and self._remote_down():
                state = "remote_down"  # frames flow; classifications wait for the server
            else:
                state = source.state().value
            streams[name] = {
                "state": state,
                "frames": self.frames.get(name, 0),
                "error": self.errors.get(name),
            }
        return {
            "ok": streams_ok(streams),
            "streams": streams,
            "backend": self.backend_description,
            "bundle": {"path": str(self.bundle.path), "sha256": self.bundle_sha256},
            "mean_batch": round(self.scheduler.stats.mean_batch, 2),
            "remote_down": self._remote_down(),
            "mqtt": mqtt_stats(self.sinks),
        }

    def frame_counts(self) -> dict[str, tuple[int, float]]:
        """Frames processed so far per stream and when they were counted (wall clock), for
        benchmarks."""
        now = time.time()
        return {name: (frames, now) for name, frames in self.frames.items()}

    def latency_buckets(self) -> list[float]:
        """Cumulative capture-to-result counts over every stream, one per histogram bucket."""
        return self.metrics.latency_cumulative()

    def stage_cpu_ms(self) -> dict[str, float]:
        """CPU ms per frame of the stream threads' own stages, averaged over the streams."""
        totals: dict[str, list[float]] = {}
        for processor in self._processors.values():
            for stage, ms in processor.cpu_ms_per_frame().items():
                totals.setdefault(stage, []).append(ms)
        return {stage: sum(v) / len(v) for stage, v in totals.items()}

    def worker_pids(self) -> list[int]:
        """None: everything runs in this process (WorkerPool lists its workers)."""
        return []

    def _remote_down(self) -> bool:
        return bool(getattr(self.backend, "down", False))

    def run(self) -> int:
        try:
            self._http = start_endpoints(self.config, self.metrics, self.health, self.reload)
            for stream in self.config.streams:
                thread = threading.Thread(
                    target=self._run_stream,
                    args=(stream,),
                    name=f"stream-{stream.name}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
            while not self.stop_event.is_set() and any(t.is_alive() for t in self._threads):
                self.stop_event.wait(1.0)
                self.metrics.batch.set(self.scheduler.stats.mean_batch)
                self.metrics.remote_down.set(1 if self._remote_down() else 0)
        finally:
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
            self._http = None

    def _run_stream(self, stream: StreamConfig) -> None:
        _lower_priority(STREAM_NICE)  # before the source starts its reader thread: it inherits it
        try:
            source = open_source(
                stream.source,
                name=stream.name,
                stride=stream.stride,
                max_frames=stream.max_frames,
                realtime=stream.realtime,
                max_fps=stream.max_fps,
                stall_timeout_s=stream.stall_timeout_s,
                backoff=Backoff(initial_s=stream.reconnect_initial_s, max_s=stream.reconnect_max_s),
                loop=stream.loop,
                decoder=stream.decoder,
                live=stream.live,
                max_lag_s=stream.max_lag_ms / 1e3,
                start_s=stream.start_s,
            )
        except EdgeTLError as exc:
            self.errors[stream.name] = str(exc)
            log.error("stream %s: %s", stream.name, exc)
            return
        self.sources[stream.name] = source
        processor = StreamProcessor(
            stream,
            self.scheduler,
            self.bundle.labels,
            self.config.top_k,
            self.bundle.manifest.reference,
        )
        self._processors[stream.name] = processor
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
                self._emit(stream.name, events)
                if video:
                    video.frame(stream.name, frame.image, events)
                window_frames += 1
                now = time.time()
                if now - window_start >= 2.0:
                    self.metrics.fps.labels(stream.name).set(window_frames / (now - window_start))
                    if processor.drift is not None:
                        self.metrics.set_drift(stream.name, processor.drift.status())
                    if processor.harvester is not None:
                        self.metrics.harvest_failures.labels(stream.name).set(
                            processor.harvester.failures
                        )
                    window_start, window_frames = now, 0
                self._sync_counters(stream.name, source.stats, seen)
                self.metrics.state.labels(stream.name).set(
                    1 if source.state() == SourceState.LIVE else 0
                )
            self._emit(stream.name, list(processor.finish()))  # counts still being classified
        except Exception as exc:  # one broken stream is reported, the others keep running
            self.errors[stream.name] = f"{type(exc).__name__}: {exc}"
            log.exception("stream %s failed", stream.name)
        finally:
            self._sync_counters(stream.name, source.stats, seen)
            self.metrics.state.labels(stream.name).set(0)

    def _emit(self, stream: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.metrics.count_event(stream, event)
            for sink in self.sinks:
                sink.emit(event)

    def _sync_counters(self, name: str, stats: SourceStats, seen: dict[str, int]) -> None:
        """Advance the Prometheus counters by what the source counted since the last call."""
        for key, counter, value in (
            ("reconnects", self.metrics.reconnects, stats.reconnects),
            ("dropped", self.metrics.dropped, stats.frames_dropped),
        ):
            if value > seen[key]:
                counter.labels(name).inc(value - seen[key])
                seen[key] = value


def _lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by `nice` (Linux: per thread; threads it starts
    inherit it). Not allowed or not supported: it runs at the process's priority."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (AttributeError, OSError) as exc:
        log.debug("thread priority unchanged: %s", exc)


@contextlib.contextmanager
def _stop_on_signals(daemon: Any):  # type: ignore[no-untyped-def]
    """SIGTERM/SIGINT stop the daemon; SIGHUP reloads its bundle (on a thread: loading takes
    a while and a signal handler must return at once)."""
    previous = {sig: signal.signal(sig, daemon.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(
        signal.SIGHUP,
        lambda *_: threading.Thread(target=daemon.reload, name="reload", daemon=True).start(),
    )
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def open_daemon(config: ServeConfig, extra_sinks: Sequence[Sink] = ()) -> Any:
    """The daemon for `config`: one process, or a WorkerPool when `workers` > 1 (both have
    run, stop, reload, health, frame_counts, latency_buckets and worker_pids)."""
    if config.workers > 1:
        from edge_tl.runtime.workers import WorkerPool

        return WorkerPool(config, extra_sinks)
    return Daemon(config, extra_sinks)


def start_endpoints(
    config: ServeConfig,
    metrics: DaemonMetrics,
    health: Callable[[], dict[str, Any]],
    reload: Callable[[], tuple[bool, str]],
) -> Any:
    """Every stream's series at 0 from the start, and /metrics, /healthz and POST /reload when
    a port is configured (the HTTP server, or None); a port in use is a one-line error."""
    for stream in config.streams:
        metrics.declare_stream(stream.name)
    if config.metrics_port is None:
        return None
    host, port = config.metrics_host, config.metrics_port
    try:
        server = serve_http(host, port, metrics, health, reload)
    except OSError as exc:
        raise EdgeTLError(
            f"metrics_port {port} on {host}: {exc.strerror or exc} (another "
            "process holds it? choose another metrics_port)"
        ) from None
    log.info("metrics on http://%s:%d/metrics", host, server.server_address[1])
    return server


def streams_ok(streams: dict[str, dict[str, Any]]) -> bool:
    """/healthz's verdict: every stream live (or done) and none failed."""
    return bool(streams) and all(
        s["state"] in ("live", "stopped") and not s["error"] for s in streams.values()
    )


def mqtt_stats(sinks: Sequence[Sink]) -> dict[str, int] | None:
    return next((s.stats() for s in sinks if isinstance(s, MqttSink)), None)


def bundle_digest(bundle: Bundle) -> str:
    """sha256 of the bundle's manifest, which holds every artifact's sha256: one hash that
    changes when anything in the bundle does (shown in /healthz)."""
    return hashlib.sha256((bundle.path / MANIFEST_NAME).read_bytes()).hexdigest()


def serve(config: Path | ServeConfig, extra_sinks: Sequence[Sink] = ()) -> dict[str, Any]:
    """Run until SIGTERM/SIGINT (or until every file stream has ended); returns the final health."""
    daemon = open_daemon(
        config if isinstance(config, ServeConfig) else load_config(config), extra_sinks
    )
    with _stop_on_signals(daemon):
        daemon.run()
    report = daemon.health()
    log.info("final state: %s", json.dumps(report))
    return report


def run_one_stream(
    bundle: Path,
    stream: StreamConfig,
    sinks: Sequence[Sink],
    backend: str = "auto",
    precision: Precision = Precision.FP32,
    threads: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The daemon with one stream (a clip or a camera) and the given sinks, run to the end:
    what `stream`, `harvest` and `eval-counts` share. Returns the final health and the
    stream's state; a stream that failed raises its error."""
    config = ServeConfig(
        bundle=bundle,
        backend=backend,
        precision=precision,
        threads=threads,
        max_wait_ms=0,  # one stream: nobody to wait for
        metrics_port=None,
        streams=[stream],
    )
    health = serve(config, sinks)
    state = health["streams"][stream.name]
    if state["error"]:
        raise SourceError(state["error"])
    return health, state


def stream_source(
    bundle: Path,
    source: str,
    out: Path | None = None,
    stdout: IO[str] | None = None,
    backend: str = "auto",
    precision: Precision = Precision.FP32,
    threads: int | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    mode: str = "frame",
    smoothing: float = 1.0,
) -> dict[str, Any]:
    """`edge-tl stream`: the daemon with one stream and a JSON Lines sink (a file that appears
    whole at the end, or `stdout`); returns the run's summary."""
    stream = StreamConfig(
        name=Path(source).stem or source,
        source=source,
        mode=mode,  # type: ignore[arg-type]
        smoothing=smoothing,
        stride=stride,
        max_frames=max_frames,
    )
    Bundle.load(bundle, verify=False)  # a missing bundle fails before the events file opens
    check_file_source(source)
    events = JsonlSink(out, atomic=True) if out is not None else JsonlSink(out=stdout)
    summary = SummarySink()
    started = time.perf_counter()
    try:
        health, state = run_one_stream(
            bundle, stream, [events, summary], backend, precision, threads
        )
    except BaseException:
        events.discard()
        raise
    seconds = time.perf_counter() - started
    return {
        "source": source,
        "backend": health["backend"],
        "frames": state["frames"],
        "seconds": round(seconds, 3),
        "fps": round(state["frames"] / seconds, 2) if seconds else 0.0,
        **summary.as_dict(),
    }


def harvest_source(
    bundle: Path,
    source: str,
    out: Path,
    line: tuple[tuple[float, float], tuple[float, float]] | None = None,
    stream: dict[str, Any] | None = None,
    backend: str = "auto",
    threads: int | None = None,
) -> dict[str, Any]:
    """`edge-tl harvest`: the motion pipeline on one clip or camera, every counted track's
    crops and line written under `out` (runtime/harvest.py); returns what was harvested."""
    check_file_source(source)
    name = Path(source).stem or source
    settings: dict[str, Any] = {"mode": "motion", "harvest": out} | (stream or {})
    if line is not None:
        settings["line"] = line
    counted = SummarySink()
    _, state = run_one_stream(
        bundle,
        StreamConfig(name=name, source=source, **settings),
        [counted],
        backend,
        threads=threads,
    )
    tracks = out / TRACKS_FILE
    lines = tracks.read_text(encoding="utf-8").splitlines() if tracks.is_file() else []
    return {
        "source": source,
        "frames": state["frames"],
        "tracks_file": str(tracks),
        "tracks": sum(json.loads(x)["stream"] == name for x in lines),
        "class_counts": counted.as_dict()["class_counts"],
    }
