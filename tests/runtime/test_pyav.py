"""The PyAV decoder (`decoder = "pyav"`): the same frames as OpenCV's, motion on the luma plane,
loops, damaged files, and a clear line when PyAV is missing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_tl.errors import SourceError
from edge_tl.runtime.sources import VideoFileSource, open_source
from tests.runtime.test_stream_runtime import make_traffic_clip

pytest.importorskip("av", reason="PyAV (the [video] extra) is not installed")


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "road.mp4"
    make_traffic_clip(path, ["disc", "stripes"], size=(320, 176))
    return path


def test_pyav_gives_opencvs_frames_and_a_matching_grey(clip: Path) -> None:
    opencv = list(VideoFileSource(clip, decoder="opencv"))
    pyav = list(VideoFileSource(clip, decoder="pyav"))
    assert len(pyav) == len(opencv) > 30
    assert [f.media_ms for f in pyav] == pytest.approx([f.media_ms for f in opencv])
    for a, b in zip(opencv[::7], pyav[::7], strict=True):
        assert b.shape == a.shape == (176, 320)
        grey_a, scale_a = a.small_grey(160)
        grey_b, scale_b = b.small_grey(160)  # from the luma plane, no BGR made
        assert scale_a == scale_b == 0.5 and grey_a.shape == grey_b.shape == (88, 160)
        # limited-range luma stretched like OpenCV's BGR → grey: a level or two apart
        assert np.abs(grey_a.astype(int) - grey_b).mean() < 3
        assert np.array_equal(a.image, b.image)  # the same swscale conversion


def test_a_portrait_camera_is_shrunk_by_its_longer_side(tmp_path: Path) -> None:
    # the same scale as the landscape clip above: vehicles span as many detection pixels
    path = tmp_path / "portrait.mp4"
    make_traffic_clip(path, ["disc"], size=(176, 320))
    for decoder in ("opencv", "pyav"):
        frame = next(iter(VideoFileSource(path, decoder=decoder)))
        grey, scale = frame.small_grey(160)
        assert scale == 0.5 and grey.shape == (160, 88), decoder


def test_a_crop_is_converted_alone_to_the_whole_frames_pixels(tmp_path: Path) -> None:
    path = tmp_path / "colours.mp4"
    rng = np.random.default_rng(3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 176))
    for _ in range(4):  # coloured blocks: a crop off by a chroma sample would show
        blocks = rng.integers(0, 256, (22, 40, 3), dtype=np.uint8)
        writer.write(cv2.resize(blocks, (320, 176), interpolation=cv2.INTER_NEAREST))
    writer.release()
    boxes = [(0, 0, 9, 7), (31, 17, 80, 61), (317, 171, 320, 176), (40, 20, 300, 160)]
    for frame in VideoFileSource(path, decoder="pyav"):
        picture = frame.pixels
        crops = [frame.crop(*box) for box in boxes[:2]]
        assert picture._bgr is None  # two small crops: the rest of the frame stays YUV
        crops += [frame.crop(*box) for box in boxes[2:]]  # the last, past a quarter: made whole
        for (x0, y0, x1, y1), crop in zip(boxes, crops, strict=True):
            assert np.array_equal(crop, frame.image[y0:y1, x0:x1])


def test_pyav_loop_and_stride(clip: Path) -> None:
    frames = sum(1 for _ in VideoFileSource(clip, decoder="pyav"))
    looped = [
        f.index for f in VideoFileSource(clip, decoder="pyav", loop=True, max_frames=frames + 5)
    ]
    assert looped == list(range(frames + 5))
    strided = [f.index for f in VideoFileSource(clip, decoder="pyav", stride=3, max_frames=4)]
    assert strided == [0, 3, 6, 9]


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_a_file_starts_where_asked_and_loops_from_its_start(clip: Path, decoder: str) -> None:
    whole = [f.image.copy() for f in VideoFileSource(clip, decoder=decoder)]
    source = VideoFileSource(clip, decoder=decoder, loop=True, start_s=1.5, max_frames=len(whole))
    frames = [f.image.copy() for f in source]
    due = round(1.5 * source.fps)  # a seek lands on a keyframe: the frames up to it are dropped
    first = next(i for i, image in enumerate(whole) if np.array_equal(image, frames[0]))
    assert due - 1 <= first <= due  # OpenCV's own seek may land a frame early
    rest = len(whole) - first
    assert all(np.array_equal(a, b) for a, b in zip(frames[:rest], whole[first:], strict=True))
    # the second pass starts at the file's start
    assert all(np.array_equal(a, b) for a, b in zip(frames[rest:], whole, strict=False))


def test_a_start_outside_the_file_or_on_a_camera_is_one_clear_line(clip: Path) -> None:
    with pytest.raises(SourceError, match=r"road\.mp4: start_s 60 is outside the file"):
        VideoFileSource(clip, start_s=60)
    with pytest.raises(SourceError, match="start_s applies to video files only"):
        open_source("rtsp://127.0.0.1:1/cam", start_s=2)


def test_a_cut_file_plays_up_to_the_cut(clip: Path, tmp_path: Path) -> None:
    whole = sum(1 for _ in VideoFileSource(clip, decoder="pyav"))
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    # mp4v writes the index (moov) last: keep it, lose the end of the media data instead
    moov = data.rfind(b"moov") - 4
    cut.write_bytes(data[: moov // 2] + bytes(moov - moov // 2) + data[moov:])
    frames = list(VideoFileSource(cut, decoder="pyav"))
    assert 0 < len(frames) <= whole


def test_decoder_pyav_without_pyav_is_one_clear_line(
    clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge_tl.runtime.pyav_capture as pyav_capture

    monkeypatch.setattr(pyav_capture, "pyav_available", lambda: False)
    with pytest.raises(
        SourceError, match=r"PyAV is not installed \(pip install 'edge-tl\[video\]'\)"
    ):
        open_source(str(clip), decoder="pyav")
    assert sum(1 for _ in open_source(str(clip))) > 30  # auto falls back to OpenCV
