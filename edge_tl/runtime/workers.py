"""`workers = N` in the daemon's config: the streams split over N worker processes, each a
Daemon of its own (its share of the cameras, its own backend and batching), so Python's GIL
no longer serialises every camera's decoding, motion detection and tracking in one process.

The parent owns what must be one per box: the sinks (JSON Lines, counts, MQTT), Prometheus
/metrics and /healthz, reload. Workers send it their events and, every second, their health;
a worker that dies is started again (counted in `edge_tl_worker_restarts_total` and /healthz)
while the others keep running; a parent that dies (SIGKILL, the OOM killer) takes its workers
with it within a second or two, instead of leaving them decoding with nobody to read them.
SIGTERM stops the workers first (each flushes its own annotated videos and harvests), then the
parent drains the last events into the sinks.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

from edge_tl.runtime.config import ServeConfig
from edge_tl.runtime.daemon import Daemon, build_sinks, mqtt_stats, start_endpoints, streams_ok
from edge_tl.runtime.prometheus import DaemonMetrics
from edge_tl.runtime.sinks import Sink

__all__ = ["WorkerPool"]

log = logging.getLogger(__name__)

_HEALTH_INTERVAL_S = 1.0
_RELOAD_TIMEOUT_S = 120.0
_POLL_S = 0.01  # the parent's wait between passes over the workers' event queues


class _QueueSink(Sink):
    """In a worker: every event to the parent."""

    def __init__(self, out: Any) -> None:
        self._out = out

    def emit(self, event: dict[str, Any]) -> None:
        self._out.put(("event", event))


def _worker_main(config: ServeConfig, index: int, out: Any, control: Any) -> None:
    """A worker process: a Daemon on its share of the streams, sinks replaced by the queue."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    daemon = Daemon(config, extra_sinks=[_QueueSink(out)])
    signal.signal(signal.SIGTERM, daemon.stop)
    parent = os.getppid()

    def listen() -> None:
        while True:
            try:
                command = control.get(timeout=_HEALTH_INTERVAL_S)
            except queue.Empty:
                # a SIGKILLed parent sends no signal: orphans would decode on for nobody
                if os.getppid() != parent:
                    log.error("worker %d: the daemon's main process is gone; stopping", index)
                    out.cancel_join_thread()  # nobody reads the queue: exit without flushing
                    daemon.stop()
                    return
                out.put(("health", index, _report(daemon)))
                continue
            if command == "stop":
                daemon.stop()
                return
            if command == "reload":
                out.put(("reloaded", index, *daemon.reload()))

    threading.Thread(target=listen, name="control", daemon=True).start()
    daemon.run()
    out.put(("health", index, _report(daemon)))
    out.put(("exited", index))


def _report(daemon: Any) -> dict[str, Any]:
    """A worker's health, with what the parent's benchmarks need beside it."""
    return daemon.health() | {"latency_buckets": daemon.latency_buckets(), "at": time.time()}


class WorkerPool:
    def __init__(self, config: ServeConfig, extra_sinks: Sequence[Sink] = ()) -> None:
        self.config = config
        count = min(config.workers, len(config.streams))
        # round robin: cameras of one site listed together end up on different cores
        self.groups = [config.streams[i::count] for i in range(count)]
        self.metrics = DaemonMetrics()
        self.restarts = [0] * count
        self.stop_event = threading.Event()
        self._context = multiprocessing.get_context("spawn")  # no forked OpenCV/ORT threads
        # one pair of queues per worker lifetime: a Queue's writers share a lock, and a worker
        # SIGKILLed while holding it (or while reading its control queue) would stall every
        # other user of that queue for good (CI saw the surviving worker freeze)
        self._events: list[Any] = [None] * count
        self._controls: list[Any] = [None] * count
        self._processes: list[Any] = [None] * count
        self._health: dict[int, dict[str, Any]] = {}
        self._frames_seen: dict[str, int] = {}  # per stream, over every worker lifetime
        # a restarted worker counts its streams' frames from 0 again: what its earlier
        # lifetimes processed is added, so totals and edge_tl_frames_total never go back
        self._frame_offsets: dict[str, int] = {}
        self._reloads: queue.Queue[tuple[int, bool, str]] = queue.Queue()
        self._http = None
        self.sinks: list[Sink] = [*build_sinks(config), *extra_sinks]

    def _worker_config(self, index: int) -> ServeConfig:
        return self.config.model_copy(
            update={
                "streams": self.groups[index],
                "workers": 1,
                "events": None,
                "counts": None,
                "mqtt": None,
                "metrics_port": None,
            }
        )

    def _start(self, index: int) -> None:
        self._events[index] = self._context.Queue()
        self._controls[index] = self._context.Queue()
        process = self._context.Process(
            target=_worker_main,
            args=(self._worker_config(index), index, self._events[index], self._controls[index]),
            name=f"edge-tl-worker-{index}",
            daemon=True,
        )
        process.start()
        self._processes[index] = process
        log.info(
            "worker %d (pid %d): %s",
            index,
            process.pid,
            ", ".join(s.name for s in self.groups[index]),
        )

    def run(self) -> int:
        try:
            self._http = start_endpoints(self.config, self.metrics, self.health, self.reload)
            for index in range(len(self.groups)):
                self._start(index)
            exited: set[int] = set()
            while not self.stop_event.is_set() and len(exited) < len(self.groups):
                self._drain(timeout=0.2, exited=exited)
                for index, process in enumerate(self._processes):
                    if index in exited or process.is_alive():
                        continue
                    if process.exitcode == 0:  # its file streams ended: done, not dead
                        exited.add(index)
                    else:
                        self._retire_queues(index)
                        self._new_lifetime(index)
                        self.restarts[index] += 1
                        self.metrics.worker_restarts.inc()
                        log.error(
                            "worker %d died (exit code %s); starting it again",
                            index,
                            process.exitcode,
                        )
                        self._start(index)
        finally:
            self.shutdown()
        return 0

    def _retire_queues(self, index: int) -> None:
        """A dead worker's queues are dropped unread: the feeder threads of the parent's own
        ends must not wait at exit on pipes nobody reads."""
        for pipe in (self._events[index], self._controls[index]):
            pipe.cancel_join_thread()
            pipe.close()
        self._events[index] = self._controls[index] = None

    def _drain(self, timeout: float, exited: set[int]) -> None:
        """Hand the workers' events to the sinks and keep their latest health."""
        deadline = time.monotonic() + timeout
        while True:
            received = False
            for events in self._events:
                while events is not None:
                    try:
                        message = events.get_nowait()
                    except queue.Empty:
                        break
                    received = True
                    self._handle(message, exited)
            if time.monotonic() >= deadline:
                return
            if not received:
                time.sleep(_POLL_S)

    def _handle(self, message: tuple[Any, ...], exited: set[int]) -> None:
        kind = message[0]
        if kind == "event":
            event = message[1]
            self.metrics.count_event(event["stream"], event)
            for sink in self.sinks:
                sink.emit(event)
        elif kind == "health":
            self._update_health(message[1], message[2])
        elif kind == "reloaded":
            self._reloads.put((message[1], message[2], message[3]))
        elif kind == "exited":
            exited.add(message[1])

    def _new_lifetime(self, index: int) -> None:
        """Worker `index` died: its streams' frames so far become their offsets, and its last
        report goes (until the new process reports, its streams read as connecting)."""
        for stream in self.groups[index]:
            self._frame_offsets[stream.name] = self._frames_seen.get(stream.name, 0)
        self._health.pop(index, None)

    def _update_health(self, index: int, health: dict[str, Any]) -> None:
        for name, state in health["streams"].items():
            state["frames"] += self._frame_offsets.get(name, 0)
            new = state["frames"] - self._frames_seen.get(name, 0)
            if new > 0:
                self.metrics.frames.labels(name).inc(new)
                self._frames_seen[name] = state["frames"]
            self.metrics.state.labels(name).set(1 if state["state"] == "live" else 0)
        self._health[index] = health

    def frame_counts(self) -> dict[str, tuple[int, float]]:
        """Frames per stream as of its worker's last report, and that report's time."""
        at = {index: report.get("at", 0.0) for index, report in self._health.items()}
        return {
            name: (s["frames"], at.get(s["worker"], 0.0))
            for name, s in self.health()["streams"].items()
        }

    def latency_buckets(self) -> list[float]:
        """Capture-to-result counts per bucket, summed over the workers' latest reports."""
        reports = [h["latency_buckets"] for h in self._health.values() if h.get("latency_buckets")]
        return [sum(column) for column in zip(*reports, strict=True)] if reports else []

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self._processes if p is not None and p.is_alive()]

    def health(self) -> dict[str, Any]:
        streams: dict[str, Any] = {}
        for index, group in enumerate(self.groups):
            reported = self._health.get(index, {}).get("streams", {})
            for stream in group:
                state = reported.get(
                    stream.name, {"state": "connecting", "frames": 0, "error": None}
                )
                streams[stream.name] = {**state, "worker": index}
        first = next(iter(self._health.values()), {})
        return {
            "ok": streams_ok(streams),
            "streams": streams,
            "backend": first.get("backend"),
            "bundle": first.get("bundle"),
            "workers": [
                {
                    "index": i,
                    "pid": p.pid if p is not None else None,
                    "alive": bool(p is not None and p.is_alive()),
                    "restarts": self.restarts[i],
                }
                for i, p in enumerate(self._processes)
            ],
            "remote_down": any(h.get("remote_down") for h in self._health.values()),
            "mean_batch": round(
                sum(h.get("mean_batch", 0.0) for h in self._health.values())
                / max(len(self._health), 1),
                2,
            ),
            "mqtt": mqtt_stats(self.sinks),
        }

    def reload(self) -> tuple[bool, str]:
        """Every worker reloads the bundle; ok only when all of them took it."""
        while not self._reloads.empty():
            self._reloads.get_nowait()
        for control in self._controls:
            try:
                if control is not None:
                    control.put("reload")
            except ValueError:  # closed meanwhile: its worker died (it misses this reload)
                pass
        answers: dict[int, tuple[bool, str]] = {}
        deadline = time.monotonic() + _RELOAD_TIMEOUT_S
        while len(answers) < len(self._controls) and time.monotonic() < deadline:
            try:
                index, ok, message = self._reloads.get(timeout=0.5)
            except queue.Empty:
                continue
            answers[index] = (ok, message)
        ok = len(answers) == len(self._controls) and all(a[0] for a in answers.values())
        return ok, "; ".join(f"worker {i}: {m}" for i, (_, m) in sorted(answers.items()))

    def stop(self, *_: Any) -> None:
        log.info("stopping: stopping workers, then flushing sinks")
        self.stop_event.set()

    def shutdown(self) -> None:
        self.stop_event.set()
        for control in self._controls:
            if control is not None:
                control.put("stop")
        exited: set[int] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
            p is not None and p.is_alive() and i not in exited
            for i, p in enumerate(self._processes)
        ):
            self._drain(timeout=0.2, exited=exited)
        for process in self._processes:
            if process is not None and process.is_alive():
                process.terminate()
            if process is not None:
                process.join(timeout=5)
            if process is not None and process.is_alive():  # stuck past its SIGTERM handler
                process.kill()
                process.join(timeout=5)
        self._drain(timeout=0.5, exited=exited)  # whatever the workers sent last
        for sink in self.sinks:
            sink.close()
        if self._http is not None:
            self._http.shutdown()
            self._http = None
