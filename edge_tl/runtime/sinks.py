"""Where events go: JSON Lines, periodic per-class counts, an annotated video, MQTT.
Every sink is thread-safe and flushes on close, so SIGTERM never loses buffered lines."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from edge_tl._deps import require

__all__ = ["Sink", "JsonlSink", "SummarySink", "CountsSink", "AnnotatedVideoSink", "MqttSink"]

log = logging.getLogger(__name__)


class Sink:
    def emit(self, event: dict[str, Any]) -> None:  # noqa: B027  (optional hook)
        pass

    def frame(self, stream: str, image: np.ndarray, events: list[dict[str, Any]]) -> None:  # noqa: B027
        pass

    def close(self) -> None:  # noqa: B027
        pass


class JsonlSink(Sink):
    """One JSON line per event, flushed per event so a reader tailing the file sees it at once.

    `path` appends to a file (the daemon); with `atomic`, the file appears whole at close and
    not at all if the run fails (`edge-tl stream --out`). `out` writes to an open text stream
    such as stdout instead.
    """

    def __init__(
        self, path: Path | None = None, atomic: bool = False, out: IO[str] | None = None
    ) -> None:
        if (path is None) == (out is None):
            raise ValueError("JsonlSink takes a path or an open stream")
        self.path, self._atomic = path, atomic
        self._owned = out is None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._partial = path.with_name(f".{path.name}.partial") if atomic else path
            out = open(self._partial, "w" if atomic else "a", encoding="utf-8")  # noqa: SIM115
        self._file: IO[str] = out  # type: ignore[assignment]
        self._lock = threading.Lock()
        self.events = 0

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            self.events += 1

    def discard(self) -> None:
        """Remove what an atomic sink wrote, before or after close (the run failed)."""
        self.close()
        if self._atomic and self.path is not None:
            self._partial.unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            self._file.flush()
            if not self._owned:
                return
            self._file.close()
            if self._atomic and self.path is not None:
                self._partial.replace(self.path)


class SummarySink(Sink):
    """Per-stream totals of the events it sees: frames with events, classes, and the median
    of each latency stage (what `edge-tl stream` prints at the end)."""

    def __init__(self) -> None:
        self.frames: set[tuple[str, int]] = set()
        self.class_counts: dict[str, int] = {}
        self.stage_ms: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        if "class" not in event:  # camera_moved
            return
        with self._lock:
            self.frames.add((event["stream"], event["frame"]))
            self.class_counts[event["class"]] = self.class_counts.get(event["class"], 0) + 1
            for stage, ms in event["latency_ms"].items():
                self.stage_ms.setdefault(stage, []).append(ms)

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "events": sum(self.class_counts.values()),
                "class_counts": dict(self.class_counts),
                "stage_ms_p50": {
                    k: round(float(np.median(v)), 3) for k, v in self.stage_ms.items()
                },
            }


class CountsSink(Sink):
    """Per-stream, per-class counts from `count` events, written every `interval_s` and on close."""

    def __init__(self, path: Path, interval_s: float = 60.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.interval_s = path, interval_s
        self.counts: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counts", daemon=True)
        self._thread.start()

    def emit(self, event: dict[str, Any]) -> None:
        if event.get("kind") != "count":
            return
        with self._lock:
            stream = self.counts.setdefault(event["stream"], {})
            stream[event["class"]] = stream.get(event["class"], 0) + 1

    def _write(self) -> None:
        with self._lock:
            line = json.dumps({"time": round(time.time(), 3), "counts": self.counts})
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._write()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._write()


class AnnotatedVideoSink(Sink):
    def __init__(self, path: Path, fps: float = 15.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.fps = path, fps
        self._writer: cv2.VideoWriter | None = None
        self._lock = threading.Lock()

    def frame(self, stream: str, image: np.ndarray, events: list[dict[str, Any]]) -> None:
        canvas = image.copy()
        for event in events:
            if "box" not in event:  # camera_moved
                continue
            x, y, w, h = event["box"]
            cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 255, 0), 2)
            text = f"{event['class']} {event['score']:.2f}" + (
                f" #{event['track_id']}" if "track_id" in event else ""
            )
            cv2.putText(
                canvas, text, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1
            )
        with self._lock:
            if self._writer is None:
                height, width = canvas.shape[:2]
                self._writer = cv2.VideoWriter(
                    str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height)
                )
            self._writer.write(canvas)

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.release()


class MqttSink(Sink):
    """Publishes events as JSON to `topic/<stream>` with QoS 1 (paho-mqtt, the [mqtt] extra).

    paho keeps every message the broker has not acknowledged, sent or not, and resends them
    after it reconnects, so a broker restart loses nothing; `queue` bounds what it keeps (a
    broker gone for hours must not eat the box's memory): past it an event is dropped and
    counted. Publishing never blocks a stream; close() waits up to `flush_timeout_s` for the
    broker to acknowledge what is pending.
    """

    def __init__(
        self,
        host: str,
        port: int = 1883,
        topic: str = "edge-tl",
        kinds: tuple[str, ...] = ("count",),
        queue: int = 10000,
        client_id: str | None = None,
        flush_timeout_s: float = 10.0,
    ) -> None:
        mqtt = require("paho.mqtt.client", "mqtt")
        self.topic, self.kinds, self.flush_timeout_s = topic, kinds, flush_timeout_s
        self.published = self.acknowledged = self.dropped = 0
        self._lock = threading.Lock()
        self._queue_full = mqtt.MQTT_ERR_QUEUE_SIZE
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"edge-tl-{uuid.uuid4().hex[:12]}",
        )
        self._client.max_queued_messages_set(queue)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_publish = self._on_publish
        self._client.connect_async(host, port)
        self._client.loop_start()  # its thread connects and reconnects by itself

    def emit(self, event: dict[str, Any]) -> None:
        if event.get("kind") not in self.kinds:
            return
        info = self._client.publish(f"{self.topic}/{event['stream']}", json.dumps(event), qos=1)
        with self._lock:
            if info.rc == self._queue_full:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("mqtt: queue full, %d events dropped so far", self.dropped)
            else:
                self.published += 1

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            self.acknowledged += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "published": self.published,
                "acknowledged": self.acknowledged,
                "pending": self.published - self.acknowledged,
                "dropped": self.dropped,
            }

    def close(self) -> None:
        deadline = time.monotonic() + self.flush_timeout_s
        while self.stats()["pending"] > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = self.stats()
        if stats["pending"]:
            log.error("mqtt: %d events not acknowledged by the broker at exit", stats["pending"])
        self._client.disconnect()
        self._client.loop_stop()
