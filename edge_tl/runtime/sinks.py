"""Where events go: JSON Lines, periodic per-class counts, an annotated video, MQTT.
Every sink is thread-safe and flushes on close, so SIGTERM never loses buffered lines."""

from __future__ import annotations

import json
import logging
import threading
import time
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
    """Publishes each event as JSON to `topic/<stream>` (paho-mqtt, the [mqtt] extra)."""

    def __init__(
        self,
        host: str,
        port: int = 1883,
        topic: str = "edge-tl",
        kinds: tuple[str, ...] = ("count",),
    ) -> None:
        mqtt = require("paho.mqtt.client", "mqtt")
        self.topic, self.kinds = topic, kinds
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self._client.connect_async(host, port)
        self._client.loop_start()  # reconnects by itself; publishing never blocks a stream

    def emit(self, event: dict[str, Any]) -> None:
        if event.get("kind") in self.kinds:
            self._client.publish(f"{self.topic}/{event['stream']}", json.dumps(event), qos=1)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
