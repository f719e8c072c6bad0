"""Harvested tracks and their labels: `tracks.jsonl` (written by runtime/harvest.py) and
`labels.csv` (`id,class`, one row per labelled track, written atomically), exported as an
ImageFolder for `edge-tl adapt`. Torch-free.

Exported crops are named `<stream>__<track>__<n>.jpg`, so the crops of one track can be kept
together (never split between training and held-out data).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_tl.errors import DataError, validation_message
from edge_tl.files import staged_folder, write_atomic
from edge_tl.runtime.harvest import TRACKS_FILE

__all__ = [
    "FEW_TRACKS",
    "LABELS_FILE",
    "DISCARD",
    "HarvestedTrack",
    "load_tracks",
    "read_labels",
    "write_labels",
    "export_labelled",
    "track_of",
]

LABELS_FILE = "labels.csv"
DISCARD = "x"  # the class of a track a person threw away (not a vehicle, two vehicles...)
# a class with fewer labelled tracks from a camera is flagged (label page) and warned about
# (adapt): measured on the overhead clip, one bike track among 15 left most of that camera's
# bikes named car after adapting
FEW_TRACKS = 3


class HarvestedTrack(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str
    stream: str
    track_id: int
    count_frame: int
    box: list[float]
    class_: str | None = Field(default=None, alias="class")  # predicted at the count
    score: float | None = None
    crops: list[str]


def load_tracks(directory: Path) -> list[HarvestedTrack]:
    """Every track of a harvest folder whose crops are still there, in harvest order."""
    path = Path(directory) / TRACKS_FILE
    if not path.is_file():
        raise DataError(f"{directory}: no {TRACKS_FILE}; is it a harvest folder?")
    tracks = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            track = HarvestedTrack.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValidationError, TypeError) as exc:
            detail = validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
            raise DataError(f"{path}: line {number}: {detail}") from None
        track.crops = [c for c in track.crops if (Path(directory) / c).is_file()]
        if track.crops:  # rotated out by the disk cap otherwise
            tracks.append(track)
    return tracks


def read_labels(path: Path) -> dict[str, str]:
    """`id,class` rows; a later row for the same id wins (the page appends corrections)."""
    if not path.is_file():
        return {}
    labels = {}
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), 1):
            if not row or row == ["id", "class"]:
                continue
            if len(row) != 2:
                raise DataError(f"{path}: line {number}: expected 'id,class', got {row}")
            labels[row[0]] = row[1]
    return labels


def write_labels(path: Path, labels: Mapping[str, str]) -> None:
    """The whole file, written to a temporary name and renamed: a killed process leaves the
    old file or the new one, never half of one."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "class"])
    writer.writerows(sorted(labels.items()))
    write_atomic(path, buffer.getvalue())


def export_labelled(
    directory: Path, labels: Mapping[str, str], out: Path, classes: Sequence[str] | None = None
) -> dict[str, int]:
    """Labelled tracks' crops as `out/<class>/<stream>__<track>__<n>.jpg`; discarded tracks
    are left out. With `classes`, a label outside them is an error naming the track. Returns
    tracks per class."""
    tracks = {t.id: t for t in load_tracks(directory)}
    unknown_ids = sorted(set(labels) - set(tracks))
    if unknown_ids:
        raise DataError(
            f"{directory}: labelled track(s) {', '.join(unknown_ids[:3])} are not in "
            f"{TRACKS_FILE} (or their crops were rotated out)"
        )
    wanted = {i: c for i, c in labels.items() if c != DISCARD}
    if classes is not None:
        bad = {i: c for i, c in wanted.items() if c not in classes}
        if bad:
            track, label = next(iter(bad.items()))
            raise DataError(
                f"track {track}: class '{label}' is not one of the model's ({', '.join(classes)})"
            )
    if out.exists():
        raise DataError(f"{out}: already exists; choose a new folder")
    per_class: dict[str, int] = {}
    with staged_folder(out) as staging:  # a failed copy leaves no half-exported folder
        for track_id, label in sorted(wanted.items()):
            track = tracks[track_id]
            (staging / label).mkdir(exist_ok=True)
            for n, crop in enumerate(track.crops):
                shutil.copyfile(
                    directory / crop, staging / label / f"{track.stream}__{track.track_id}__{n}.jpg"
                )
            per_class[label] = per_class.get(label, 0) + 1
    return per_class


def track_of(path: Path) -> str:
    """The track an exported crop belongs to (`<stream>__<track>`)."""
    return path.stem.rsplit("__", 1)[0]
