"""`pause_counting`: while the camera pans, the stream counts nothing (static things sweep
across the line), says so once with `camera_moved`, and counts again once the view settles."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_tl.bundle import Bundle
from edge_tl.runtime.backends import create_backend
from edge_tl.runtime.classify import Classifier
from edge_tl.runtime.config import StreamConfig
from edge_tl.runtime.processor import StreamProcessor
from edge_tl.runtime.scheduler import BatchScheduler
from edge_tl.runtime.sources import Frame
from tests.runtime.test_camera_motion import _scene, _view

TOP, BOTTOM = 40, 176  # the view's top row in the scene before and after the tilt


def _sprite() -> np.ndarray:
    tile = np.kron(np.indices((6, 6)).sum(axis=0) % 2, np.ones((8, 8))) * 255
    return cv2.merge([tile.astype(np.uint8)] * 3)


def _frames() -> Iterator[np.ndarray]:
    """Still view, an object crosses the line (y = 180) downwards; the camera tilts 8 px a
    frame at 30 fps (120 px/s at the estimate's 320 px, over `moving_px_s`; the scene's own
    texture sweeps up across the line) while another object crosses;
    still again, and after the background is relearned a third object crosses."""
    scene, sprite = _scene(), _sprite()

    def crossing(top: int) -> Iterator[np.ndarray]:
        for y in range(60, 300, 8):
            view = _view(scene, 0, top)
            view[y : y + 48, 300:348] = sprite
            yield view

    yield from (_view(scene, 0, TOP) for _ in range(15))
    yield from crossing(TOP)
    yield from (_view(scene, 0, TOP) for _ in range(10))
    for step, top in enumerate(range(TOP, BOTTOM + 1, 8)):  # a third object crosses meanwhile
        view = _view(scene, 0, top)
        y = 60 + 14 * step
        view[y : y + 48, 300:348] = sprite
        yield view
    yield from (_view(scene, 0, BOTTOM) for _ in range(25))
    yield from crossing(BOTTOM)
    yield from (_view(scene, 0, BOTTOM) for _ in range(10))


def _events(bundle_dir: Path, **camera: bool) -> list[dict]:
    bundle = Bundle.load(bundle_dir)
    with create_backend(bundle, "onnxruntime") as backend:
        scheduler = BatchScheduler(Classifier(backend, bundle.labels), max_batch=4)
        config = StreamConfig(
            name="tilt",
            source="-",
            mode="motion",
            line=((0.0, 0.5), (1.0, 0.5)),
            camera_motion={"relearn": True, **camera},
        )
        processor = StreamProcessor(config, scheduler, bundle.labels)
        events = [
            event
            for index, image in enumerate(_frames())
            for event in processor.process(Frame(index, image, index * 1000 / 30, time.time(), 0.0))
        ]
        events += list(processor.finish())
        scheduler.close()
    return events


PAN_START = 15 + 30 + 10  # frame index of the first tilted view
PAN_END = PAN_START + (BOTTOM - TOP) // 8


@pytest.mark.slow
def test_counting_pauses_while_the_camera_moves_and_resumes_after(exported_bundle: Path) -> None:
    events = _events(exported_bundle, pause_counting=True)
    moved = [e["frame"] for e in events if e["kind"] == "camera_moved"]
    assert len(moved) == 1 and PAN_START <= moved[0] <= PAN_START + 8
    counts = [e["frame"] for e in events if e["kind"] == "count"]
    # the object before the tilt, none during it, the one after the background was relearned
    assert len(counts) == 2, counts
    assert counts[0] < PAN_START and counts[1] > PAN_END + 8 + 10  # settle, then warm-up
    assert len({e["track_id"] for e in events if e["kind"] == "count"}) == 2
