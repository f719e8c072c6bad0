"""One stream, whole-frame classification: frames → class per frame → JSON Lines events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from edge_tl.progress import track
from edge_tl.runtime.classify import Classifier
from edge_tl.runtime.sources import Frame

__all__ = ["StreamSummary", "classify_frames", "write_jsonl"]


@dataclass
class StreamSummary:
    frames: int = 0
    seconds: float = 0.0
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    label_counts: dict[str, int] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        import numpy as np

        return {
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "stage_ms_p50": {k: round(float(np.median(v)), 3) for k, v in self.stage_ms.items()},
            "label_counts": self.label_counts,
        }


def classify_frames(
    classifier: Classifier,
    frames: Iterable[Frame],
    summary: StreamSummary,
    total: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one event per frame with the class, score and per-stage latency."""
    started = time.perf_counter()
    for frame in track(frames, "stream", total=total):
        prediction = classifier.classify([frame.image])[0]
        timings = {"decode": frame.decode_ms, **classifier.last_timings_ms}
        timings["total"] = sum(timings.values())
        summary.frames += 1
        for stage, ms in timings.items():
            summary.stage_ms.setdefault(stage, []).append(ms)
        summary.label_counts[prediction.label] = summary.label_counts.get(prediction.label, 0) + 1
        yield {
            "frame": frame.index,
            "media_ms": round(frame.media_ms, 1),
            "captured_at": round(frame.captured_at, 6),
            "label": prediction.label,
            "score": round(prediction.score, 5),
            "top": [[label, round(score, 5)] for label, score in prediction.top],
            "latency_ms": {k: round(v, 3) for k, v in timings.items()},
        }
        summary.seconds = time.perf_counter() - started


def write_jsonl(events: Iterable[dict[str, Any]], out: IO[str]) -> int:
    count = 0
    for event in events:
        out.write(json.dumps(event) + "\n")
        count += 1
    out.flush()
    return count
