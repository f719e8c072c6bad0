"""A clip's hand-checked ground truth (`CLIP.counts.json`, the format of
`shared/data/videos`): the counting line in normalized and pixel coordinates, each crossing with
its frame, class, confidence (`sure` or `unsure`) and position along the line, and edge cases
that count neither way."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge_tl.errors import EdgeTLError, validation_message
from edge_tl.runtime.tracker import along

__all__ = [
    "Point",
    "Crossing",
    "EdgeCase",
    "Resolution",
    "GroundTruth",
    "load_ground_truth",
    "position_along",
]

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
    fps: float | None = Field(default=None, gt=0)  # the clip's: turns the match window into frames
    # how far along the line a count may be from its crossing, in this file's pixels (default
    # 80: the shared clips'); a file for a smaller or larger frame says its own
    match_px: float | None = Field(default=None, gt=0)
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
