"""What gets classified in one stream, and the events it produces.

- `frame`: the whole frame, with temporal smoothing (exponential moving average of scores);
- `roi`: fixed regions of interest (normalized x, y, w, h), each smoothed on its own;
- `motion` (the traffic default): background subtraction → blobs → IoU tracker → each track
  classified a few times (votes) → one count per track when it crosses the counting line.
Every image goes through the shared BatchScheduler, so streams batch together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_tl.runtime.motion import Box, MotionConfig, MotionDetector
from edge_tl.runtime.scheduler import BatchScheduler
from edge_tl.runtime.sources import Frame
from edge_tl.runtime.tracker import IouTracker, Track

__all__ = ["StreamSettings", "StreamProcessor", "Line"]

Line = tuple[tuple[float, float], tuple[float, float]]  # normalized (0..1) end points


@dataclass(frozen=True)
class StreamSettings:
    name: str
    mode: str = "motion"  # frame | roi | motion
    smoothing: float = 0.5  # EMA weight of the newest frame (frame/roi modes); 1 = none
    rois: tuple[tuple[float, float, float, float], ...] = ()
    line: Line = ((0.5, 0.0), (0.5, 1.0))  # default: a vertical line through the middle
    motion: MotionConfig = field(default_factory=MotionConfig)
    min_hits: int = 2  # frames a track must be seen before it is classified
    classify_every: int = 3  # frames between classifications of one track
    max_classifications: int = 5
    crop_padding: float = 0.1


class StreamProcessor:
    """Turns frames of one stream into events; call `process(frame)` for each frame."""

    def __init__(
        self, settings: StreamSettings, scheduler: BatchScheduler, labels: list[str]
    ) -> None:
        if settings.mode not in ("frame", "roi", "motion"):
            raise ValueError(
                f"stream {settings.name}: mode '{settings.mode}' must be frame, roi or motion"
            )
        if settings.mode == "roi" and not settings.rois:
            raise ValueError(f"stream {settings.name}: mode roi needs at least one roi")
        self.settings, self.scheduler, self.labels = settings, scheduler, labels
        self.counts: dict[str, int] = dict.fromkeys(labels, 0)
        self._smoothed: dict[int, np.ndarray] = {}
        self._detector = MotionDetector(settings.motion) if settings.mode == "motion" else None
        self._tracker = IouTracker()
        self.on_count: Callable[[dict[str, Any]], None] | None = None

    def process(self, frame: Frame) -> Iterator[dict[str, Any]]:
        if self.settings.mode == "motion":
            yield from self._motion(frame)
            return
        height, width = frame.image.shape[:2]
        regions: list[Box] = (
            [(0, 0, width, height)]
            if self.settings.mode == "frame"
            else [
                (round(x * width), round(y * height), round(w * width), round(h * height))
                for x, y, w, h in self.settings.rois
            ]
        )
        crops = [frame.image[y : y + h, x : x + w] for x, y, w, h in regions]
        predictions = self.scheduler.classify(crops)
        for region_index, (box, prediction) in enumerate(zip(regions, predictions, strict=True)):
            scores = self._smooth(region_index, prediction.top)
            best = int(scores.argmax())
            yield self._event(
                frame,
                self.labels[best],
                float(scores[best]),
                box,
                roi=region_index if self.settings.mode == "roi" else None,
            )

    def _smooth(self, key: int, top: list[tuple[str, float]]) -> np.ndarray:
        current = np.zeros(len(self.labels), np.float32)
        for label, score in top:
            current[self.labels.index(label)] = score
        alpha = self.settings.smoothing
        previous = self._smoothed.get(key)
        smoothed = current if previous is None else alpha * current + (1 - alpha) * previous
        self._smoothed[key] = smoothed
        return smoothed

    def _motion(self, frame: Frame) -> Iterator[dict[str, Any]]:
        assert self._detector is not None  # set for motion mode in __init__
        boxes = self._detector.detect(frame.image)
        tracks = self._tracker.update(boxes, frame.index)
        to_classify = [
            t for t in tracks
            if t.hits >= self.settings.min_hits
            and t.classified < self.settings.max_classifications
            and (frame.index - t.first_frame) % self.settings.classify_every == 0
        ]  # fmt: skip
        height, width = frame.image.shape[:2]
        line_px = tuple((x * width, y * height) for x, y in self.settings.line)
        crossing = [
            t
            for t in tracks
            if t.hits >= self.settings.min_hits and IouTracker.check_crossing(t, line_px)
        ]
        for track in crossing:  # a track about to be counted must have at least one vote
            if not track.votes and track not in to_classify:
                to_classify.append(track)
        if to_classify:
            predictions = self.scheduler.classify(
                [self._crop(frame.image, t.box) for t in to_classify]
            )
            for track, prediction in zip(to_classify, predictions, strict=True):
                for label, score in prediction.top:
                    track.votes[label] = track.votes.get(label, 0.0) + score
                track.classified += 1
        for track in crossing:
            label, share = track.label()
            if label is None:
                continue
            self.counts[label] += 1
            event = self._event(frame, label, share, track.box, track=track, kind="count")
            event["counts"] = dict(self.counts)
            yield event
        self._tracker.expire(frame.index)

    def _crop(self, image: np.ndarray, box: Box) -> np.ndarray:
        x, y, w, h = box
        pad_x, pad_y = round(w * self.settings.crop_padding), round(h * self.settings.crop_padding)
        height, width = image.shape[:2]
        x0, y0 = max(0, x - pad_x), max(0, y - pad_y)
        x1, y1 = min(width, x + w + pad_x), min(height, y + h + pad_y)
        return image[y0:y1, x0:x1]

    def _event(
        self,
        frame: Frame,
        label: str,
        score: float,
        box: Box,
        track: Track | None = None,
        roi: int | None = None,
        kind: str = "class",
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "kind": kind,
            "stream": self.settings.name,
            "frame": frame.index,
            "captured_at": round(frame.captured_at, 6),
            "class": label,
            "score": round(score, 4),
            "box": list(box),
            "latency_ms": {
                "decode": round(frame.decode_ms, 3),
                "capture_to_result": round((time.time() - frame.captured_at) * 1e3, 3),
            },
        }
        if track is not None:
            event["track_id"] = track.id
            event["votes"] = track.classified
        if roi is not None:
            event["roi"] = roi
        return event
