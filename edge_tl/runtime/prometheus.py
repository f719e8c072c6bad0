"""Prometheus `/metrics` and `/healthz` for the daemon (prometheus-client, own registry)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["DaemonMetrics", "serve_http"]

LATENCY_BUCKETS_MS = (5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000, 2500)


class DaemonMetrics:
    def __init__(self) -> None:
        import prometheus_client as prom

        self.registry = prom.CollectorRegistry()
        self.frames = prom.Counter(
            "edge_tl_frames_total", "Frames processed", ["stream"], registry=self.registry
        )
        self.dropped = prom.Counter(
            "edge_tl_frames_dropped_total",
            "Frames replaced by newer ones before processing",
            ["stream"],
            registry=self.registry,
        )
        self.reconnects = prom.Counter(
            "edge_tl_reconnects_total", "Source reconnects", ["stream"], registry=self.registry
        )
        self.events = prom.Counter(
            "edge_tl_events_total",
            "Events emitted",
            ["stream", "kind", "class"],
            registry=self.registry,
        )
        self.camera_moves = prom.Counter(
            "edge_tl_camera_moves_total",
            "Times the camera began to pan, tilt, zoom or shake (counting paused)",
            ["stream"],
            registry=self.registry,
        )
        self.reloads = prom.Counter(
            "edge_tl_reloads_total",
            "Bundle reloads (SIGHUP, POST /reload): ok or refused (the old bundle kept serving)",
            ["result"],
            registry=self.registry,
        )
        self.harvest_failures = prom.Gauge(
            "edge_tl_harvest_failures",
            "Counted tracks whose crops could not be written (disk full, folder unwritable)",
            ["stream"],
            registry=self.registry,
        )
        self.drift = {
            name: prom.Gauge(f"edge_tl_drift_{name}", text, ["stream"], registry=self.registry)
            for name, text in (
                ("drifting", "1 when recent classifications part from validation"),
                ("confidence_median", "Median top-1 probability of recent classifications"),
                ("low_confidence_share", "Share below the validation 10th-percentile confidence"),
                ("confidence_ks", "KS distance of recent confidences from validation"),
                ("class_mix_distance", "Total variation of the recent class mix from validation"),
            )
        }
        self.latency = prom.Histogram(
            "edge_tl_capture_to_result_ms",
            "Capture-to-result latency per frame (ms)",
            ["stream"],
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self.fps = prom.Gauge(
            "edge_tl_stream_fps",
            "Processed frames per second (last interval)",
            ["stream"],
            registry=self.registry,
        )
        self.state = prom.Gauge(
            "edge_tl_stream_up", "1 when the stream is live", ["stream"], registry=self.registry
        )
        self.batch = prom.Gauge(
            "edge_tl_mean_batch_size", "Mean inference batch size", registry=self.registry
        )
        self.worker_restarts = prom.Counter(
            "edge_tl_worker_restarts_total",
            "Worker processes that died and were started again (workers > 1)",
            registry=self.registry,
        )
        self.remote_down = prom.Gauge(
            "edge_tl_remote_down",
            "1 while the remote inference server (kserve://) cannot be reached",
            registry=self.registry,
        )

    def latency_cumulative(self) -> list[float]:
        """Cumulative capture-to-result counts per bucket (le order), summed over streams."""
        sums: dict[float, float] = {}
        for metric in self.latency.collect():
            for sample in metric.samples:
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    sums[bound] = sums.get(bound, 0.0) + sample.value
        return [sums[bound] for bound in sorted(sums)]

    def declare_stream(self, stream: str) -> None:
        """Create the stream's series at 0, so a camera that never connects is visible."""
        for metric in (self.frames, self.dropped, self.reconnects, self.camera_moves):
            metric.labels(stream)
        self.state.labels(stream).set(0)

    def count_event(self, stream: str, event: dict[str, Any]) -> None:
        if event["kind"] == "camera_moved":
            self.camera_moves.labels(stream).inc()
        elif event["kind"] == "drift":
            self.set_drift(stream, event["drift"])
        else:
            self.events.labels(stream, event["kind"], event["class"]).inc()

    def set_drift(self, stream: str, status: Any) -> None:
        """The drift figures of a stream (a DriftStatus, or a drift event's `drift` dict)."""
        figures = status if isinstance(status, dict) else status.__dict__
        for name, gauge in self.drift.items():
            gauge.labels(stream).set(float(figures[name]))

    def exposition(self) -> bytes:
        import prometheus_client as prom

        return prom.generate_latest(self.registry)


def serve_http(
    host: str,
    port: int,
    metrics: DaemonMetrics,
    health: Callable[[], dict[str, Any]],
    reload: Callable[[], tuple[bool, str]] | None = None,
) -> ThreadingHTTPServer:
    """Start /metrics, /healthz and (from localhost only) POST /reload on a daemon thread;
    returns the server (call .shutdown())."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/reload" or reload is None:
                self._reply(404, b"not found\n", "text/plain")
            elif self.client_address[0] not in ("127.0.0.1", "::1"):
                self._reply(403, b"reload is accepted from localhost only\n", "text/plain")
            else:
                ok, message = reload()
                body = json.dumps({"ok": ok, "message": message}).encode()
                self._reply(200 if ok else 409, body, "application/json")

        def _reply(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802  (http.server's name)
            if self.path == "/metrics":
                body, status, kind = metrics.exposition(), 200, "text/plain; version=0.0.4"
            elif self.path == "/healthz":
                report = health()
                body = json.dumps(report).encode()
                status, kind = (200 if report["ok"] else 503), "application/json"
            else:
                body, status, kind = b"not found\n", 404, "text/plain"
            self._reply(status, body, kind)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: scrapes every few seconds
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
