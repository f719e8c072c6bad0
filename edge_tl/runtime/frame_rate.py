"""A stream's frame rate, read from its frames' media timestamps, so that settings given in
seconds become frame counts that mean the same at 10 fps as at 30.

Measured (benchmarks/results/counting.md, "the clips made into other cameras"): the recount
window was 15 frames, 0.5 s at the shared clips' 30 fps but 1.5 s at 10 fps, where it swallowed
the next vehicle of the same lane (overhead clip at 10 fps: F1 0.70; with the window in
seconds 0.79).
"""

from __future__ import annotations

import statistics
from collections import deque

__all__ = ["DEFAULT_FPS", "FrameRate"]

# until timestamps say otherwise, and for sources whose timestamps stand still
DEFAULT_FPS = 30.0
_INTERVALS = 31  # recent intervals in the median: a late or repeated frame does not move it


class FrameRate:
    """Milliseconds per frame index from `observe`d (index, media time) pairs. Indices count
    every decoded frame (a stride skips some), so intervals are divided by the index step;
    a timestamp that does not advance (a loop back to the start, a source without timestamps)
    is not an interval."""

    def __init__(self) -> None:
        self._last: tuple[int, float] | None = None
        self._intervals: deque[float] = deque(maxlen=_INTERVALS)
        self._steps: deque[float] = deque(maxlen=_INTERVALS)  # between observed frames

    def observe(self, index: int, media_ms: float) -> None:
        if self._last is not None:
            last_index, last_ms = self._last
            if index > last_index and media_ms > last_ms:
                self._intervals.append((media_ms - last_ms) / (index - last_index))
                self._steps.append(media_ms - last_ms)
        self._last = (index, media_ms)

    @property
    def fps(self) -> float:
        return 1000.0 / statistics.median(self._intervals) if self._intervals else DEFAULT_FPS

    @property
    def observed_fps(self) -> float:
        """Frames observed per second: `fps` divided by a stride (what a model that learns
        from every observed frame, the background's, sees)."""
        return 1000.0 / statistics.median(self._steps) if self._steps else DEFAULT_FPS

    def frames(self, seconds: float) -> int:
        """`seconds` as a number of frame indices at the current rate."""
        return round(seconds * self.fps)
