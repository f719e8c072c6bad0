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
from typing import ClassVar

import cv2
import numpy as np
from pydantic import ConfigDict, Field

from edge_tl.runtime.frame_rate import DEFAULT_FPS
from edge_tl.runtime.motion import Box, small_grey
from edge_tl.runtime.renamed import RefusesRenamed

__all__ = ["CameraMotionConfig", "CameraMotion", "GlobalMotion"]

STILL_PX = 0.5  # a tracked corner that moved less than this (at `width`) did not move
STILL_SHARE = 0.1  # this share of still corners means the camera is still
MAX_CORNERS = 100
# corners found once are followed from estimate to estimate (where LK found them again) and
# found afresh when fewer than half are left or after this many estimates: finding them cost
# as much as tracking them
REFRESH_ESTIMATES = 8
MIN_WINDOW = 3  # a median of fewer estimates outvotes no single misfit


class CameraMotionConfig(RefusesRenamed):
    """The `[streams.camera_motion]` section: when the camera counts as moving."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    width: int = Field(default=320, ge=64)  # longer side it is estimated at (as motion detection)
    # Speeds and times, not frame counts: the same pan moves the view 3 times as far between
    # frames at 10 fps as at 30, so `moving_px` 3.5 per frame called the overhead clip's zoom-in
    # a movement at 15 and 10 fps and not at 30 (camera_moved at 4 / 2 / 3 different frames)
    moving_px_s: float = Field(default=105.0, gt=0)  # background shift per second at `width`
    # measured on the overhead clip: pausing while it zooms lost more real crossings than it
    # saved spurious ones (recall 0.80 → 0.67), so counting goes on unless asked otherwise
    pause_counting: bool = False
    relearn: bool = False  # forget the background once a movement has settled (measured: costs
    # recall, F1 0.85 → 0.79: ten warm-up frames without detections, then ghosts)
    window_s: float = Field(default=0.33, gt=0)  # the median that smooths single misfits
    # estimate at most this often (the shift between estimates divided by the frames between
    # them): the background shift is smooth over frames, and optical flow was half of this
    # module's cost on 720p cameras. Every 2nd frame at 30 fps, every frame at 10-20 fps: there
    # a 2-frame step would leave 2 estimates in `window_s` (whose median outvotes no misfit:
    # a spurious camera_moved in the overhead clip's close view at 15 and 10 fps) and give
    # optical flow twice the distance to find
    every_s: float = Field(default=0.067, gt=0)
    settle_s: float = Field(default=0.27, gt=0)  # still this long before counting resumes

    RENAMED: ClassVar[dict[str, str]] = {
        "moving_px": "'moving_px_s', per second (3.5 px a frame at 30 fps: 105)",
        "window": "'window_s', in seconds (5 estimates of every 2nd frame at 30 fps: 0.33)",
        "every": "'every_s', in seconds (every 2nd frame at 30 fps: 0.067)",
        "settle_frames": "'settle_s', in seconds (8 frames at 30 fps: 0.27)",
    }


@dataclass(frozen=True)
class GlobalMotion:
    shift_px: float  # background displacement per frame (median over `window_s`), at `width`
    shift_px_s: float  # the same per second at the stream's rate
    moving: bool  # faster than moving_px_s
    started: bool  # this frame began a movement (emit camera_moved)
    settled: bool  # this frame ended one (relearn the background, drop the tracks)


class CameraMotion:
    """Feed every frame to `update`; it says whether the camera moves. Its settings in seconds
    become frames at the rate given to `follow_rate` (30 fps until then)."""

    def __init__(self, config: CameraMotionConfig | None = None) -> None:
        self.config = config or CameraMotionConfig()
        self._previous: np.ndarray | None = None
        self._corners: np.ndarray | None = None  # the previous frame's, tracked into it
        self._corners_age = 0  # estimates since the corners were last found
        self._fps = DEFAULT_FPS
        self._every = self._frames_between_estimates()
        self._recent: deque[float] = deque(maxlen=self._window())
        self._moving = False
        self._still = 0
        self._frames = 0
        self._last = GlobalMotion(0.0, 0.0, False, False, False)
        self.movements = 0

    def follow_rate(self, fps: float) -> None:
        """The rate at which frames reach `update` (a stride's, not the decoder's)."""
        if fps != self._fps:
            self._fps = fps
            self._every = self._frames_between_estimates()
            self._recent = deque(self._recent, maxlen=self._window())

    def _frames_between_estimates(self) -> int:
        return max(1, round(self.config.every_s * self._fps))

    def _window(self) -> int:
        """Estimates in the median: those of `window_s`, and at least MIN_WINDOW."""
        return max(MIN_WINDOW, round(self.config.window_s * self._fps / self._every))

    def update(self, frame: np.ndarray, vehicles: Sequence[Box] = ()) -> GlobalMotion:
        """`vehicles`: the previous frame's moving blobs (full-frame pixels); corners inside
        them are left out, so traffic that fills a close view does not pass for a pan."""
        return self.update_grey(*small_grey(frame, self.config.width), vehicles)

    def update_grey(
        self, grey: np.ndarray, scale: float, vehicles: Sequence[Box] = ()
    ) -> GlobalMotion:
        """`update` on a frame already shrunk and made grey by `small_grey`; frames between
        estimates (`every_s`) get the last verdict, without its start/settle edges."""
        every = self._every
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
        if smoothed * self._fps > self.config.moving_px_s:
            started, self._moving, self._still = not self._moving, True, 0
            self.movements += started
        elif self._moving:
            self._still += every
            if self._still >= max(1, round(self.config.settle_s * self._fps)):
                self._moving, settled = False, True
        self._last = GlobalMotion(
            shift_px=smoothed,
            shift_px_s=smoothed * self._fps,
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
