"""Frame sources: video files, cameras (/dev/videoN or an index), RTSP/HTTP URLs, GStreamer
pipelines, image folders.

Files are read frame by frame (deterministic, nothing dropped) unless `realtime`. Live sources
run one reader thread each that keeps only recent frames (the newest, and those younger than
`max_lag_s`), so latency never grows with time; a source that fails or ends reconnects with
exponential backoff and jitter, and reports its state (connecting, live, stalled,
reconnecting, stopped). A file can stand in for a camera
(`live`): looped, paced at its frame rate and read the way a camera is, so a consumer that
falls behind skips frames instead of working through a backlog.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol, cast, runtime_checkable

import cv2
import numpy as np

from edge_tl.errors import DataError, SourceError
from edge_tl.images import find_images, load_image
from edge_tl.runtime.motion import small_grey

__all__ = [
    "Source",
    "Frame",
    "Picture",
    "Decoder",
    "SourceState",
    "SourceStats",
    "VideoFileSource",
    "ImageFolderSource",
    "LiveSource",
    "Backoff",
    "open_source",
    "check_file_source",
    "resolve_decoder",
    "is_live",
]

log = logging.getLogger(__name__)


Decoder = Literal["auto", "opencv", "pyav"]


@runtime_checkable
class Picture(Protocol):
    """A decoded frame not yet converted to BGR (PyAV's YUV planes: `pyav_capture.py`)."""

    shape: tuple[int, int, int]

    def bgr(self) -> np.ndarray: ...

    def bgr_region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray: ...

    def small_grey(self, width: int) -> tuple[np.ndarray, float]: ...


@dataclass(frozen=True)
class Frame:
    index: int
    pixels: np.ndarray | Picture  # HxWx3 uint8 BGR, or a picture converted when first needed
    media_ms: float  # position in the media for files; ms since the source opened for live
    captured_at: float  # time.time() when the frame was decoded
    decode_ms: float

    @cached_property
    def image(self) -> np.ndarray:
        """HxWx3 uint8 BGR (made on first use from a `Picture`)."""
        return self.pixels if isinstance(self.pixels, np.ndarray) else self.pixels.bgr()

    def crop(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """`image[y0:y1, x0:x1]`, converting only that region when the frame is still YUV."""
        if isinstance(self.pixels, np.ndarray):
            return self.pixels[y0:y1, x0:x1]
        return self.pixels.bgr_region(x0, y0, x1, y1)

    @property
    def shape(self) -> tuple[int, int]:
        """Height and width, without converting anything."""
        return self.pixels.shape[0], self.pixels.shape[1]

    def small_grey(self, width: int) -> tuple[np.ndarray, float]:
        """The frame shrunk to at most `width` across and made grey, and the scale: from the
        luma plane when the frame is still YUV (no BGR made for it)."""
        if isinstance(self.pixels, np.ndarray):
            return small_grey(self.pixels, width)
        return self.pixels.small_grey(width)


class SourceState(str, Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


@dataclass
class SourceStats:
    frames_read: int = 0
    frames_dropped: int = 0  # replaced by a newer frame before anyone took them
    reconnects: int = 0
    last_frame_at: float = 0.0


@runtime_checkable
class Source(Protocol):
    """What the daemon and `edge-tl stream` read frames from: files, folders and live streams."""

    live: bool
    fps: float  # 0 when unknown
    frame_count: int  # 0 for live streams
    stats: SourceStats

    def __iter__(self) -> Iterator[Frame]: ...

    def state(self) -> SourceState: ...

    def close(self) -> None: ...


class VideoFileSource:
    """Iterate the frames of a video file; fails with the file named if OpenCV cannot open it."""

    live = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        stride: int = 1,
        max_frames: int | None = None,
        realtime: bool = False,
        prefetch: int = 0,
        loop: bool = False,
        decoder: Decoder = "auto",
        start_s: float = 0.0,
    ) -> None:
        self.path = Path(path)
        self.loop = loop  # start again at the end (a clip standing in for a camera)
        self.start_s = start_s  # where the first pass starts; later loops start at 0
        self.prefetch = prefetch  # >0: decode ahead in a thread (bounded queue, nothing dropped)
        if stride < 1:
            raise SourceError(f"{self.path}: stride must be >= 1, got {stride}")
        self.stride, self.max_frames, self.realtime = stride, max_frames, realtime
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such video file")
        if cv2.haveImageReader(str(self.path)):  # FFmpeg would play a JPEG as one frame
            raise SourceError(
                f"{self.path}: an image, not a video (by its content); classify images with "
                "`edge-tl predict`, or give a folder of images as the source"
            )
        self._capture = _file_capture(str(self.path), decoder)
        if not self._capture.isOpened():
            raise SourceError(
                f"{self.path}: OpenCV cannot open it as a video (unknown format or codec)"
            )
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if start_s < 0 or (self.fps and self.frame_count and start_s >= self.duration_s):
            raise SourceError(
                f"{self.path}: start_s {start_s:g} is outside the file (0 to "
                f"{self.duration_s:.1f} s)"
            )
        self._state = SourceState.LIVE
        self.stats = SourceStats()
        # the capture is released by the thread that reads it: FFmpeg's frame threads abort
        # the process (pthread_frame.c: fctx->async_lock) when another thread frees a decoder
        # in the middle of a read
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reading = False

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps else 0.0

    def __iter__(self) -> Iterator[Frame]:
        if self.prefetch > 0:
            return self._prefetched()
        return self._frames()

    def _prefetched(self) -> Iterator[Frame]:
        """Decode on a second core while the caller classifies: same frames, same order."""
        import queue

        frames: queue.Queue[Frame | None] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def decode() -> None:
            for frame in self._frames():
                while not stop.is_set():
                    try:
                        frames.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            frames.put(None)

        thread = threading.Thread(target=decode, name=f"decode-{self.path.name}", daemon=True)
        thread.start()
        try:
            while (frame := frames.get()) is not None:
                yield frame
        finally:
            stop.set()
            thread.join(timeout=5)

    def _frames(self) -> Iterator[Frame]:
        index, emitted = -1, 0
        started = wall_started = 0.0  # when the first frame was there: a paced file's clock
        paced = bool(self.realtime and self.fps)
        with self._lock:
            if self._stop.is_set():
                return
            self._reading = True
        try:
            if self.start_s > 0:
                self._capture.set(cv2.CAP_PROP_POS_MSEC, self.start_s * 1e3)
            while not self._stop.is_set() and (
                self.max_frames is None or emitted < self.max_frames
            ):
                t0 = time.perf_counter()
                # frames between analysed ones are decoded (H.264 needs them) but never
                # converted to BGR: grab() instead of read() saves that conversion
                skipped = (index + 1) % self.stride != 0
                ok, image = self._next(skipped)
                if not ok and self.loop and index >= 0:
                    self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, image = self._next(skipped)
                decode_ms = (time.perf_counter() - t0) * 1e3
                if not ok:
                    return
                index += 1
                if index == 0:  # not before: opening and a seek to start_s are no camera's delay
                    started, wall_started = time.perf_counter(), time.time()
                self.stats.frames_read += 1
                if skipped:
                    continue
                media_ms = float(self._capture.get(cv2.CAP_PROP_POS_MSEC))
                if self.realtime and self.fps:  # pace like a camera would
                    delay = started + index / self.fps - time.perf_counter()
                    if delay > 0:
                        self._stop.wait(delay)
                emitted += 1
                self.stats.last_frame_at = time.time()
                # a paced file stands in for a camera: the frame was captured when it was due,
                # so a consumer that falls behind sees its backlog as latency
                captured = wall_started + index / self.fps if paced else self.stats.last_frame_at
                yield Frame(index, image, media_ms, captured, decode_ms)
        finally:
            with self._lock:
                self._reading = False
                self._release()

    def state(self) -> SourceState:
        return self._state

    def close(self) -> None:
        """Stop reading; the reading thread releases the capture (at once when none reads)."""
        self._stop.set()
        with self._lock:
            if not self._reading:
                self._release()

    def _next(self, skipped: bool) -> tuple[bool, Any]:
        if skipped:
            return bool(self._capture.grab()), None
        return self._capture.read()

    def _release(self) -> None:
        self._capture.release()
        self._state = SourceState.STOPPED


class ImageFolderSource:
    """Every image of a folder (sorted) as one frame each; deterministic."""

    live = False

    def __init__(self, path: str | os.PathLike[str], max_frames: int | None = None) -> None:
        self.path = Path(path)
        try:
            self.files = find_images([self.path])
        except DataError:
            raise SourceError(f"{self.path}: no images in this folder") from None
        self.files = self.files[:max_frames] if max_frames else self.files
        self.fps, self.frame_count = 0.0, len(self.files)
        self._state, self.stats = SourceState.LIVE, SourceStats()

    def __iter__(self) -> Iterator[Frame]:
        for index, file in enumerate(self.files):
            t0 = time.perf_counter()
            image = load_image(file)
            self.stats.frames_read += 1
            yield Frame(index, image, 0.0, time.time(), (time.perf_counter() - t0) * 1e3)
        self._state = SourceState.STOPPED

    def state(self) -> SourceState:
        return self._state

    def close(self) -> None:
        self._state = SourceState.STOPPED


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: initial * factor^n, capped, with ±jitter so many cameras don't sync."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.max_s, self.initial_s * self.factor**attempt)
        # capped after the jitter: max_s is a promise to the operator, not a centre
        return min(self.max_s, max(0.0, base * (1 + rng.uniform(-self.jitter, self.jitter))))


class LiveSource:
    """A camera/stream read by its own thread; consumers always get the newest frame.

    `open_capture` returns an object with `.read() -> (ok, image)`, `.isOpened()` and
    `.release()` (cv2.VideoCapture or a test double); it is called again on every reconnect.
    """

    live = True

    def __init__(
        self,
        name: str,
        open_capture: Callable[[], Any],
        backoff: Backoff = Backoff(),
        stall_timeout_s: float = 5.0,
        max_fps: float | None = None,
        seed: int = 0,
        max_lag_s: float = 0.0,
    ) -> None:
        self.name = name
        # frames wait this long for the consumer before newer ones replace them (0: the newest
        # only); the newest frame always waits
        self.max_lag_s = max_lag_s
        self._open_capture = open_capture
        self.backoff, self.stall_timeout_s, self.max_fps = backoff, stall_timeout_s, max_fps
        self.fps, self.frame_count = 0.0, 0
        self.stats = SourceStats()
        self._state = SourceState.CONNECTING
        self._rng = random.Random(seed)
        self._waiting: deque[Frame] = deque()  # oldest first
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"source-{name}", daemon=True)
        self._opened_at = time.time()
        self._thread.start()

    def latest(self, timeout: float | None = None) -> Frame | None:
        """The oldest frame not yet taken and not older than `max_lag_s` behind the newest
        (the newest itself without a lag); waits up to `timeout`, None if none arrived."""
        with self._condition:
            self._condition.wait_for(
                lambda: self._stop.is_set() or bool(self._waiting), timeout=timeout
            )
            return self._waiting.popleft() if self._waiting else None

    def __iter__(self) -> Iterator[Frame]:
        while not self._stop.is_set():
            frame = self.latest(timeout=0.5)
            if frame is not None:
                yield frame

    def state(self) -> SourceState:
        """The reader's state; LIVE with no frame for `stall_timeout_s` reads as STALLED."""
        if (
            self._state == SourceState.LIVE
            and time.time() - self.stats.last_frame_at > self.stall_timeout_s
        ):
            return SourceState.STALLED
        return self._state

    def close(self) -> None:
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        self._thread.join(timeout=5)
        self._state = SourceState.STOPPED

    def _run(self) -> None:
        attempt, index = 0, -1
        min_interval = 1.0 / self.max_fps if self.max_fps else 0.0
        while not self._stop.is_set():
            capture = None
            try:
                capture = self._open_capture()
                if capture is None or not capture.isOpened():
                    raise SourceError(f"{self.name}: cannot open")
                self._state = SourceState.LIVE
                log.info("%s: live", self.name)
                self.stats.last_frame_at = time.time()
                last_kept = 0.0
                # frames dropped for max_fps are decoded (grab) but never converted to BGR
                split = bool(min_interval) and hasattr(capture, "grab")
                while not self._stop.is_set():
                    t0 = time.perf_counter()
                    ok, image = (capture.grab(), None) if split else capture.read()
                    if not ok or (image is None and not split):
                        raise SourceError(f"{self.name}: stream ended or failed")
                    attempt = 0  # a frame arrived: the next outage starts from the initial delay
                    now = time.time()
                    self.stats.frames_read += 1
                    self.stats.last_frame_at = now
                    if min_interval and now - last_kept < min_interval:
                        self.stats.frames_dropped += 1
                        continue
                    if split:
                        ok, image = capture.retrieve()
                        if not ok or image is None:
                            raise SourceError(f"{self.name}: stream ended or failed")
                    last_kept = now
                    index += 1
                    frame = Frame(
                        index,
                        image,
                        (now - self._opened_at) * 1e3,
                        now,
                        (time.perf_counter() - t0) * 1e3,
                    )
                    with self._condition:
                        self._waiting.append(frame)
                        while (
                            now - self._waiting[0].captured_at > self.max_lag_s
                            and len(self._waiting) > 1
                        ):
                            self._waiting.popleft()
                            self.stats.frames_dropped += 1  # nobody took it in time: newer wins
                        self._condition.notify_all()
            except Exception as exc:  # any failure of the device/stream leads to a reconnect
                if self._stop.is_set():
                    break
                delay = self.backoff.delay(attempt, self._rng)
                self._state = SourceState.RECONNECTING
                self.stats.reconnects += 1
                attempt += 1
                log.warning("%s: %s; reconnecting in %.1f s", self.name, exc, delay)
                self._stop.wait(delay)
            finally:
                if capture is not None:
                    capture.release()
        self._state = SourceState.STOPPED


class PacedFileCapture:
    """A video file looped at its frame rate behind the capture interface `LiveSource` reads:
    each `read()` returns the next frame when it is due, as a camera delivers it."""

    def __init__(
        self, path: str | os.PathLike[str], decoder: Decoder = "auto", start_s: float = 0.0
    ) -> None:
        self._source = VideoFileSource(
            path, realtime=True, loop=True, decoder=decoder, start_s=start_s
        )
        self._frames = cast(Generator[Frame, None, None], iter(self._source))

    def isOpened(self) -> bool:  # noqa: N802 (cv2.VideoCapture's name)
        return True

    def read(self) -> tuple[bool, np.ndarray | Picture | None]:
        frame = next(self._frames, None)
        return (False, None) if frame is None else (True, frame.pixels)

    def release(self) -> None:
        self._frames.close()  # on the reading thread: its capture is released here, not later
        self._source.close()


STREAM_TIMEOUT_MS = 2000
FFMPEG_CAPTURE_OPTIONS = "rtsp_transport;tcp|analyzeduration;300000|probesize;65536|fflags;nobuffer"
_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}


_OPEN_LOCK = threading.Lock()
_OPTIONS_KEY = "OPENCV_FFMPEG_CAPTURE_OPTIONS"


def open_capture(
    source: str | int,
    api: int = cv2.CAP_ANY,
    params: list[int] | None = None,
    ffmpeg_options: str | None = None,
) -> Any:
    """cv2.VideoCapture, with FFmpeg options for this open only.

    OpenCV takes FFmpeg options from one environment variable, read at open. Network streams
    need short stream analysis (FFmpeg's default took 2 s per camera, and OpenCV opens one
    capture at a time, so four cameras came back after 2, 4, 6 and 8 s); the same options drop
    the last frame of a file. So they are set around this open only, under a lock that every
    open of edge-tl's sources takes; a user's own setting always wins.
    """
    with _OPEN_LOCK:
        previous = os.environ.get(_OPTIONS_KEY)
        if ffmpeg_options and previous is None:
            os.environ[_OPTIONS_KEY] = ffmpeg_options
        try:
            return (
                cv2.VideoCapture(source, api, params) if params else cv2.VideoCapture(source, api)
            )
        finally:
            if ffmpeg_options and previous is None:
                del os.environ[_OPTIONS_KEY]


def resolve_decoder(decoder: Decoder) -> Literal["opencv", "pyav"]:
    """PyAV when asked, or for `auto` when it is installed (the `[video]` extra)."""
    if decoder == "opencv":
        return "opencv"
    from edge_tl.runtime.pyav_capture import pyav_available

    if not pyav_available():
        if decoder == "pyav":
            raise SourceError(
                "decoder 'pyav': PyAV is not installed (pip install 'edge-tl[video]')"
            )
        return "opencv"
    return "pyav"


def _file_capture(path: str, decoder: Decoder) -> Any:
    """A file's capture: PyAV (frames kept in YUV until BGR is needed) or OpenCV; `auto` falls
    back to OpenCV for a file PyAV cannot open."""
    if resolve_decoder(decoder) == "pyav":
        from edge_tl.runtime.pyav_capture import PyAVCapture

        capture = PyAVCapture(path)
        if capture.isOpened() or decoder == "pyav":
            return capture
        log.debug("%s: PyAV cannot open it (%s); trying OpenCV", path, capture.error)
    return open_capture(path)


def _open_url(url: str, decoder: Decoder = "auto") -> Any:
    """Open a network stream, failing fast while its server is down.

    OpenCV opens FFmpeg captures one at a time, so a failing open of a dead camera (2 s
    timeout) would hold up every other stream's reconnect. A plain TCP connect first fails in
    milliseconds; open and read timeouts bound the rest.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    if parts.hostname and port and parts.scheme.lower() != "udp":
        import socket

        try:
            socket.create_connection(
                (parts.hostname, port), timeout=STREAM_TIMEOUT_MS / 1e3
            ).close()
        except OSError as exc:
            raise SourceError(f"{url}: server not reachable ({exc.strerror or exc})") from exc
    if resolve_decoder(decoder) == "pyav":
        from edge_tl.runtime.pyav_capture import PyAVCapture

        options = dict(item.split(";", 1) for item in FFMPEG_CAPTURE_OPTIONS.split("|"))
        return PyAVCapture(url, options=options, timeout_s=STREAM_TIMEOUT_MS / 1e3)
    timeouts = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        STREAM_TIMEOUT_MS,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        STREAM_TIMEOUT_MS,
    ]
    return open_capture(url, cv2.CAP_FFMPEG, timeouts, ffmpeg_options=FFMPEG_CAPTURE_OPTIONS)


_URL = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.IGNORECASE)


def is_live(spec: str) -> bool:
    return bool(_URL.match(spec)) or spec.isdigit() or spec.startswith(("/dev/video", "gst:"))


def check_file_source(spec: str) -> None:
    """Fail now, naming it, when `spec` is a file or folder that cannot be read (missing, an
    image, an unknown format): before a command starts its backend. A camera or URL is
    opened, and retried, by its stream."""
    if not is_live(spec):
        open_source(spec).close()


def open_source(
    spec: str,
    name: str | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    realtime: bool = False,
    max_fps: float | None = None,
    backoff: Backoff = Backoff(),
    stall_timeout_s: float = 5.0,
    loop: bool = False,
    decoder: Decoder = "auto",
    live: bool = False,
    max_lag_s: float = 0.0,
    start_s: float = 0.0,
) -> Source:
    """A source from a string: file, folder, camera index, /dev/videoN, URL, or `gst:PIPELINE`
    (a GStreamer pipeline ending in appsink, e.g. nvarguscamerasrc ... on Jetson). `live`: a
    file standing in for a camera (looped, paced, only recent frames: `max_lag_s`). `start_s`:
    where a file's first pass starts."""
    name = name or spec
    if start_s and (is_live(spec) or Path(spec).is_dir()):
        raise SourceError(f"{spec}: start_s applies to video files only")
    opener: Callable[[], Any] | None = None
    if spec.startswith("gst:"):
        pipeline = spec[4:].strip()
        opener = lambda: open_capture(pipeline, cv2.CAP_GSTREAMER)  # noqa: E731
    elif spec.isdigit():
        opener = lambda: open_capture(int(spec))  # noqa: E731
    elif spec.startswith("/dev/video"):
        opener = lambda: open_capture(spec, cv2.CAP_V4L2)  # noqa: E731
    elif is_live(spec):
        opener = lambda: _open_url(spec, decoder)  # noqa: E731
    elif live and not Path(spec).is_dir():
        # a missing or unreadable file, or a start past its end, fails here
        VideoFileSource(spec, decoder=decoder, start_s=start_s).close()
        opener = lambda: PacedFileCapture(spec, decoder, start_s)  # noqa: E731
    if opener is not None:
        return LiveSource(
            name,
            opener,
            backoff=backoff,
            stall_timeout_s=stall_timeout_s,
            max_fps=max_fps,
            max_lag_s=max_lag_s,
        )
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path, max_frames=max_frames)
    return VideoFileSource(
        path,
        stride=stride,
        max_frames=max_frames,
        realtime=realtime,
        loop=loop,
        decoder=decoder,
        start_s=start_s,
    )
