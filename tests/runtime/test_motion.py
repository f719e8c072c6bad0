"""The grey downscale motion detection runs on."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_tl.runtime.motion import MotionConfig, MotionDetector, shrink, small_grey


@pytest.mark.parametrize(
    ("shape", "size"),
    [((720, 1280), (320, 180)), ((1080, 1920), (320, 180)), ((480, 854), (320, 180)),
     ((360, 640), (320, 180)), ((720, 1280, 3), (320, 180)), ((100, 120), (320, 180))],
)  # fmt: skip
def test_shrink_is_area_averaging(shape: tuple[int, ...], size: tuple[int, int]) -> None:
    """Halving first (OpenCV's fast path) gives INTER_AREA's image within rounding."""
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (0, 0), 3)
    image = cv2.add(smooth, rng.integers(0, 40, shape, dtype=np.uint8))  # texture + noise
    width, height = size if shape[1] >= size[0] else (shape[1], shape[0])
    expected = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    got = shrink(image, (width, height))
    assert got.shape == expected.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_shrink_never_returns_the_callers_array() -> None:
    image = np.zeros((180, 320), np.uint8)
    small = shrink(image, (320, 180))
    assert small.shape == image.shape and not np.shares_memory(small, image)


@pytest.mark.parametrize("method", ["knn", "mog2"])
def test_the_background_history_is_kept_in_seconds(method: str) -> None:
    detector = MotionDetector(MotionConfig(method=method, history_s=4.1))
    assert detector._subtractor.getHistory() == 123  # 30 fps until the stream says otherwise
    detector.follow_rate(10.0)
    assert detector._subtractor.getHistory() == 41
    detector.reset()  # a camera that moved: the new model keeps the stream's rate
    assert detector._subtractor.getHistory() == 41
    if method == "knn":
        assert isinstance(detector._subtractor, cv2.BackgroundSubtractorKNN)
        assert not detector._subtractor.getDetectShadows()


def _seconds_to_absorb(method: str, fps: float) -> float:
    """How long a vehicle that stops stays foreground after 20 s of empty road, in seconds."""
    rng = np.random.default_rng(0)
    road = cv2.GaussianBlur(rng.integers(0, 256, (90, 160), dtype=np.uint8), (0, 0), 2)
    detector = MotionDetector(MotionConfig(method=method, history_s=4.0))
    detector.follow_rate(fps)
    stops = round(20 * fps)
    for index in range(round(40 * fps)):
        frame = cv2.add(road, rng.integers(0, 16, road.shape, dtype=np.uint8))
        if index >= stops:
            frame[30:55, 50:90] = 230
        detector.detect_grey(frame, 1.0)
        if index > stops and detector.mask[30:55, 50:90].mean() < 255 / 2:
            return (index - stops) / fps
    raise AssertionError("the stopped vehicle never became background")


@pytest.mark.parametrize("method", ["knn", "mog2"])
def test_a_stopped_vehicle_becomes_background_after_the_same_time_at_10_and_30_fps(
    method: str,
) -> None:
    """With the history in frames, 10 fps took 3 times as long (KNN 0.6 s -> 2.0 s)."""
    at_30, at_10 = _seconds_to_absorb(method, 30.0), _seconds_to_absorb(method, 10.0)
    assert 0 < at_10 < 1.6 * at_30


def test_history_and_warm_up_in_frames_are_refused_with_their_new_names() -> None:
    with pytest.raises(ValueError, match=r"'history' is now 'history_s', in seconds"):
        MotionConfig.model_validate({"history": 300})
    with pytest.raises(ValueError, match=r"'warmup_frames' is now 'warmup_s', in seconds"):
        MotionConfig.model_validate({"warmup_frames": 10})


@pytest.mark.parametrize("fps, frames", [(30.0, 10), (10.0, 3)])
def test_the_warm_up_lasts_the_same_time_at_10_and_30_fps(fps: float, frames: int) -> None:
    """10 frames were a third of a second at 30 fps and a whole second at 10 fps."""
    detector = MotionDetector(MotionConfig(warmup_s=0.33))
    detector.follow_rate(fps)
    road = np.full((90, 160), 90, np.uint8)
    found = []
    for index in range(12):
        frame = road.copy()
        frame[30:60, 10 * index : 10 * index + 40] = 230  # a vehicle from the first frame on
        found.append(bool(detector.detect_grey(frame, 1.0)))
    assert found.index(True) == frames


@pytest.mark.parametrize("mixtures", [3, 5])
def test_mixtures_reach_the_background_model_and_survive_a_reset(mixtures: int) -> None:
    detector = MotionDetector(MotionConfig(method="mog2", mixtures=mixtures))
    assert detector._subtractor.getNMixtures() == mixtures
    detector.reset()  # a camera that moved: the new model is made the same way
    assert detector._subtractor.getNMixtures() == mixtures


def test_knn_masks_do_not_depend_on_what_drew_from_opencvs_rng_before() -> None:
    """KNN refreshes its background samples at random from OpenCV's per-thread RNG: two runs of
    one clip in one process (eval-counts of two clips, a test suite) must see the same masks."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(0, 256, (180, 320), dtype=np.uint8), (0, 0), 2)
    noise = [rng.integers(0, 24, background.shape, dtype=np.uint8) for _ in range(60)]

    def masks() -> list[np.ndarray]:
        detector = MotionDetector(MotionConfig(method="knn", history_s=50 / 30))
        found = []
        for i, grain in enumerate(noise):
            frame = cv2.add(background, grain)
            frame[60:110, 4 * i : 4 * i + 60] = 230  # an object crossing the noisy view
            detector.detect_grey(frame, 1.0)
            if detector.mask is not None:
                found.append(detector.mask.copy())
        return found

    first = masks()
    cv2.randu(np.empty((64, 64), np.uint8), 0, 256)  # something else draws from the RNG
    second = masks()
    assert len(first) == len(second) > 0
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_a_frame_turned_90_degrees_is_shrunk_alike() -> None:
    rng = np.random.default_rng(1)
    landscape = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    grey, scale = small_grey(landscape, 320)
    turned, turned_scale = small_grey(np.ascontiguousarray(np.rot90(landscape)), 320)
    assert scale == turned_scale == 0.5 and grey.shape == (180, 320)
    assert np.array_equal(turned, np.rot90(grey))


def _scene_frames(gain: float, frames: int = 40) -> list[np.ndarray]:
    """A textured road (grey std ~30 at gain 1) and a vehicle 30 levels brighter driving
    across it, everything times `gain` (dusk), with a little sensor noise."""
    rng = np.random.default_rng(2)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (180, 320)), (0, 0), 3)
    road = 120 + 30 * texture / texture.std()
    out = []
    for i in range(frames):
        frame = road.copy()
        if i >= 25:
            x = 20 + 8 * (i - 25)
            frame[70:110, x : x + 50] += 30
        noisy = frame * gain + rng.normal(0, 1.0, frame.shape)
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return out


@pytest.mark.parametrize("gain", [1.0, 0.4])
def test_knn_finds_a_vehicle_in_a_dim_scene_too(gain: float) -> None:
    # at 40 % of the light the vehicle differs from the road by 12 levels: under OpenCV's
    # 20-level threshold, over the one scaled with the scene's contrast
    detector = MotionDetector(MotionConfig(method="knn", warmup_s=5 / 30))
    boxes = [detector.detect_grey(frame, 1.0) for frame in _scene_frames(gain)]
    vehicle = [b for b in boxes[-1] if b[3] >= 30 and b[2] >= 40]
    assert len(vehicle) == 1
    x, y, w, h = vehicle[0]
    assert 60 <= y <= 75 and 100 <= y + h <= 118  # its rows (70-110), dilated a little
    assert sum(b[2] * b[3] for b in boxes[-1]) < 3 * w * h  # and not the noise around it
