"""The one event schema of `edge-tl stream`, `edge-tl serve`, every sink and MQTT.

Every event is one JSON object (one line in a .jsonl file):

| field | type | meaning |
|---|---|---|
| `kind` | str | `class` (a frame or region classified), `count` (a track crossed the line), `camera_moved` (the camera began to pan, tilt, zoom or shake; no class fields), `drift` (recent classifications parted from the validation reference, or came back; no class fields) |
| `stream` | str | the stream's name |
| `frame` | int | frame index in the stream (0-based, after stride) |
| `time` | float | Unix time the frame was captured (decoded) |
| `media_ms` | float | position in the file; ms since the source opened for live streams |
| `class` | str | the predicted class (smoothed in frame/roi modes, voted for tracks) |
| `score` | float | its probability (mean over the track's classifications for counts) |
| `top` | [[str, float], ...] | the best classes with their probabilities, best first |
| `box` | [x, y, w, h] | full-frame pixels of the frame, region or track (of its own part of the blob when a count split it) |
| `track_id` | int | motion mode: the track's id (absent otherwise) |
| `votes` | int | motion mode: how many crops of the track were classified |
| `split_from` | int | count events: present when this vehicle crossed side by side with track `split_from` inside one moving blob; it got a track id of its own and one vote, its crop from the frame that showed the two apart on the line |
| `roi` | int | roi mode: the region's index |
| `prior` | bool | present (true) when the bundle's ImageNet prior was fused into `class`, `score` and `top` (the stream drifts, or `prior = "always"`) |
| `harvest_id` | str | motion mode with `harvest`: the track's id in `tracks.jsonl` (null when writing failed) |
| `counts` | {class: int} | count events: the stream's running per-class totals |
| `drift` | {figure: value} | `drift`: `drifting` (true when it began, false when it ended), `reason` (plain words), `samples`, `confidence_median`, `margin_median`, `low_confidence_share`, `confidence_ks`, `class_mix_distance` |
| `shift_px` | float | `camera_moved`: per-frame displacement of the background in pixels at 320 px width |
| `shift_px_s` | float | `camera_moved`: the same per second at the stream's frame rate (what `camera_motion.moving_px_s` is compared with) |
| `latency_ms` | {stage: float} | `decode`, `preprocess`, `infer`, `postprocess` (of the batch the image went in), `total` (capture to result) |
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from edge_tl.runtime.camera_motion import GlobalMotion
from edge_tl.runtime.classify import top_k
from edge_tl.runtime.drift import DriftStatus
from edge_tl.runtime.motion import Box
from edge_tl.runtime.sources import Frame

__all__ = ["EVENT_KINDS", "make_event", "camera_event", "drift_event"]

EVENT_KINDS = ("class", "count", "camera_moved", "drift")


def make_event(
    kind: str,
    stream: str,
    frame: Frame,
    scores: np.ndarray,
    labels: Sequence[str],
    box: Box,
    k: int = 3,
    stage_ms: dict[str, float] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An event in the documented schema from a class-probability vector; `extra` adds the
    mode's fields (track_id, votes, roi, counts)."""
    best = int(scores.argmax())
    latency = {"decode": frame.decode_ms, **(stage_ms or {})}
    latency["total"] = (time.time() - frame.captured_at) * 1e3
    return {
        **_header(kind, stream, frame),
        "class": labels[best],
        "score": round(float(scores[best]), 5),
        "top": [[label, round(score, 5)] for label, score in top_k(scores, labels, k)],
        "box": [int(v) for v in box],
        **extra,
        "latency_ms": {stage: round(ms, 3) for stage, ms in latency.items()},
    }


def _header(kind: str, stream: str, frame: Frame) -> dict[str, Any]:
    """The fields every event starts with."""
    return {
        "kind": kind,
        "stream": stream,
        "frame": frame.index,
        "time": round(frame.captured_at, 6),
        "media_ms": round(frame.media_ms, 1),
    }


def camera_event(stream: str, frame: Frame, motion: GlobalMotion) -> dict[str, Any]:
    """`camera_moved`: the stream's camera began to pan, tilt, zoom or shake; how fast the
    background moved, per frame and per second (at the estimate's width)."""
    return _header("camera_moved", stream, frame) | {
        "shift_px": round(motion.shift_px, 2),
        "shift_px_s": round(motion.shift_px_s, 1),
    }


def drift_event(stream: str, frame: Frame, status: DriftStatus) -> dict[str, Any]:
    """`drift`: the stream's recent classifications parted from validation (or came back)."""
    figures = {k: round(v, 4) if isinstance(v, float) else v for k, v in status.__dict__.items()}
    return _header("drift", stream, frame) | {"drift": figures}
