"""Decoding with PyAV (the `[video]` extra): the frame stays in the decoder's YUV planes, motion
runs on the luma plane and BGR is made only for frames that something crops or shows.

OpenCV's FFmpeg path converts every frame to BGR inside `read()`. On a 720p H.264 camera that
conversion and the grey downscale made from the BGR cost as much as decoding itself (measured
on highway-720p, 1 thread: OpenCV read + grey 3.1 + 1.0 ms per frame; PyAV decode + grey from
the luma plane 2.0 + 0.3 ms). `PyAVCapture` speaks the subset of cv2.VideoCapture the sources
use, so files, loops and live URLs work the same with either decoder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from edge_tl.runtime.motion import shrink, small_grey

__all__ = ["PyAVCapture", "YuvPicture", "pyav_available"]

# 8-bit formats whose first plane is the luma at full resolution
_LUMA_FIRST = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21"}
)

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

    def bgr(self) -> np.ndarray:
        """The BGR image, as OpenCV's FFmpeg path would have made it (same swscale call)."""
        if self._bgr is None:
            self._bgr = self._frame.to_ndarray(format="bgr24")
        return self._bgr

    def small_grey(self, width: int) -> tuple[np.ndarray, float]:
        """`motion.small_grey` of this frame, made from the luma plane without any BGR:
        shrunk as INTER_AREA does and, for limited-range video, stretched to full range."""
        if self._frame.format.name not in _LUMA_FIRST:
            return small_grey(self.bgr(), width)
        plane = self._frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(self.height, plane.line_size)
        scale = min(1.0, width / self.width)
        small = shrink(
            luma[:, : self.width], (round(self.width * scale), round(self.height * scale))
        )
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

    def _frames(self) -> Iterator[Any]:
        assert self._container is not None
        for packet in self._container.demux(self._stream):
            try:
                yield from packet.decode()
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
        """Only a rewind to the first frame (what `loop` needs)."""
        if self._container is None or prop != cv2.CAP_PROP_POS_FRAMES or value != 0:
            return False
        self._container.seek(0, stream=self._stream)
        self._decoded = self._frames()
        return True

    def release(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
