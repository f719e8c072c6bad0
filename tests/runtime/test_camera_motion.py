"""Camera motion on a synthetic pan of a real frame, the counting line's end points, and the
recount rule for fragments of a vehicle already counted."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge_tl.data.sample import sample_dataset_dir
from edge_tl.images import find_images, load_image
from edge_tl.runtime.camera_motion import (
    REFRESH_ESTIMATES,
    CameraMotion,
    CameraMotionConfig,
    GlobalMotion,
)
from edge_tl.runtime.config import StreamConfig
from edge_tl.runtime.events import camera_event
from edge_tl.runtime.processor import StreamProcessor
from edge_tl.runtime.sources import Frame
from edge_tl.runtime.tracker import IouTracker, Track, along, overlap


def _scene() -> np.ndarray:
    """A 960x540 mosaic of real vehicle photos: texture like a street scene."""
    images = [
        cv2.resize(load_image(p), (160, 135)) for p in find_images([sample_dataset_dir()])[:24]
    ]
    rows = [np.hstack(images[i : i + 6]) for i in range(0, 24, 6)]
    return np.vstack(rows)


def _view(scene: np.ndarray, x: int, y: int = 40) -> np.ndarray:
    return scene[y : y + 360, x : x + 640].copy()


@pytest.mark.parametrize("every", [1, 2])  # frames at 30 fps
def test_a_pan_is_detected_once_and_settles(every: int) -> None:
    scene = _scene()
    config = CameraMotionConfig(every_s=every / 30)
    camera = CameraMotion(config)
    positions = [0] * 12 + list(range(0, 8 * 20, 8)) + [152] * 20  # still, 8 px/frame, still
    states = [camera.update(_view(scene, x)) for x in positions]
    moving = [i for i, s in enumerate(states) if s.moving]
    assert not any(s.moving for s in states[:12])
    assert [i for i, s in enumerate(states) if s.started] == [moving[0]]
    # within the smoothing window of the pan's start (a median of `window` estimates)
    assert 12 <= moving[0] <= 12 + (camera._window() // 2 + 1) * every
    assert [i for i, s in enumerate(states) if s.settled] == [moving[-1] + 1]
    assert moving[-1] < len(positions) - 1 and camera.movements == 1
    # 8 px per frame at 640 px is 4 px at the 320 px the estimate runs at
    assert 3.0 < max(s.shift_px for s in states) < 5.0  # per frame, whatever `every` is


def test_corners_are_followed_between_estimates_and_found_afresh_now_and_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scene = _scene()
    searches = []
    find = cv2.goodFeaturesToTrack
    monkeypatch.setattr(
        cv2, "goodFeaturesToTrack", lambda *a, **k: searches.append(1) or find(*a, **k)
    )
    camera = CameraMotion(CameraMotionConfig(every_s=1 / 30))
    positions = [0] * 10 + list(range(0, 120, 6))  # still, then a pan of 6 px per frame
    shifts = [camera.update(_view(scene, x)).shift_px for x in positions]
    estimates = len(positions) - 1
    # one search, then REFRESH_ESTIMATES estimates on the corners followed from it
    assert len(searches) == -(-estimates // (REFRESH_ESTIMATES + 1)) < estimates / 4
    assert shifts[-1] == pytest.approx(3.0, abs=0.3)  # 6 px at 640 is 3 px at 320


def test_traffic_over_a_still_view_is_not_camera_motion() -> None:
    """A large object crossing a still view moves most corners but not the camera."""
    scene = _scene()
    still = _view(scene, 100)
    truck = cv2.resize(load_image(find_images([sample_dataset_dir()])[5]), (300, 250))
    camera = CameraMotion()
    states = []
    for i in range(30):
        frame = still.copy()
        x = -300 + 30 * i
        x0, x1 = max(0, x), min(640, x + 300)
        if x1 > x0:
            frame[60:310, x0:x1] = truck[:, x0 - x : x1 - x]
        boxes = [(x0, 60, x1 - x0, 250)] if x1 > x0 else []
        states.append(camera.update(frame, boxes))
    assert not any(s.moving for s in states)


def test_blank_frames_are_not_motion() -> None:
    camera = CameraMotion()
    grey = np.full((360, 640, 3), 90, np.uint8)
    assert not any(camera.update(grey).moving for _ in range(10))


def test_camera_event_is_json_and_names_the_shift() -> None:
    frame = Frame(
        pixels=np.zeros((4, 4, 3), np.uint8),
        index=7,
        captured_at=1.0,
        media_ms=233.3,
        decode_ms=1.0,
    )
    motion = GlobalMotion(4.567, 4.567 * 15, moving=True, started=True, settled=False)
    event = json.loads(json.dumps(camera_event("cam", frame, motion)))
    assert event["kind"] == "camera_moved" and event["frame"] == 7
    assert event["shift_px"] == 4.57 and event["shift_px_s"] == 68.5


def test_crossings_count_between_the_end_points_only() -> None:
    line = ((100.0, 100.0), (300.0, 100.0))
    assert along(line, (200.0, 50.0)) == 0.5
    inside, beyond = Track(1, (190, 80, 20, 10), 0, 0), Track(2, (340, 80, 20, 10), 0, 0)
    for track in (inside, beyond):
        assert not IouTracker.check_crossing(track, line)  # first sighting: above the line
        track.box = (track.box[0], 110, 20, 10)  # centre now below it
    assert IouTracker.check_crossing(inside, line)
    assert not IouTracker.check_crossing(beyond, line)  # passed beyond the second end point
    assert not IouTracker.check_crossing(inside, line)  # once only


def test_an_unconfirmed_track_keeps_its_first_side_and_counts_once_confirmed() -> None:
    line = ((100.0, 100.0), (300.0, 100.0))
    track = Track(1, (190, 80, 20, 10), 0, 0)  # first sighting, above the line
    for y in (80, 110):  # confirmed on its third sighting, below the line since its second
        track.box = (190, y, 20, 10)
        assert not IouTracker.check_crossing(track, line, confirmed=False)
    assert not track.counted and track.side == -1.0  # the side it was first seen on
    track.box = (190, 120, 20, 10)
    assert IouTracker.check_crossing(track, line) and track.counted


def test_a_fragment_of_a_counted_vehicle_is_not_counted_again() -> None:
    config = StreamConfig(name="cam", source="x", recount_s=0.5)  # 15 frames at 30 fps
    processor = StreamProcessor(config, scheduler=None, labels=["car", "bike"])  # type: ignore[arg-type]
    bus = Track(1, (100, 100, 200, 100), 0, 0)
    rear_half = Track(2, (200, 110, 90, 80), 0, 0)  # inside the bus's box
    neighbour = Track(3, (290, 100, 60, 60), 0, 0)  # overlaps it only at the edge
    assert overlap(bus.box, rear_half.box) == 1.0 and overlap(bus.box, neighbour.box) < 0.3
    assert not processor._recounted(bus, 10)
    assert processor._recounted(rear_half, 18)
    assert not processor._recounted(neighbour, 18)
    assert not processor._recounted(rear_half, 40)  # long after: another vehicle


def _processor_at(fps: float, config: StreamConfig) -> StreamProcessor:
    """A processor whose stream has shown 10 frames at `fps`."""
    processor = StreamProcessor(config, scheduler=None, labels=["car"])  # type: ignore[arg-type]
    for index in range(10):
        processor._rate.observe(index, index * 1000 / fps)
    return processor


def test_the_recount_window_is_in_seconds_whatever_the_frame_rate() -> None:
    # the lane's next vehicle 8 frames after a count: 0.27 s at 30 fps (a fragment), 0.8 s at
    # 10 fps (another vehicle). A window of 15 frames swallowed it at 10 fps.
    for fps, fragment in ((30.0, True), (10.0, False)):
        processor = _processor_at(fps, StreamConfig(name="cam", source="x", recount_s=0.5))
        assert not processor._recounted(Track(1, (100, 100, 80, 60), 0, 0), 10)
        assert processor._recounted(Track(2, (104, 100, 80, 60), 0, 0), 18) is fragment


def test_a_lost_track_is_dropped_after_the_same_time_at_10_and_30_fps() -> None:
    # unseen for 4 frames: 0.13 s at 30 fps (kept: a vehicle hidden behind another for a
    # moment), 0.4 s at 10 fps (dropped). 10 frames were 1 s at 10 fps.
    for fps, kept in ((30.0, True), (10.0, False)):
        processor = _processor_at(fps, StreamConfig(name="cam", source="x", max_missed_s=0.33))
        processor._tracker.update([(100, 100, 80, 60)], 10)
        processor._expire(14)
        assert bool(processor._tracker.tracks) is kept


def test_the_stream_gives_its_frame_rate_to_the_background_model() -> None:
    config = StreamConfig(name="cam", source="x", motion={"history_s": 10.0})
    processor = StreamProcessor(config, scheduler=None, labels=["car"])  # type: ignore[arg-type]
    road = np.full((180, 320, 3), 90, np.uint8)
    for index in range(5):  # an empty road at 10 fps: nothing to classify
        frame = Frame(pixels=road, index=index, captured_at=0.0, media_ms=index * 100.0,
                      decode_ms=0.0)  # fmt: skip
        assert list(processor.process(frame)) == []
    assert processor._detector is not None
    assert processor._detector._subtractor.getHistory() == 100


def test_a_vehicle_that_outruns_its_overlap_keeps_its_track() -> None:
    # a motorbike in a close view at 10-15 fps: 30 px long, 28 px a frame (IoU 0.03), then
    # 36 px a frame: beyond its own length, where only its heading finds it
    tracker = IouTracker(match_by_distance=True)
    ids = {
        t.id
        for i, x in enumerate((100, 128, 164, 200, 236))
        for t in tracker.update([(x, 50, 30, 20)], i)
    }
    assert len(ids) == 1 and next(iter(tracker.tracks.values())).hits == 5


def test_the_distance_match_takes_neither_strangers_nor_fragments() -> None:
    tracker = IouTracker(match_by_distance=True)
    (track,) = tracker.update([(100, 50, 30, 20)], 0)
    # beyond its own size with no heading yet: another vehicle; a sixth of its area next to
    # it: a fragment
    (far,) = tracker.update([(150, 50, 30, 20)], 1)
    (small,) = tracker.update([(140, 52, 10, 10)], 2)
    assert len({track.id, far.id, small.id}) == 3
    # a track unseen for a frame is left to the IoU match
    lost = IouTracker(match_by_distance=True)
    lost.update([(100, 50, 30, 20)], 0)
    lost.update([], 1)  # not found in this frame
    (later,) = lost.update([(128, 50, 30, 20)], 2)
    assert later.id == 2


def test_the_distance_match_is_on_at_15_fps_and_under_only() -> None:
    for fps, on in ((30.0, False), (25.0, False), (20.0, False), (15.0, True), (10.0, True)):
        processor = _processor_at(fps, StreamConfig(name="cam", source="x"))
        road = np.full((180, 320, 3), 90, np.uint8)
        frame = Frame(pixels=road, index=10, captured_at=0.0, media_ms=10_000 / fps, decode_ms=0.0)
        assert list(processor.process(frame)) == []
        assert processor._tracker.match_by_distance is on


@pytest.mark.parametrize("fps", [30.0, 10.0])
def test_a_pan_is_a_movement_by_its_speed_whatever_the_frame_rate(fps: float) -> None:
    """40 px per second at 640 px (20 at the 320 the estimate runs at): still at 30 fps and,
    with the threshold per frame (3.5 px), as much at 10 fps, where it moves 2 px a frame."""
    scene = _scene()
    step = 3 if fps == 30.0 else 9  # px per frame at 640 px: 90 px/s, under 105 at 320 px
    for speed, moving in ((step, False), (3 * step, True)):  # 45 / 135 px/s at 320 px
        camera = CameraMotion(CameraMotionConfig(every_s=1 / 30))
        camera.follow_rate(fps)
        positions = [0] * 6 + list(range(0, 30 * speed, speed))
        states = [camera.update(_view(scene, x)) for x in positions if x <= 320]
        assert any(s.moving for s in states) is moving
        assert max(s.shift_px_s for s in states) == pytest.approx(speed * fps / 2, rel=0.15)


def test_camera_motion_settings_in_frames_are_refused_with_their_new_names() -> None:
    for old, new in (("moving_px", "moving_px_s"), ("window", "window_s"),
                     ("settle_frames", "settle_s"), ("every", "every_s")):  # fmt: skip
        with pytest.raises(ValueError, match=rf"'{old}' is now '{new}'"):
            CameraMotionConfig.model_validate({old: 1})


def test_the_camera_settles_after_the_same_time_at_10_and_30_fps() -> None:
    scene = _scene()
    settled_after = {}
    for fps in (30.0, 10.0):
        camera = CameraMotion(CameraMotionConfig(every_s=1 / 30, settle_s=0.5))
        camera.follow_rate(fps)
        pan = list(range(0, 200, 2 * round(150 / fps)))  # 150 px/s at 320 px
        states = [camera.update(_view(scene, x)) for x in [0] * 4 + pan + [pan[-1]] * 30]
        stop = 4 + len(pan)
        settled = [i for i, s in enumerate(states) if s.settled]
        assert len(settled) == 1
        settled_after[fps] = (settled[0] - stop) / fps
    assert settled_after[10.0] == pytest.approx(settled_after[30.0], abs=0.25)


@pytest.mark.parametrize(
    "fps, every, window", [(30.0, 2, 5), (15.0, 1, 5), (10.0, 1, 3), (5.0, 1, 3)]
)
def test_estimates_keep_their_pace_and_the_median_its_misfit_vote_at_any_rate(
    fps: float, every: int, window: int
) -> None:
    """Every 2nd frame at 30 fps, every frame below 20; a median of at least 3 estimates (with
    2, at 15 and 10 fps, one misfit in the overhead clip's close view read as a movement)."""
    camera = CameraMotion()
    camera.follow_rate(fps)
    assert (camera._every, camera._window()) == (every, window)
