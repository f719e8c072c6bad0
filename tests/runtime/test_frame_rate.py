"""The frame rate a stream's settings in seconds are turned into frames with."""

from __future__ import annotations

import pytest

from edge_tl.runtime.frame_rate import DEFAULT_FPS, FrameRate


def _observed(pairs: list[tuple[int, float]]) -> FrameRate:
    rate = FrameRate()
    for index, media_ms in pairs:
        rate.observe(index, media_ms)
    return rate


def test_the_rate_comes_from_the_timestamps() -> None:
    rate = _observed([(i, i * 100.0) for i in range(20)])
    assert rate.fps == pytest.approx(10.0) and rate.frames(0.5) == 5
    assert _observed([(i, i * 1000 / 29.97) for i in range(20)]).frames(0.5) == 15


def test_a_stride_counts_the_frames_it_skipped() -> None:
    # every 3rd frame of a 30 fps file analysed: indices step by 3, 100 ms apart
    rate = _observed([(i, i * 1000 / 30) for i in range(0, 60, 3)])
    assert rate.fps == pytest.approx(30.0) and rate.frames(0.5) == 15
    # the background model learns from the analysed frames only: 10 of them a second
    assert rate.observed_fps == pytest.approx(10.0)
    assert _observed([(i, i * 100.0) for i in range(20)]).observed_fps == pytest.approx(10.0)


def test_no_usable_timestamps_means_the_default_rate() -> None:
    assert FrameRate().fps == FrameRate().observed_fps == DEFAULT_FPS
    assert _observed([(i, 0.0) for i in range(20)]).fps == DEFAULT_FPS  # standing still


def test_a_loop_and_a_late_frame_do_not_move_it() -> None:
    pairs = [(i, i * 40.0) for i in range(10)]  # 25 fps
    pairs += [(10, 0.0), (11, 40.0), (12, 80.0)]  # the file looped back to its start
    pairs += [(13, 400.0)]  # one frame very late
    pairs += [(i, 400.0 + (i - 13) * 40.0) for i in range(14, 20)]
    assert _observed(pairs).fps == pytest.approx(25.0)
