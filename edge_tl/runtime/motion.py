"""Moving-object detection for traffic cameras: background subtraction on a small grey
downscale (cost grows with pixels: performance-notes.md), morphology, contours → boxes in the
full frame's coordinates."""

from __future__ import annotations

from typing import ClassVar, Literal

import cv2
import numpy as np
from pydantic import ConfigDict, Field

from edge_tl.runtime.frame_rate import DEFAULT_FPS
from edge_tl.runtime.renamed import RefusesRenamed

__all__ = [
    "MotionConfig",
    "MotionDetector",
    "Box",
    "DILATION_PX",
    "detection_scale",
    "small_grey",
    "shrink",
]

Box = tuple[int, int, int, int]  # x, y, w, h in full-frame pixels

KERNEL_PX = 5  # the elliptic kernel of the opening and the dilation
DILATIONS = 2  # dilation passes that join a vehicle's broken mask into one blob
DILATION_PX = KERNEL_PX // 2 * DILATIONS  # how far dilation grows a blob, in mask pixels


class MotionConfig(RefusesRenamed):
    """The `[streams.motion]` section of the daemon's config, used as it is validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # KNN by default: it names an unseen camera's vehicles better (measured 2026-12-05, both shared
    # clips, the grey perturbed four ways to see past single crossings): overhead class accuracy on
    # sure crossings 0.68-0.82 (MOG2, mean 0.75) -> 0.82-0.89 (KNN, mean 0.87), F1 0.87 -> 0.86 (3
    # more spurious counts); highway identical (F1 0.952, class 1.00). Overhead's counted cars get
    # tighter boxes (median area -15 %, the largest tenth -25 %) and more votes per track (4.1 vs
    # 3.7). Its CPU price, MOG2 and KNN loads alternating (benchmarks/streams_ab.py): 11 highway
    # cameras 77-78 % -> 75-77 % of frames; 8 overhead cameras real time with MOG2, 89-90 % with
    # KNN. "mog2" serves one more busy camera in eight where names matter less. counting.md
    method: Literal["mog2", "knn"] = "knn"
    # detection runs with the frame's longer side (a landscape frame's width) this long
    width: int = Field(default=320, ge=64)
    min_area: float = Field(default=0.002, gt=0, lt=1)  # share of the frame a blob must cover
    # how long the background model remembers, in seconds, given to it as frames at the
    # stream's own rate (`follow_rate`): 300 frames were 10 s at 30 fps but 30 s at 10 fps, and a
    # stopped vehicle took 3 times as long to become background. With `max_missed_s`, overhead
    # clip at 15 / 10 fps F1 0.763 / 0.713 -> 0.821 / 0.748 (highway 10 fps 1.000 -> 0.957, a
    # speck at the line's end); 30 fps unchanged (counting.md)
    history_s: float = Field(default=10.0, gt=0)
    # how long the background is learnt before anything is detected (10 frames at 30 fps), in
    # frames at the stream's rate: 10 frames were a second without detections at 10 fps
    warmup_s: float = Field(default=0.33, ge=0)
    threshold: float = Field(default=16.0, gt=0)  # MOG2's varThreshold (KNN: see KNN_DIST2)
    # Gaussians per pixel in MOG2 (OpenCV's default is 5; KNN has none). Measured on both shared
    # clips with everything else equal, 3 against 5: highway F1 0.952 both, class accuracy 0.90 ->
    # 1.00; overhead F1 0.839 -> 0.874, class 0.72 -> 0.75, spurious counts 8 -> 3; MOG2 10-20 %
    # cheaper
    mixtures: int = Field(default=3, ge=1, le=8)

    RENAMED: ClassVar[dict[str, str]] = {
        "history": "'history_s', in seconds (300 frames at 30 fps: 10)",
        "warmup_frames": "'warmup_s', in seconds (10 frames at 30 fps: 0.33)",
    }


# KNN's distance threshold is in grey levels (OpenCV's 400: 20 levels squared), so a dim scene,
# whose vehicles differ from the road by fewer levels, loses them: the overhead clip at 40 % of
# its light (dusk, with sensor noise) counted F1 0.56 against 0.89. The threshold now shrinks
# with the scene's contrast (the grey's standard deviation, smoothed over frames) below
# DAYLIGHT_CONTRAST: three quarters of the daylight contrast of both shared clips (std 40-41),
# so daylight scenes keep OpenCV's threshold (counts identical); dim overhead 0.84.
KNN_DIST2 = 400.0
DAYLIGHT_CONTRAST = 30.0
MIN_CONTRAST_RATIO = 0.25  # darker than this, noise would swamp a smaller threshold
CONTRAST_SMOOTHING = 0.05  # per frame: a vehicle entering does not move the threshold


class MotionDetector:
    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        self._fps = DEFAULT_FPS
        self._subtractor = _subtractor(self.config, self._fps)
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (KERNEL_PX, KERNEL_PX))
        self._frames = 0
        self._contrast: float | None = None  # the grey's standard deviation, smoothed
        self.mask: np.ndarray | None = None  # the last frame's foreground, before dilation
        self.mask_scale = 1.0  # its size as a share of the frame's

    def reset(self) -> None:
        """Forget the background (the camera moved): learn it again from the next frames."""
        self._subtractor = _subtractor(self.config, self._fps)
        self._frames = 0
        self.mask = None

    def follow_rate(self, fps: float) -> None:
        """The stream's frame rate (see FrameRate): the background's history and the warm-up
        are kept in seconds."""
        if fps != self._fps:
            self._fps = fps
            self._subtractor.setHistory(_history_frames(self.config, fps))

    def detect(self, frame: np.ndarray) -> list[Box]:
        return self.detect_grey(*small_grey(frame, self.config.width))

    def detect_grey(self, grey: np.ndarray, scale: float) -> list[Box]:
        """`detect` on a frame already shrunk and made grey by `small_grey` (shared with
        camera-motion estimation: one downscale per frame)."""
        if self._frames == 0:
            # KNN picks which background samples to refresh with OpenCV's per-thread RNG: a
            # clip's counts would hang on whatever drew from it before in the process (another
            # clip, another test). Seed 0 is a fresh thread's state: the same counts as before.
            cv2.setRNGSeed(0)
        if isinstance(self._subtractor, cv2.BackgroundSubtractorKNN):
            self._follow_contrast(grey)
        mask = self._subtractor.apply(grey)
        self._frames += 1
        if self._frames <= round(self.config.warmup_s * self._fps):
            return []
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        # before dilation joins neighbours: where side-by-side vehicles are told apart
        self.mask, self.mask_scale = mask, scale
        mask = cv2.dilate(mask, self._kernel, iterations=DILATIONS)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        min_area = self.config.min_area * grey.shape[0] * grey.shape[1]
        boxes = []
        for contour in contours:
            if cv2.contourArea(contour) < min_area:
                continue
            x, y, w, h = cv2.boundingRect(contour)
            boxes.append((round(x / scale), round(y / scale), round(w / scale), round(h / scale)))
        return boxes

    def _follow_contrast(self, grey: np.ndarray) -> None:
        """KNN's threshold scaled with the scene's contrast, under daylight's (see KNN_DIST2)."""
        contrast = float(cv2.meanStdDev(grey)[1][0, 0])  # 3 µs at 320 px; numpy's std 70
        if self._contrast is not None:
            contrast += (1 - CONTRAST_SMOOTHING) * (self._contrast - contrast)
        self._contrast = contrast
        ratio = min(1.0, max(MIN_CONTRAST_RATIO, contrast / DAYLIGHT_CONTRAST))
        self._subtractor.setDist2Threshold(KNN_DIST2 * ratio * ratio)


def _history_frames(config: MotionConfig, fps: float) -> int:
    return max(1, round(config.history_s * fps))


def _subtractor(config: MotionConfig, fps: float) -> cv2.BackgroundSubtractor:
    history = _history_frames(config, fps)
    if config.method == "knn":
        return cv2.createBackgroundSubtractorKNN(
            history=history, dist2Threshold=KNN_DIST2, detectShadows=False
        )
    subtractor = cv2.createBackgroundSubtractorMOG2(
        history=history, varThreshold=config.threshold, detectShadows=False
    )
    subtractor.setNMixtures(config.mixtures)
    return subtractor


def detection_scale(width: int, height: int, size: int) -> float:
    """The scale that brings a frame's longer side to at most `size` pixels. The longer side,
    not the width: a portrait camera's vehicles then span as many detection pixels as a
    landscape one's, so the pixel-sized kernels and thresholds mean the same (measured: the
    overhead clip turned 90° and shrunk by its width counted 16 spurious splits and strips)."""
    return min(1.0, size / max(width, height))


def small_grey(frame: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """`frame` (BGR) shrunk to at most `width` pixels along its longer side and made grey, and
    the scale used: what motion detection and camera-motion estimation both work on (cost grows
    with pixels)."""
    height, full_width = frame.shape[:2]
    scale = detection_scale(full_width, height, width)
    small = shrink(frame, (round(full_width * scale), round(height * scale)))
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), scale


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` averaged down to `size` (width, height) as INTER_AREA does, halving first while
    the rest stays a whole factor: OpenCV's 2x area path is vectorised, its other factors are
    not (a 720p luma plane to 320 px: 0.34 ms in one step, 0.09 ms in two halvings, the same
    pixels within one grey level of rounding). Fractional factors go in one step, as before:
    OpenCV's fractional area resize of a halved image is not the area average of the original."""
    width, height = size
    halved = False
    while image.shape[1] % (2 * width) == 0 and image.shape[0] % (2 * height) == 0:
        image = cv2.resize(
            image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA
        )
        halved = True
    if halved and (image.shape[1], image.shape[0]) == (width, height):
        return image
    # also when no shrinking is needed: a new array, never a view of the caller's frame
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
