from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_tl.errors import SourceError
from edge_tl.runtime.sources import VideoFileSource, is_live, open_source
from tests.runtime.test_stream_runtime import make_traffic_clip


def test_prefetch_gives_the_same_frames_in_order(tmp_path: Path) -> None:
    clip = tmp_path / "c.mp4"
    make_traffic_clip(clip, ["disc"])
    plain = [(f.index, f.image.sum()) for f in VideoFileSource(clip)]
    ahead = [(f.index, f.image.sum()) for f in VideoFileSource(clip, prefetch=4)]
    assert plain == ahead and len(plain) > 30
    strided = [f.index for f in VideoFileSource(clip, stride=3, max_frames=5)]
    assert strided == [0, 3, 6, 9, 12]


def test_source_specs(tmp_path: Path) -> None:
    assert (
        is_live("rtsp://127.0.0.1/cam")
        and is_live("0")
        and is_live("/dev/video2")
        and is_live("gst:videotestsrc ! appsink")
    )
    assert not is_live("clip.mp4")
    with pytest.raises(SourceError, match="no such video file"):
        open_source(str(tmp_path / "nope.mp4"))
    (tmp_path / "notvideo.mp4").write_bytes(np.zeros(100, np.uint8).tobytes())
    with pytest.raises(SourceError, match="cannot open it as a video"):
        open_source(str(tmp_path / "notvideo.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(str(tmp_path / "empty"))


def test_ffmpeg_options_do_not_leak_to_other_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from edge_tl.runtime.sources import FFMPEG_CAPTURE_OPTIONS, open_capture

    monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    clip = tmp_path / "c.mp4"
    make_traffic_clip(clip, ["disc"])
    open_capture(str(clip), ffmpeg_options=FFMPEG_CAPTURE_OPTIONS).release()
    assert "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ
    frames = sum(1 for _ in VideoFileSource(clip))
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "probesize;5000000")  # the user's wins
    open_capture(str(clip), ffmpeg_options=FFMPEG_CAPTURE_OPTIONS).release()
    assert os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] == "probesize;5000000"
    assert frames == 15 + len(range(-56, 321, 8)) + 4  # every frame of the file decoded


def test_a_live_file_is_read_as_a_camera_is(tmp_path: Path) -> None:
    """Looped and paced; a consumer that falls behind gets the newest frame, not a backlog."""
    import time

    clip = tmp_path / "road.mp4"
    make_traffic_clip(clip, ["disc"], fps=20)
    frames_in_clip = sum(1 for _ in VideoFileSource(clip))
    source = open_source(str(clip), live=True)
    try:
        stream = iter(source)
        first = next(stream)
        time.sleep(1.0)  # 20 frames' worth of falling behind
        late = next(stream)
        age_s = time.time() - late.captured_at
        indices = [next(stream).index for _ in range(frames_in_clip)]  # past the clip's end
    finally:
        source.close()
    assert late.index - first.index >= 15 and source.stats.frames_dropped >= 15
    assert age_s < 0.2  # the newest frame, not the one due a second ago
    assert indices == list(range(late.index + 1, late.index + 1 + frames_in_clip))  # looped


def test_a_live_file_that_is_missing_is_named(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="nope.mp4: no such video file"):
        open_source(str(tmp_path / "nope.mp4"), live=True)
