"""Is the camera itself moving? Corners tracked with pyramidal Lucas-Kanade between consecutive
small grey frames: when (almost) none of them stands still, the median displacement is the
camera's. A pan, tilt, zoom or shake moves every background pixel; background subtraction then
sees the whole scene as foreground and static things cross the counting line.

Measured on the shared clips at 320 px width: a static mast with sway and traffic, 0-0.2 px per
frame; the overhead clip's slow zoom-out, 1.1-3.0 px; its zoom-in and fast tilt, 2.5-10 px.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge_tl.runtime.motion import Box, small_grey

__all__ = ["CameraMotionConfig", "CameraMotion", "GlobalMotion"]

STILL_PX = 0.5  # a tracked corner that moved less than this (at `width`) did not move
STILL_SHARE = 0.1  # this share of still corners means the camera is still
MAX_CORNERS = 100
# corners found once are followed from estimate to estimate (where LK found them again) and
# found afresh when fewer than half are left or after this many estimates: finding them cost
# as much as tracking them
REFRESH_ESTIMATES = 8


class CameraMotionConfig(BaseModel):
    """The `[streams.camera_motion]` section: when the camera counts as moving."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    width: int = Field(default=320, ge=64)  # longer side it is estimated at (as motion detection)
    moving_px: float = Field(default=3.5, gt=0)  # per-frame background shift at `width`
    # measured on the overhead clip: pausing while it zooms lost more real crossings than it
    # saved spurious ones (recall 0.80 → 0.67), so counting goes on unless asked otherwise
    pause_counting: bool = False
    relearn: bool = False  # forget the background once a movement has settled (measured: costs
    # recall, F1 0.85 → 0.79: ten warm-up frames without detections, then ghosts)
    window: int = Field(default=5, ge=1)  # estimates in the median that smooths single misfits
    # estimate on every Nth frame (the shift between them divided by N): the background shift
    # is smooth over frames, and optical flow was half of this module's cost on 720p cameras
    every: int = Field(default=2, ge=1)
    settle_frames: int = Field(default=8, ge=1)  # still frames before counting resumes


@dataclass(frozen=True)
class GlobalMotion:
    shift_px: float  # background displacement this frame (median of `window`), at `width`
    moving: bool  # faster than moving_px
    started: bool  # this frame began a movement (emit camera_moved)
    settled: bool  # this frame ended one (relearn the background, drop the tracks)


class CameraMotion:
    """Feed every frame to `update`; it says whether the camera moves."""

    def __init__(self, config: CameraMotionConfig | None = None) -> None:
        self.config = config or CameraMotionConfig()
        self._previous: np.ndarray | None = None
        self._corners: np.ndarray | None = None  # the previous frame's, tracked into it
        self._corners_age = 0  # estimates since the corners were last found
        self._recent: deque[float] = deque(maxlen=self.config.window)
        self._moving = False
        self._still = 0
        self._frames = 0
        self._last = GlobalMotion(0.0, False, False, False)
        self.movements = 0

    def update(self, frame: np.ndarray, vehicles: Sequence[Box] = ()) -> GlobalMotion:
        """`vehicles`: the previous frame's moving blobs (full-frame pixels); corners inside
        them are left out, so traffic that fills a close view does not pass for a pan."""
        return self.update_grey(*small_grey(frame, self.config.width), vehicles)

    def update_grey(
        self, grey: np.ndarray, scale: float, vehicles: Sequence[Box] = ()
    ) -> GlobalMotion:
        """`update` on a frame already shrunk and made grey by `small_grey`; frames between
        estimates (`every`) get the last verdict, without its start/settle edges."""
        every = self.config.every
        self._frames += 1
        if self._previous is not None and (self._frames - 1) % every:
            return replace(self._last, started=False, settled=False)
        shift = 0.0
        if self._previous is not None:
            corners = self._corners_of_previous(_mask(grey.shape, vehicles, scale))
            shift, self._corners = _background_shift(self._previous, grey, corners, frames=every)
        self._previous = grey
        self._recent.append(shift)
        smoothed = float(np.median(self._recent))
        started = settled = False
        if smoothed > self.config.moving_px:
            started, self._moving, self._still = not self._moving, True, 0
            self.movements += started
        elif self._moving:
            self._still += every
            if self._still >= self.config.settle_frames:
                self._moving, settled = False, True
        self._last = GlobalMotion(
            shift_px=smoothed,
            moving=self._moving,
            started=started,
            settled=settled,
        )
        return self._last

    def _corners_of_previous(self, mask: np.ndarray | None) -> np.ndarray | None:
        """Corners of the previous frame to track: those followed into it by the last estimate
        (outside the blobs), else new ones."""
        corners = self._corners
        if corners is not None and mask is not None:
            x, y = np.round(corners.reshape(-1, 2)).astype(int).T
            inside = (x >= 0) & (y >= 0) & (x < mask.shape[1]) & (y < mask.shape[0])
            corners = corners[inside]
            corners = corners[mask[y[inside], x[inside]] > 0]
        if (
            corners is not None
            and len(corners) >= MAX_CORNERS // 2
            and self._corners_age < REFRESH_ESTIMATES
        ):
            self._corners_age += 1
            return corners
        self._corners_age = 0
        assert self._previous is not None
        return cv2.goodFeaturesToTrack(
            self._previous, maxCorners=MAX_CORNERS, qualityLevel=0.01, minDistance=8, mask=mask
        )


def _mask(shape: tuple[int, ...], boxes: Sequence[Box], scale: float) -> np.ndarray | None:
    """Where corners may be taken: outside every box; None (anywhere) when the boxes cover
    most of the frame, as they do while the camera moves."""
    if not boxes:
        return None
    mask = np.full(shape[:2], 255, np.uint8)
    for x, y, w, h in boxes:
        x0, y0 = int(x * scale), int(y * scale)
        mask[y0 : y0 + int(np.ceil(h * scale)) + 1, x0 : x0 + int(np.ceil(w * scale)) + 1] = 0
    return mask if mask.mean() > 255 * 0.25 else None


def _background_shift(
    previous: np.ndarray, current: np.ndarray, points: np.ndarray | None, frames: int = 1
) -> tuple[float, np.ndarray | None]:
    """Median displacement per frame of `points` (corners of `previous`) tracked into
    `current`, `frames` later (still means under STILL_PX per frame there too), or 0 when a
    share of them stood still: a still camera always shows some still background, while
    traffic can fill most of a close view and move most corners (measured: 16-20 % still
    corners under a bus in the overhead clip's close view, 0-1 % during its zooms). Also 0
    when there is too little texture to tell (a blank frame is not a moving camera). Returns
    the shift and where the points were found in `current`."""
    if points is None or len(points) < 8:
        return 0.0, None
    moved, status, _ = cv2.calcOpticalFlowPyrLK(
        previous, current, points, None, winSize=(15, 15), maxLevel=2
    )
    found = status.ravel() == 1
    if found.sum() < 8:
        return 0.0, None
    flow = np.hypot(*(moved[found] - points[found]).reshape(-1, 2).T)
    if float((flow < STILL_PX * frames).mean()) >= STILL_SHARE:
        return 0.0, moved[found]
    return float(np.median(flow)) / frames, moved[found]
