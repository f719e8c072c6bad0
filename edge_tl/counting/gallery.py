"""A picture of every error of a counting run, to see why it happened: each missed crossing,
spurious count and sure crossing named wrong, as the frame it happened in between the frames
`CONTEXT_FRAMES` before and after (which way things moved), with the line, the ground truth's
position on it and the counted box drawn. F1 says how many; the pictures say which kind (a
shadow, half a bus, two riders in one blob), which is what decides what to change.

The gallery is a folder of JPEGs named `<kind>-<frame>-<class>.jpg` and `errors.json` listing
them; it is built beside the target and renamed into place, replacing only an earlier gallery.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge_tl.counting.score import CountedEvent, MatchWindow, match_counts
from edge_tl.counting.truth import GroundTruth, Point
from edge_tl.errors import EdgeTLError, SourceError
from edge_tl.files import staged_folder

__all__ = ["CountError", "count_errors", "write_gallery", "INDEX_FILE", "CONTEXT_FRAMES"]

INDEX_FILE = "errors.json"
CONTEXT_FRAMES = 8  # ~0.3 s at 25-30 fps: a vehicle moves visibly, the scene stays the same
PANEL_WIDTH = 480  # each of the three panels, whatever the clip's resolution

ErrorKind = Literal["missed", "spurious", "class"]
# BGR
LINE_COLOUR = (0, 0, 255)
TRUTH_COLOUR = (0, 255, 255)
COUNT_COLOUR = (255, 160, 0)
ERROR_COLOUR = {"missed": TRUTH_COLOUR, "spurious": (0, 0, 255), "class": (0, 165, 255)}


@dataclass(frozen=True)
class CountError:
    kind: ErrorKind
    frame: int
    position: float | None  # along the line, ground-truth pixels
    truth: str | None  # the crossing's class (None: a spurious count)
    counted: str | None  # the count's class (None: missed)
    box: tuple[float, float, float, float] | None = None  # the count's, ground-truth pixels
    track_id: int | None = None
    event: int | None = None  # the count's index among the run's count events

    @property
    def file_name(self) -> str:
        label = {
            "missed": self.truth,
            "spurious": self.counted,
            "class": f"{self.truth}-as-{self.counted}",
        }[self.kind]
        return f"{self.kind}-{self.frame:05d}-{_safe(str(label))}.jpg"

    def caption(self) -> str:
        if self.kind == "missed":
            return f"missed {self.truth}"
        track = "" if self.track_id is None else f" (track {self.track_id})"
        if self.kind == "spurious":
            return f"spurious count: {self.counted}{track}"
        return f"named {self.counted}, truth {self.truth}{track}"


def count_errors(events: Sequence[CountedEvent], truth: GroundTruth) -> list[CountError]:
    """The run's errors in frame order: crossings no count matched, counts that matched no
    crossing (nor an edge case), and sure crossings whose count named another class."""
    match = match_counts(events, truth.crossings, truth.edge_cases, MatchWindow.of(truth))
    crossings = truth.crossings
    errors = [
        CountError("missed", c.frame, c.pos_px_along_line, c.class_, None)
        for c in (crossings[i] for i in match.missed)
    ]
    errors += [_count_error("spurious", events, i) for i in match.spurious]
    errors += [
        _count_error("class", events, ei, crossings[ci].class_)
        for ci, ei in match.pairs
        if crossings[ci].confidence == "sure" and crossings[ci].class_ != events[ei].label
    ]
    return sorted(errors, key=lambda error: (error.frame, error.kind))


def _count_error(
    kind: ErrorKind, events: Sequence[CountedEvent], index: int, truth: str | None = None
) -> CountError:
    """The error of count `index` (spurious, or named other than `truth`)."""
    e = events[index]
    return CountError(kind, e.frame, e.position, truth, e.label, e.box, e.track_id, index)


def write_gallery(
    clip: Path, truth: GroundTruth, events: Sequence[CountedEvent], out: Path
) -> list[CountError]:
    """Draw `count_errors` into the folder `out` (replacing an earlier gallery there, never
    anything else). Returns the errors drawn."""
    if out.exists() and not (out / INDEX_FILE).is_file() and any(out.iterdir()):
        raise EdgeTLError(f"{out}: exists and is not an error gallery; choose a new folder")
    errors = count_errors(events, truth)
    wanted = {
        f for e in errors for f in (e.frame - CONTEXT_FRAMES, e.frame, e.frame + CONTEXT_FRAMES)
    }
    size = (truth.resolution.width, truth.resolution.height)
    frames = _read_frames(clip, wanted, size)
    near_frames = MatchWindow.of(truth).frames
    with staged_folder(out) as staging:
        index: list[dict[str, object]] = []
        for error in errors:
            if error.frame not in frames:
                raise SourceError(f"{clip}: has no frame {error.frame} (the count events' clip?)")
            picture = _picture(error, frames, truth.line_px, events, near_frames)
            name = error.file_name
            if (staging / name).exists():  # two of a kind and class in one frame (a pair)
                name = f"{Path(name).stem}-{len(index)}.jpg"
            if not cv2.imwrite(str(staging / name), picture, [cv2.IMWRITE_JPEG_QUALITY, 85]):
                raise EdgeTLError(f"{staging / name}: cannot be written")
            index.append({"file": name, **asdict(error)})
        (staging / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return errors


def _read_frames(clip: Path, wanted: Iterable[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
    """The frames of `clip` whose indexes are in `wanted`, resized to `size` (the ground
    truth's resolution, in which the events' boxes are). Frames between are grabbed, not
    converted."""
    wanted = {f for f in wanted if f >= 0}
    frames: dict[int, np.ndarray] = {}
    capture = cv2.VideoCapture(str(clip))
    if not capture.isOpened():
        raise SourceError(f"{clip}: cannot be opened as a video")
    try:
        for index in range(max(wanted, default=-1) + 1):
            if not capture.grab():
                break
            if index in wanted:
                ok, frame = capture.retrieve()
                if ok:
                    frames[index] = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    finally:
        capture.release()
    return frames


def _picture(
    error: CountError,
    frames: dict[int, np.ndarray],
    line_px: tuple[Point, Point],
    events: Sequence[CountedEvent],
    near_frames: int,
) -> np.ndarray:
    """Three panels: before, the error's frame (annotated), after; missing ones are black."""
    shape = frames[error.frame].shape
    panels = []
    for offset in (-CONTEXT_FRAMES, 0, CONTEXT_FRAMES):
        index = error.frame + offset
        panel = frames[index].copy() if index in frames else np.zeros(shape, np.uint8)
        _draw_line(panel, line_px)
        if offset == 0:
            _annotate(panel, error, line_px, events, near_frames)
        _text(panel, f"frame {index}", (6, panel.shape[0] - 8), (255, 255, 255))
        panels.append(panel)
    height = round(shape[0] * PANEL_WIDTH / shape[1])
    return np.hstack(
        [cv2.resize(p, (PANEL_WIDTH, height), interpolation=cv2.INTER_AREA) for p in panels]
    )


def _annotate(
    panel: np.ndarray,
    error: CountError,
    line_px: tuple[Point, Point],
    events: Sequence[CountedEvent],
    near_frames: int,
) -> None:
    # the counts of neighbouring frames (within the match window) as ticks on the line: a miss
    # is often a count that went to a neighbour's blob, or came a few frames too early or late
    near = [
        e
        for i, e in enumerate(events)
        if abs(e.frame - error.frame) <= near_frames and i != error.event
    ]
    step = max(12, panel.shape[0] // 24)
    for n, event in enumerate(sorted(near, key=lambda e: e.position)):
        _mark(panel, line_px, event.position, COUNT_COLOUR, 5)
        x, y = _on_line(line_px, event.position)
        below = y + step * (1 + n % 2)  # alternate rows: neighbours' labels do not overlap
        _text(panel, f"{event.label} {event.frame - error.frame:+d}", (x - 10, below), COUNT_COLOUR)
    colour = ERROR_COLOUR[error.kind]
    if error.box is not None:
        x, y, w, h = (round(v) for v in error.box)
        cv2.rectangle(panel, (x, y), (x + w, y + h), colour, 2)
    if error.position is not None:
        _mark(panel, line_px, error.position, colour, 8)
    _text(panel, error.caption(), (6, max(22, panel.shape[0] // 14)), colour)


def _on_line(line_px: tuple[Point, Point], position: float) -> tuple[int, int]:
    """The point `position` pixels along the line from its first end."""
    (x1, y1), (x2, y2) = line_px
    length = max(float(np.hypot(x2 - x1, y2 - y1)), 1e-9)
    t = position / length
    return round(x1 + t * (x2 - x1)), round(y1 + t * (y2 - y1))


def _mark(
    panel: np.ndarray,
    line_px: tuple[Point, Point],
    position: float,
    colour: tuple[int, int, int],
    radius: int,
) -> None:
    cv2.circle(panel, _on_line(line_px, position), radius, colour, 2)


def _draw_line(panel: np.ndarray, line_px: tuple[Point, Point]) -> None:
    (x1, y1), (x2, y2) = line_px
    cv2.line(panel, (round(x1), round(y1)), (round(x2), round(y2)), LINE_COLOUR, 1)


def _text(
    panel: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int]
) -> None:
    # scaled to the clip's width so captions read the same once panels are resized
    scale = panel.shape[1] / 1200
    thickness = max(1, round(panel.shape[1] / 640))
    cv2.putText(panel, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2)
    cv2.putText(panel, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness)


def _safe(label: str) -> str:
    """A class name as a file-name part."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label) or "none"
