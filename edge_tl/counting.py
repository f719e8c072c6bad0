"""The counting benchmark: a clip's hand-checked line crossings against the count events of
the same motion pipeline `serve` runs. Torch-free.

Ground truth (`CLIP.counts.json`, the format of `shared/data/videos`): the counting line in
normalized and pixel coordinates, each crossing with its frame, class, confidence (`sure` or
`unsure`) and position along the line, and edge cases that count neither way. A count event
matches a crossing when it is within `max_frames` frames and `max_position_px` pixels along
the line; each crossing and each event is used once, closest pairs first. Events that match
only an edge case are neither rewarded nor penalised.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge_tl.bundle import Bundle, Precision
from edge_tl.errors import EdgeTLError, SourceError, validation_message
from edge_tl.runtime.config import StreamConfig
from edge_tl.runtime.daemon import run_one_stream
from edge_tl.runtime.sinks import JsonlSink, Sink
from edge_tl.runtime.tracker import along

__all__ = [
    "Crossing",
    "EdgeCase",
    "GroundTruth",
    "load_ground_truth",
    "position_along",
    "CountMatch",
    "CountedEvent",
    "count_events",
    "match_counts",
    "count_metrics",
    "evaluate_counts",
    "MAX_FRAMES",
    "MAX_POSITION_PX",
]

MAX_FRAMES = 15
MAX_POSITION_PX = 80.0

Point = tuple[float, float]


class _Loose(BaseModel):
    # the files carry notes and fields for people (note, subtype, method...): kept, not checked
    model_config = ConfigDict(extra="allow")


class Crossing(_Loose):
    frame: int = Field(ge=0)
    direction: str | None = None
    # a class absent from the bundle's labels (the annotator's own word) is never "right"
    class_: str = Field(alias="class")
    confidence: Literal["sure", "unsure"] = "sure"
    pos_px_along_line: float | None = None

    @field_validator("class_")
    @classmethod
    def _drop_note(cls, value: str) -> str:
        # "truck (bus)": the class, then the annotator's note on what it really was
        return value.split(" (")[0].strip()


class EdgeCase(_Loose):
    frame: int | None = Field(
        default=None, ge=0
    )  # None: a note for the whole clip, matches nothing
    pos_px_along_line: float | None = None


class Resolution(_Loose):
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class GroundTruth(_Loose):
    video: str | None = None
    resolution: Resolution
    line: tuple[Point, Point]  # normalized 0..1
    crossings: list[Crossing]
    edge_cases: list[EdgeCase] = Field(default_factory=list)

    @property
    def line_px(self) -> tuple[Point, Point]:
        (x1, y1), (x2, y2) = self.line
        w, h = self.resolution.width, self.resolution.height
        return (x1 * w, y1 * h), (x2 * w, y2 * h)


def load_ground_truth(path: str | os.PathLike[str]) -> GroundTruth:
    file = Path(path)
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EdgeTLError(f"{file}: not found") from None
    except json.JSONDecodeError as exc:
        raise EdgeTLError(f"{file}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    try:
        return GroundTruth.model_validate(raw)
    except ValidationError as exc:
        raise EdgeTLError(f"{file}: {validation_message(exc)}") from None


def position_along(line_px: tuple[Point, Point], point: Point) -> float:
    """Pixels from the line's first end point to `point`'s projection onto the line."""
    (x1, y1), (x2, y2) = line_px
    return along(line_px, point) * math.hypot(x2 - x1, y2 - y1)


@dataclass(frozen=True)
class CountedEvent:
    frame: int
    position: float
    label: str


@dataclass
class CountMatch:
    """Which event matched which crossing; indexes into the lists given to `match_counts`."""

    pairs: list[tuple[int, int]] = field(default_factory=list)  # (crossing, event)
    missed: list[int] = field(default_factory=list)  # crossings no event matched
    spurious: list[int] = field(default_factory=list)  # events matching nothing
    edge: list[int] = field(default_factory=list)  # events matching only an edge case


def _close(frame: int, position: float, other_frame: int, other_position: float | None) -> float:
    """A distance below 2 when within both tolerances, else inf (frames and pixels scaled)."""
    df = abs(frame - other_frame) / MAX_FRAMES
    dp = 0.0 if other_position is None else abs(position - other_position) / MAX_POSITION_PX
    return df + dp if df <= 1 and dp <= 1 else math.inf


def match_counts(
    events: Sequence[CountedEvent],
    crossings: Sequence[Crossing],
    edge_cases: Sequence[EdgeCase] = (),
) -> CountMatch:
    """Closest pairs first, each crossing and event used once (greedy on the scaled distance:
    with crossings seconds apart, the same as an optimal assignment)."""
    candidates = sorted(
        (d, ci, ei)
        for ci, c in enumerate(crossings)
        for ei, e in enumerate(events)
        if (d := _close(e.frame, e.position, c.frame, c.pos_px_along_line)) < math.inf
    )
    match = CountMatch()
    used_crossings: set[int] = set()
    used_events: set[int] = set()
    for _, ci, ei in candidates:
        if ci in used_crossings or ei in used_events:
            continue
        match.pairs.append((ci, ei))
        used_crossings.add(ci)
        used_events.add(ei)
    match.pairs.sort()
    match.missed = [i for i in range(len(crossings)) if i not in used_crossings]
    for ei, e in enumerate(events):
        if ei in used_events:
            continue
        near_edge = any(
            _close(e.frame, e.position, c.frame, c.pos_px_along_line) < math.inf
            for c in edge_cases
            if c.frame is not None
        )
        (match.edge if near_edge else match.spurious).append(ei)
    return match


def count_events(
    events: Iterable[Mapping[str, Any]], line_px: tuple[Point, Point]
) -> list[CountedEvent]:
    """The `count` events of a run (the documented event schema) as frame, position, class."""
    counted = []
    for event in events:
        if event.get("kind") != "count":
            continue
        x, y, w, h = event["box"]
        position = position_along(line_px, (x + w / 2, y + h / 2))
        counted.append(CountedEvent(int(event["frame"]), position, str(event["class"])))
    return counted


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def count_metrics(
    events: Sequence[CountedEvent],
    truth: GroundTruth,
    labels: Sequence[str],
) -> dict[str, Any]:
    """Detection recall/precision/F1, class accuracy on sure crossings, per-class counts and
    the confusion of matched crossings (rows true, columns predicted)."""
    match = match_counts(events, truth.crossings, truth.edge_cases)
    crossings = truth.crossings
    tp, fn, fp = len(match.pairs), len(match.missed), len(match.spurious)
    recall, precision = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
    f1 = 2 * recall * precision / (recall + precision) if recall and precision else 0.0
    sure = [(ci, ei) for ci, ei in match.pairs if crossings[ci].confidence == "sure"]
    sure_right = sum(crossings[ci].class_ == events[ei].label for ci, ei in sure)
    true_labels = sorted({c.class_ for c in crossings} - set(labels))
    rows = [*labels, *true_labels]
    confusion = {t: dict.fromkeys(labels, 0) for t in rows}
    for ci, ei in match.pairs:
        confusion[crossings[ci].class_][events[ei].label] += 1
    per_class = {}
    for label in rows:
        truth_all = [i for i, c in enumerate(crossings) if c.class_ == label]
        matched = [(ci, ei) for ci, ei in match.pairs if crossings[ci].class_ == label]
        sure_matched = [(ci, ei) for ci, ei in matched if crossings[ci].confidence == "sure"]
        per_class[label] = {
            "true": len(truth_all),
            "counted": sum(e.label == label for e in events),
            "detected": len(matched),
            "right": sum(events[ei].label == label for _, ei in matched),
            "sure_detected": len(sure_matched),
            "sure_right": sum(events[ei].label == label for _, ei in sure_matched),
        }
    return {
        "crossings": len(crossings),
        "sure_crossings": sum(c.confidence == "sure" for c in crossings),
        "counted": len(events),
        "matched": tp,
        "missed": fn,
        "spurious": fp,
        "edge_case_counts": len(match.edge),
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "class_accuracy_sure": _ratio(sure_right, len(sure)),
        "class_accuracy_all": _ratio(
            sum(crossings[ci].class_ == events[ei].label for ci, ei in match.pairs), tp
        ),
        "per_class": per_class,
        "confusion": confusion,
        "missed_frames": [crossings[i].frame for i in match.missed],
        "spurious_frames": [events[i].frame for i in match.spurious],
    }


class _Collect(Sink):
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def _frame_size(clip: Path) -> tuple[int, int]:
    import cv2

    capture = cv2.VideoCapture(str(clip))
    try:
        size = (
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        capture.release()
    if not all(size):
        raise SourceError(f"{clip}: cannot be opened as a video")
    return size


def evaluate_counts(
    bundle: Path,
    clip: Path,
    truth_path: Path,
    stream: Mapping[str, Any] | None = None,
    backend: str = "auto",
    precision: Precision = Precision.FP32,
    threads: int | None = None,
    events_out: Path | None = None,
) -> dict[str, Any]:
    """Run `serve`'s motion pipeline on `clip` with the ground truth's line and score its
    count events. `stream` overrides StreamConfig fields (the same for every camera: the
    point is to measure one configuration, not to fit one per clip)."""
    truth = load_ground_truth(truth_path)
    labels = Bundle.load(bundle, verify=False).labels
    width, height = _frame_size(clip)
    settings = {"mode": "motion", "line": truth.line} | dict(stream or {})
    config = StreamConfig(name=clip.stem, source=str(clip), **settings)
    collected = _Collect()
    sinks: list[Sink] = [collected]
    if events_out is not None:
        sinks.append(JsonlSink(events_out, atomic=True))
    health, state = run_one_stream(bundle, config, sinks, backend, precision, threads)
    # events are in the clip's pixels; the ground truth's positions in its own resolution
    sx, sy = truth.resolution.width / width, truth.resolution.height / height
    for event in collected.events:
        if event["kind"] != "count":
            continue
        x, y, w, h = event["box"]
        event["box"] = [x * sx, y * sy, w * sx, h * sy]
    counted = count_events(collected.events, truth.line_px)
    result = count_metrics(counted, truth, labels)
    drift = [e for e in collected.events if e["kind"] == "drift"]
    result["drift_events"] = [{"frame": e["frame"], **e["drift"]} for e in drift]
    result["camera_moved_frames"] = [
        e["frame"] for e in collected.events if e["kind"] == "camera_moved"
    ]
    # vehicles told apart from a neighbour's blob at the line (split_min_width)
    result["split_frames"] = [e["frame"] for e in collected.events if "split_from" in e]
    return {
        "clip": str(clip),
        "ground_truth": str(truth_path),
        "bundle": str(bundle),
        "backend": health["backend"],
        "frames": state["frames"],
        "settings": config.model_dump(mode="json", exclude={"name", "source"}),
        **result,
    }
