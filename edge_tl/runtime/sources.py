"""Frame sources. This module: video files read frame by frame (deterministic, nothing dropped).

Each frame carries its index, its position in the media and the wall-clock time it was read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_tl.errors import SourceError

__all__ = ["Frame", "VideoFileSource"]


@dataclass(frozen=True)
class Frame:
    index: int
    image: np.ndarray  # HxWx3 uint8 BGR
    media_ms: float  # position in the media (file time), ms
    captured_at: float  # time.time() when the frame was decoded
    decode_ms: float


class VideoFileSource:
    """Iterate the frames of a video file; fails with the file named if OpenCV cannot open it."""

    def __init__(
        self, path: str | os.PathLike[str], stride: int = 1, max_frames: int | None = None
    ) -> None:
        self.path = Path(path)
        if stride < 1:
            raise SourceError(f"{self.path}: stride must be >= 1, got {stride}")
        self.stride = stride
        self.max_frames = max_frames
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such video file")
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise SourceError(
                f"{self.path}: OpenCV cannot open it as a video (unknown format or codec)"
            )
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def __iter__(self) -> Iterator[Frame]:
        index, emitted = -1, 0
        try:
            while self.max_frames is None or emitted < self.max_frames:
                t0 = time.perf_counter()
                ok, image = self._capture.read()
                decode_ms = (time.perf_counter() - t0) * 1e3
                if not ok:
                    return
                index += 1
                if index % self.stride:
                    continue
                emitted += 1
                yield Frame(
                    index=index,
                    image=image,
                    media_ms=float(self._capture.get(cv2.CAP_PROP_POS_MSEC)),
                    captured_at=time.time(),
                    decode_ms=decode_ms,
                )
        finally:
            self.close()

    def close(self) -> None:
        self._capture.release()
