"""Harvest a camera's counted tracks for labelling: a few crops per track and one line per track
in `tracks.jsonl`, so a person can label this camera's own vehicles (`edge-tl label`) and the
model can be adapted to it (`edge-tl adapt`).

Layout under the harvest folder:

    tracks.jsonl                      one JSON object per counted track (README: harvest format)
    <stream>/<track_id>/<n>.jpg       its crops, largest first

Disk use is capped: past `max_mb`, the oldest tracks' crops are deleted (their lines stay; the
label page skips tracks without crops). A full disk or an unwritable folder is one log line and
a failure count, never a stopped stream.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections import deque
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["Harvester", "TRACKS_FILE", "JPEG_QUALITY"]

log = logging.getLogger(__name__)

TRACKS_FILE = "tracks.jsonl"
JPEG_QUALITY = 92

_file_lock = threading.Lock()  # streams of one daemon share tracks.jsonl


class Harvester:
    def __init__(
        self, directory: Path, stream: str, max_crops: int = 5, max_mb: float = 500.0
    ) -> None:
        self.directory, self.stream = Path(directory), stream
        self.max_crops, self.max_bytes = max_crops, int(max_mb * 1e6)
        self.failures = 0
        self.saved = 0
        self._reported: set[str] = set()
        stream_dir = self.directory / stream
        tracks = sorted(
            (p for p in stream_dir.iterdir() if p.name.isdigit()) if stream_dir.is_dir() else [],
            key=lambda p: int(p.name),
        )
        # ids continue after the last harvested track, so a restarted daemon overwrites nothing
        self.id_offset = int(tracks[-1].name) if tracks else 0
        self._kept: deque[tuple[Path, int]] = deque((p, _folder_bytes(p)) for p in tracks)
        self._bytes = sum(size for _, size in self._kept)

    def save(self, track_id: int, crops: list[np.ndarray], record: dict[str, Any]) -> str | None:
        """Write a counted track's crops (largest first, up to `max_crops`) and its line;
        returns its id, or None when writing failed (logged once per reason)."""
        number = self.id_offset + track_id
        folder = self.directory / self.stream / str(number)
        chosen = sorted(crops, key=lambda c: c.shape[0] * c.shape[1], reverse=True)[
            : self.max_crops
        ]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            names, size = [], 0
            for i, crop in enumerate(chosen):
                ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if not ok:
                    continue
                path = folder / f"{i}.jpg"
                path.write_bytes(encoded.tobytes())
                names.append(path.relative_to(self.directory).as_posix())
                size += len(encoded)
            line = {
                "id": f"{self.stream}/{number}",
                "stream": self.stream,
                "track_id": number,
                **record,
                "crops": names,
            }
            with _file_lock, open(self.directory / TRACKS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        except OSError as exc:
            self.failures += 1
            reason = exc.strerror or str(exc)
            if reason not in self._reported:  # once per reason, not once per vehicle
                self._reported.add(reason)
                log.error("harvest %s: %s: %s; the stream goes on", self.stream, folder, reason)
            return None
        self.saved += 1
        self._kept.append((folder, size))
        self._bytes += size
        self._rotate()
        return line["id"]

    def _rotate(self) -> None:
        while self._bytes > self.max_bytes and len(self._kept) > 1:
            folder, size = self._kept.popleft()
            shutil.rmtree(folder, ignore_errors=True)
            self._bytes -= size


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
