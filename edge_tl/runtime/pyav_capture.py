"""Decoding with PyAV (the `[video]` extra): the frame stays in the decoder's YUV planes, motion
runs on the luma plane and BGR is made only for frames that something crops or shows.

OpenCV's FFmpeg path converts every frame to BGR inside `read()`. On a 720p H.264 camera that
conversion and the grey downscale made from the BGR cost as much as decoding itself (measured
on highway-720p, 1 thread: OpenCV read + grey 3.1 + 1.0 ms per frame; PyAV decode + grey from
the luma plane 2.0 + 0.3 ms). `PyAVCapture` speaks the subset of cv2.VideoCapture the sources
use, so files, loops and live URLs work the same with either decoder.

A crop is converted on its own (`YuvPicture.bgr_region`): the same swscale conversion on the
region's planes gives the same pixels as the whole frame's conversion (tested) for a tenth of
its cost on a 720p frame. swscale runs on the calling thread (`threads=1`): PyAV's default
starts a thread per core, which costs 30 % more CPU per frame and competes with the other
cameras' threads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from edge_tl.runtime.motion import detection_scale, shrink, small_grey

__all__ = ["PyAVCapture", "YuvPicture", "pyav_available"]

# 8-bit formats whose first plane is the luma at full resolution
_LUMA_FIRST = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21"}
)

# 4:2:0 formats whose planes a region can be cut from (chroma at half width and height)
_PLANAR_420 = frozenset({"yuv420p", "yuvj420p"})

# once the regions converted from one frame add up to this share of it, the rest of its crops
# come from one whole-frame conversion (each region pays a swscale set-up of its own)
_REGIONS_SHARE = 0.25

log = logging.getLogger(__name__)

# limited-range luma (16-235, what cameras send) stretched to 0-255: the grey OpenCV's BGR
# would give, so motion thresholds mean the same with either decoder
_LIMITED_TO_FULL = np.clip((np.arange(256) - 16) * 255 / 219 + 0.5, 0, 255).astype(np.uint8)


def pyav_available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


class YuvPicture:
    """One decoded frame as the decoder left it; `bgr()` converts it (once) when asked."""

    def __init__(self, frame: Any) -> None:
        self._frame = frame  # av.VideoFrame: keeps its planes alive while this picture lives
        self.width, self.height = frame.width, frame.height
        self.shape = (frame.height, frame.width, 3)
        self._bgr: np.ndarray | None = None
        self._region_px = 0  # pixels converted region by region so far

    def bgr(self) -> np.ndarray:
        """The BGR image, as OpenCV's FFmpeg path would have made it (same swscale call)."""
        if self._bgr is None:
            self._bgr = self._frame.to_ndarray(format="bgr24", threads=1)
        return self._bgr

    def bgr_region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """`bgr()[y0:y1, x0:x1]` without converting the rest of the frame: the region's
        planes, widened to whole chroma samples, through the same swscale conversion."""
        width, height = self.width, self.height
        area = (x1 - x0) * (y1 - y0)
        if (
            self._bgr is not None
            or self._frame.format.name not in _PLANAR_420
            or width % 2
            or height % 4
            or self._region_px + area > _REGIONS_SHARE * width * height
        ):
            return self.bgr()[y0:y1, x0:x1]
        self._region_px += area
        # even corners (a chroma sample covers 2x2 pixels) and a height that is a multiple of
        # 4, so the region packs as an I420 image of whole rows
        left, right = x0 - x0 % 2, min(width, x1 + x1 % 2)
        top, bottom = y0 - y0 % 2, min(height, y1 + y1 % 2)
        if (bottom - top) % 4:
            top, bottom = (top, bottom + 2) if bottom + 2 <= height else (top - 2, bottom)
        luma, u, v = (
            self._plane(i, s)[top // s : bottom // s, left // s : right // s]
            for i, s in enumerate((1, 2, 2))
        )
        packed = np.concatenate([luma, u.reshape(-1, right - left), v.reshape(-1, right - left)])
        # av.VideoFrame, without importing PyAV here (this module is imported without it)
        region = type(self._frame).from_ndarray(packed, format=self._frame.format.name)
        region.colorspace, region.color_range = self._frame.colorspace, self._frame.color_range
        bgr = region.to_ndarray(format="bgr24", threads=1)
        return bgr[y0 - top : y1 - top, x0 - left : x1 - left]

    def _plane(self, index: int, subsampling: int) -> np.ndarray:
        """Plane `index` as rows of its visible width (the decoder pads rows to line_size)."""
        plane = self._frame.planes[index]
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        return rows[: self.height // subsampling, : self.width // subsampling]

    def small_grey(self, width: int) -> tuple[np.ndarray, float]:
        """`motion.small_grey` of this frame, made from the luma plane without any BGR:
        shrunk as INTER_AREA does and, for limited-range video, stretched to full range."""
        if self._frame.format.name not in _LUMA_FIRST:
            return small_grey(self.bgr(), width)
        scale = detection_scale(self.width, self.height, width)
        small = shrink(self._plane(0, 1), (round(self.width * scale), round(self.height * scale)))
        full_range = self._frame.format.name.startswith("yuvj") or self._frame.color_range == 2
        return (small if full_range else cv2.LUT(small, _LIMITED_TO_FULL)), scale


class PyAVCapture:
    """The part of cv2.VideoCapture the sources use (isOpened, grab, retrieve, read, get, set,
    release), over a PyAV container. `read()` returns a `YuvPicture`, not a BGR array.

    One decoding thread per capture by default: with many cameras per box the cameras are the
    parallelism, and FFmpeg's frame threads cost CPU (measured: 2.0 ms per 720p frame with
    none, 2.4 with frame threading). A packet the decoder rejects is skipped and counted, as
    OpenCV does, instead of ending the stream.
    """

    def __init__(
        self,
        source: str,
        options: dict[str, str] | None = None,
        timeout_s: float | None = None,
        threads: int = 1,
    ) -> None:
        import av

        self._av = av
        self.error: str | None = None
        self.corrupt_packets = 0
        self._pending: Any = None
        self._last_ms = 0.0
        try:
            self._container = av.open(source, options=options or {}, timeout=timeout_s)
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, OSError, IndexError) as exc:
            self._container, self.error = None, str(exc) or type(exc).__name__
            return
        self._stream.thread_type = "NONE" if threads == 1 else "AUTO"
        self._stream.thread_count = threads
        self._decoded = self._frames()

    def isOpened(self) -> bool:  # noqa: N802 (cv2.VideoCapture's name)
        return self._container is not None

    def _frames(self, from_s: float = 0.0) -> Iterator[Any]:
        """Decoded frames; those before `from_s` (decoded from the keyframe a seek went
        to) are left out."""
        assert self._container is not None
        for packet in self._container.demux(self._stream):
            try:
                for frame in packet.decode():
                    if from_s and frame.time is not None and frame.time < from_s:
                        continue
                    yield frame
            except self._av.InvalidDataError:
                self.corrupt_packets += 1

    def grab(self) -> bool:
        if self._container is None:
            return False
        try:
            self._pending = next(self._decoded, None)
        except self._av.FFmpegError as exc:  # a broken connection or a read timeout
            log.debug("pyav: %s", exc)
            self._pending = None
        if self._pending is None:
            return False
        if self._pending.time is not None:
            self._last_ms = self._pending.time * 1e3
        return True

    def retrieve(self) -> tuple[bool, YuvPicture | None]:
        if self._pending is None:
            return False, None
        return True, YuvPicture(self._pending)

    def read(self) -> tuple[bool, YuvPicture | None]:
        return self.retrieve() if self.grab() else (False, None)

    def get(self, prop: int) -> float:
        if self._container is None:
            return 0.0
        if prop == cv2.CAP_PROP_FPS:
            rate = self._stream.average_rate or self._stream.guessed_rate
            return float(rate) if rate else 0.0
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(self._stream.frames)
        if prop == cv2.CAP_PROP_POS_MSEC:
            return self._last_ms
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        """A rewind to the first frame (what `loop` needs), or a time in milliseconds (a
        file's `start_s`: the first frame at or after it comes next)."""
        if self._container is None:
            return False
        if prop == cv2.CAP_PROP_POS_FRAMES and value == 0:
            self._container.seek(0, stream=self._stream)
            self._decoded = self._frames()
            return True
        if prop == cv2.CAP_PROP_POS_MSEC and value >= 0:
            seconds = value / 1e3
            # half a frame early, so that the frame due at `value` is not lost to rounding
            rate = self._stream.average_rate or self._stream.guessed_rate
            from_s = max(0.0, seconds - (0.5 / float(rate) if rate else 0.0))
            time_base = self._stream.time_base
            self._container.seek(
                int(from_s / time_base) if time_base else 0, stream=self._stream, backward=True
            )
            self._decoded = self._frames(from_s)
            return True
        return False

    def release(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
