"""Count events scored against ground truth: a count event matches a crossing when it is
within `MAX_SECONDS` (as frames at the ground truth's `fps`; `MAX_FRAMES` without one) and
`MAX_POSITION_PX` pixels along the line (the file's `match_px` instead, when it has one); each
crossing and each event is used once, closest pairs first. Events that match only an edge case
are neither rewarded nor penalised."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_tl.counting.truth import Crossing, EdgeCase, GroundTruth, Point, position_along
from edge_tl.runtime.tracker import box_centre

__all__ = [
    "MAX_FRAMES",
    "MAX_POSITION_PX",
    "MAX_SECONDS",
    "MatchWindow",
    "CountedEvent",
    "CountMatch",
    "match_counts",
    "count_events",
    "count_metrics",
]

# Half a second: 15 frames at the shared clips' 30 fps. In frames it was 1.5 s at 10 fps, where
# counts a second off their crossing matched (overhead at 10 fps: F1 0.84 with 15 frames, 0.75
# with 5)
MAX_SECONDS = 0.5
MAX_FRAMES = 15  # for a ground truth that does not say its fps
MAX_POSITION_PX = 80.0


@dataclass(frozen=True)
class MatchWindow:
    """How far a count may be from its crossing: frames apart, pixels along the line."""

    frames: int = MAX_FRAMES
    px: float = MAX_POSITION_PX

    @classmethod
    def of(cls, truth: GroundTruth) -> MatchWindow:
        frames = max(1, round(MAX_SECONDS * truth.fps)) if truth.fps else MAX_FRAMES
        return cls(frames, truth.match_px or MAX_POSITION_PX)


@dataclass(frozen=True)
class CountedEvent:
    frame: int
    position: float  # of the box centre along the line, in the ground truth's pixels
    label: str
    box: tuple[float, float, float, float] | None = None  # x, y, w, h in the same pixels
    track_id: int | None = None


@dataclass
class CountMatch:
    """Which event matched which crossing; indexes into the lists given to `match_counts`."""

    pairs: list[tuple[int, int]] = field(default_factory=list)  # (crossing, event)
    missed: list[int] = field(default_factory=list)  # crossings no event matched
    spurious: list[int] = field(default_factory=list)  # events matching nothing
    edge: list[int] = field(default_factory=list)  # events matching only an edge case


def _close(
    frame: int,
    position: float,
    other_frame: int,
    other_position: float | None,
    window: MatchWindow,
) -> float:
    """A distance below 2 when within both tolerances, else inf (frames and pixels scaled)."""
    df = abs(frame - other_frame) / window.frames
    dp = 0.0 if other_position is None else abs(position - other_position) / window.px
    return df + dp if df <= 1 and dp <= 1 else math.inf


def match_counts(
    events: Sequence[CountedEvent],
    crossings: Sequence[Crossing],
    edge_cases: Sequence[EdgeCase] = (),
    window: MatchWindow = MatchWindow(),
) -> CountMatch:
    """Closest pairs first, each crossing and event used once (greedy on the scaled distance:
    with crossings seconds apart, the same as an optimal assignment)."""
    candidates = sorted(
        (d, ci, ei)
        for ci, c in enumerate(crossings)
        for ei, e in enumerate(events)
        if (d := _close(e.frame, e.position, c.frame, c.pos_px_along_line, window)) < math.inf
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
            _close(e.frame, e.position, c.frame, c.pos_px_along_line, window) < math.inf
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
        position = position_along(line_px, box_centre((x, y, w, h)))
        counted.append(
            CountedEvent(
                int(event["frame"]),
                position,
                str(event["class"]),
                (x, y, w, h),
                event.get("track_id"),
            )
        )
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
    window = MatchWindow.of(truth)
    match = match_counts(events, truth.crossings, truth.edge_cases, window)
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
        "match_window": {"frames": window.frames, "px": window.px},
        "missed_frames": [crossings[i].frame for i in match.missed],
        "spurious_frames": [events[i].frame for i in match.spurious],
    }
