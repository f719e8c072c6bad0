"""`eval-counts`: `serve`'s motion pipeline run on a clip with its ground truth's line, and
the count events scored."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_tl.bundle import Bundle, Precision
from edge_tl.counting.gallery import write_gallery
from edge_tl.counting.score import count_events, count_metrics
from edge_tl.counting.truth import load_ground_truth
from edge_tl.errors import SourceError
from edge_tl.runtime.config import StreamConfig
from edge_tl.runtime.daemon import run_one_stream
from edge_tl.runtime.sinks import JsonlSink, Sink
from edge_tl.runtime.sources import check_file_source

__all__ = ["evaluate_counts"]


class _Collect(Sink):
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def _frame_size(clip: Path) -> tuple[int, int]:
    import cv2

    capture = cv2.VideoCapture(str(clip))
    try:
        size = (
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        capture.release()
    if min(size) <= 0:  # OpenCV reports -1 for what it could not open
        raise SourceError(f"{clip}: cannot be opened as a video")
    return size


def evaluate_counts(
    bundle: Path,
    clip: Path,
    truth_path: Path,
    stream: Mapping[str, Any] | None = None,
    backend: str = "auto",
    precision: Precision = Precision.FP32,
    threads: int | None = None,
    events_out: Path | None = None,
    errors_out: Path | None = None,
) -> dict[str, Any]:
    """Run `serve`'s motion pipeline on `clip` with the ground truth's line and score its
    count events. `stream` overrides StreamConfig fields (the same for every camera: the
    point is to measure one configuration, not to fit one per clip). `errors_out`: a folder
    for a picture of each error (`gallery`)."""
    truth = load_ground_truth(truth_path)
    check_file_source(str(clip))  # before the bundle's backend starts
    width, height = _frame_size(clip)
    labels = Bundle.load(bundle, verify=False).labels
    settings = {"mode": "motion", "line": truth.line} | dict(stream or {})
    config = StreamConfig(name=clip.stem, source=str(clip), **settings)
    collected = _Collect()
    sinks: list[Sink] = [collected]
    if events_out is not None:
        sinks.append(JsonlSink(events_out, atomic=True))
    health, state = run_one_stream(bundle, config, sinks, backend, precision, threads)
    # events are in the clip's pixels; the ground truth's positions in its own resolution
    sx, sy = truth.resolution.width / width, truth.resolution.height / height
    for event in collected.events:
        if event["kind"] != "count":
            continue
        x, y, w, h = event["box"]
        event["box"] = [x * sx, y * sy, w * sx, h * sy]
    counted = count_events(collected.events, truth.line_px)
    result = count_metrics(counted, truth, labels)
    if errors_out is not None:
        drawn = write_gallery(clip, truth, counted, errors_out)
        result["error_gallery"] = {"folder": str(errors_out), "pictures": len(drawn)}
    drift = [e for e in collected.events if e["kind"] == "drift"]
    result["drift_events"] = [{"frame": e["frame"], **e["drift"]} for e in drift]
    result["camera_moved_frames"] = [
        e["frame"] for e in collected.events if e["kind"] == "camera_moved"
    ]
    # vehicles told apart from a neighbour's blob at the line (split_min_width)
    result["split_frames"] = [e["frame"] for e in collected.events if "split_from" in e]
    return {
        "clip": str(clip),
        "ground_truth": str(truth_path),
        "bundle": str(bundle),
        "backend": health["backend"],
        "frames": state["frames"],
        "settings": config.model_dump(mode="json", exclude={"name", "source"}),
        **result,
    }
