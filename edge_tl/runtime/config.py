"""The daemon's config (TOML, or YAML when PyYAML is installed), validated with pydantic and
used as it is: the stream processor, the sources and the sinks read these models directly.

An unknown or misspelt field is an error that names the field and the file. Relative paths
(`bundle`, `events`, `counts`, `annotated_video`, `harvest`) resolve against the config file's
folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge_tl._deps import require
from edge_tl.bundle import Precision
from edge_tl.errors import EdgeTLError, validation_message
from edge_tl.runtime.camera_motion import CameraMotionConfig
from edge_tl.runtime.drift import DriftConfig
from edge_tl.runtime.motion import MotionConfig
from edge_tl.runtime.renamed import RefusesRenamed

__all__ = ["ServeConfig", "StreamConfig", "MqttConfig", "Line", "load_config"]

Line = tuple[tuple[float, float], tuple[float, float]]  # normalized (0..1) end points


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamConfig(_Strict, RefusesRenamed):
    """One camera or file: where frames come from, and what is classified in them.

    - `frame`: the whole frame, with temporal smoothing (EMA of the class scores);
    - `roi`: fixed regions (normalized x, y, w, h), each smoothed on its own;
    - `motion` (the traffic default): moving blobs → tracks → each track classified a few
      times (full score vectors averaged) → one count per track crossing `line`; counting
      pauses while the camera itself moves (`camera_motion`).
    """

    name: str
    source: str  # file, folder, camera index, /dev/videoN, rtsp://..., gst:PIPELINE
    mode: Literal["frame", "roi", "motion"] = "motion"
    realtime: bool = False  # files: pace at the file's fps instead of as fast as possible
    loop: bool = False  # files: start again at the end (a clip standing in for a camera)
    # files: start this many seconds in (within a frame); with `loop`, later passes start at 0
    start_s: float = Field(default=0.0, ge=0)
    # files: read as a camera is (looped, paced, a reader thread of its own that keeps only
    # recent frames, `max_lag_ms`): a stream that falls behind skips frames instead of building
    # a backlog
    live: bool = False
    # files and URLs: `pyav` keeps frames in YUV (motion on the luma plane, BGR only for the
    # frames whose crops are classified); `auto` uses it when the [video] extra is installed
    decoder: Literal["auto", "opencv", "pyav"] = "auto"
    stride: int = Field(default=1, ge=1)
    max_frames: int | None = Field(default=None, ge=1)  # files: stop after N frames
    max_fps: float | None = Field(default=None, gt=0)
    # live sources: how long a frame may wait for the stream's thread before newer ones replace
    # it (0: the newest frame only). A few frames' worth rides out the moments the thread is
    # busy elsewhere instead of skipping frames (8 live 720p cameras on 2 cores: 90 % of frames
    # analysed with 0, 100 % with 150 ms), and latency still cannot grow with time
    max_lag_ms: float = Field(default=150.0, ge=0)
    smoothing: float = Field(default=0.5, gt=0, le=1)  # weight of the newest frame; 1 = none
    rois: list[tuple[float, float, float, float]] = Field(default_factory=list)
    line: Line = ((0.5, 0.0), (0.5, 1.0))  # default: a vertical line through the middle
    motion: MotionConfig = Field(default_factory=MotionConfig)
    camera_motion: CameraMotionConfig = Field(default_factory=CameraMotionConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    # the bundle's ImageNet prior fused into the head's scores: `auto` while the stream drifts
    # (a camera unlike the training footage), `always`, or `never`
    prior: Literal["auto", "always", "never"] = "auto"
    prior_weight: float = Field(default=0.5, gt=0, lt=1)  # the prior's share when fused
    # motion mode: every counted track's crops and a line in DIR/tracks.jsonl, for labelling
    harvest: Path | None = None
    harvest_crops: int = Field(default=5, ge=1)  # per track, largest first
    harvest_max_mb: float = Field(default=500.0, gt=0)  # oldest tracks' crops deleted past this
    # a track whose box lies mostly in a box counted this many seconds ago or less is a
    # fragment of that vehicle (a blob that split, a track that restarted), not a second one.
    # Seconds, not frames: 15 frames were 1.5 s at 10 fps and swallowed the lane's next vehicle
    recount_s: float = Field(default=0.5, ge=0)
    # a crossing blob counts once per run of foreground along the line at least this wide (a
    # share of the detection frame's longer side; 0: once per blob): vehicles side by side that one
    # blob joined. Runs measured on the overhead clip at 320 px: side-by-side vehicles 22-36
    # px, a single vehicle's outline strips 8-15 px; 0.045-0.06 counted alike (counting.md)
    split_min_width: float = Field(default=0.05, ge=0, lt=1)
    # a track not seen for longer than this is dropped (10 frames at 30 fps). Seconds, not
    # frames: 10 frames were 1 s at 10 fps, long enough for a track to take over the next
    # vehicle's blob (with `motion.history_s`: see MotionConfig; 30 fps unchanged)
    max_missed_s: float = Field(default=0.33, gt=0)
    min_hits: int = Field(default=2, ge=1)  # frames a track is seen before it is classified
    classify_every: int = Field(default=3, ge=1)  # frames between classifications of a track
    max_classifications: int = Field(default=5, ge=1)
    # motion mode: `at_line` keeps a track's crops and classifies them when it crosses the line
    # (tracks that never cross cost no inference); `eager` classifies every track as it goes
    classify: Literal["eager", "at_line"] = "at_line"
    crop_padding: float = Field(default=0.1, ge=0)
    annotated_video: Path | None = None
    stall_timeout_s: float = Field(default=5.0, gt=0)
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)

    RENAMED: ClassVar[dict[str, str]] = {
        "recount_frames": "'recount_s', in seconds (15 frames at 30 fps: 0.5)"
    }

    @model_validator(mode="after")
    def _roi_mode_has_rois(self) -> StreamConfig:
        if self.mode == "roi" and not self.rois:
            raise ValueError(f"stream {self.name}: mode roi needs at least one roi in 'rois'")
        return self


class MqttConfig(_Strict):
    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    topic: str = "edge-tl"
    kinds: list[str] = Field(default_factory=lambda: ["count"])  # event kinds published
    queue: int = Field(default=10000, ge=1)  # events kept while the broker is away
    client_id: str | None = None


class ServeConfig(_Strict):
    bundle: Path
    backend: str = "auto"
    precision: Precision = Precision.FP32
    threads: int | None = Field(default=None, ge=1)
    # processes the streams are split over (each with its own backend): more cores in use
    # without the GIL between cameras; 1 = everything in this process
    workers: int = Field(default=1, ge=1)
    max_batch: int = Field(default=8, ge=1)
    max_wait_ms: float = Field(default=5.0, ge=0)
    top_k: int = Field(default=3, ge=1)  # classes listed in each event's `top`
    events: Path | None = None  # JSON Lines of every event
    counts: Path | None = None  # periodic per-class counts
    counts_interval_s: float = Field(default=60.0, gt=0)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=9108, ge=0, le=65535)  # None: no HTTP endpoint
    mqtt: MqttConfig | None = None
    streams: list[StreamConfig] = Field(min_length=1)


def load_config(path: Path) -> ServeConfig:
    if not path.is_file():
        raise EdgeTLError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            raw = require("yaml", "serve").safe_load(text)
        else:
            raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EdgeTLError(f"{path}: not valid TOML ({exc})") from exc
    except Exception as exc:  # yaml.YAMLError and friends
        if isinstance(exc, EdgeTLError):
            raise
        raise EdgeTLError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    try:
        config = ServeConfig.model_validate(raw or {})
    except ValidationError as exc:
        raise EdgeTLError(f"{path}: {validation_message(exc)}") from exc
    names = [s.name for s in config.streams]
    if len(set(names)) != len(names):
        raise EdgeTLError(
            f"{path}: field 'streams': stream names must be unique ({', '.join(names)})"
        )
    # one rule for every path in the file: relative to the file's folder, not to where the
    # daemon happens to be started from
    base = path.parent
    config.bundle = _under(base, config.bundle)
    config.events = _under(base, config.events) if config.events else None
    config.counts = _under(base, config.counts) if config.counts else None
    for stream in config.streams:
        if stream.annotated_video is not None:
            stream.annotated_video = _under(base, stream.annotated_video)
        if stream.harvest is not None:
            stream.harvest = _under(base, stream.harvest)
    return config


def _under(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else base / path
