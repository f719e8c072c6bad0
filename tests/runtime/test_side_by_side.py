"""Vehicles side by side in one blob, told apart on the counting line: synthetic masks, then
the stream processor on an OpenCV-encoded clip decoded back."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_tl.bundle import Bundle
from edge_tl.runtime.backends import create_backend
from edge_tl.runtime.classify import Classifier
from edge_tl.runtime.config import StreamConfig
from edge_tl.runtime.processor import SIDE_BY_SIDE_FRAMES, StreamProcessor
from edge_tl.runtime.scheduler import BatchScheduler
from edge_tl.runtime.side_by_side import foreground_runs, split_at_line, straddles
from edge_tl.runtime.sources import Frame, VideoFileSource
from edge_tl.runtime.tracker import Track
from tests.conftest import _pattern

HORIZONTAL = ((0.0, 100.0), (400.0, 100.0))


def _mask(*rects: tuple[int, int, int, int], shape: tuple[int, int] = (200, 400)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for x, y, w, h in rects:
        mask[y : y + h, x : x + w] = 255
    return mask


def _contains(outer: tuple[int, ...], inner: tuple[int, ...]) -> bool:
    ox, oy, ow, oh = outer
    ix, iy, iw, ih = inner
    return ox <= ix and oy <= iy and ix + iw <= ox + ow and iy + ih <= oy + oh


def test_a_box_straddles_a_line_only_with_corners_on_both_sides() -> None:
    assert straddles(HORIZONTAL, (10, 80, 20, 40))
    assert not straddles(HORIZONTAL, (10, 101, 20, 40))  # below
    assert not straddles(HORIZONTAL, (10, 60, 20, 40))  # its bottom edge on the line
    assert straddles(((0.0, 0.0), (100.0, 100.0)), (40, 40, 20, 20))  # a diagonal line


def test_runs_close_small_gaps_only() -> None:
    profile = np.array([0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0], bool)
    assert foreground_runs(profile, max_gap=2) == [(1, 6), (10, 10)]
    assert foreground_runs(profile, max_gap=1) == [(1, 2), (5, 6), (10, 10)]
    assert foreground_runs(np.zeros(5, bool)) == []


def test_two_vehicles_side_by_side_become_two_boxes_widest_first() -> None:
    # a car 60 px wide and a motorbike 24 px wide, 10 px of road between them, one blob box
    car, bike = (100, 60, 60, 90), (170, 80, 24, 50)
    blob = (96, 56, 102, 98)
    parts = split_at_line(_mask(car, bike), 1.0, HORIZONTAL, blob, min_width=0.05)
    assert len(parts) == 2
    assert _contains(parts[0], car) and not _contains(parts[0], bike)
    assert _contains(parts[1], bike) and not _contains(parts[1], car)
    assert all(_contains(blob, part) for part in parts)
    # the motorbike's box is its own height, not the whole blob's
    assert parts[1][3] < blob[3]


def test_a_vehicles_outline_strips_do_not_split_it() -> None:
    # a car the background model marked as its outline: two 6 px sides, a plain roof between
    sides = ((100, 60, 6, 90), (154, 60, 6, 90))
    blob = (96, 56, 68, 98)
    assert split_at_line(_mask(*sides), 1.0, HORIZONTAL, blob, min_width=0.05) == [blob]
    # and no split at all when asked for none
    two = _mask((100, 60, 60, 90), (170, 80, 24, 50))
    assert split_at_line(two, 1.0, HORIZONTAL, (96, 56, 102, 98), min_width=0) == [
        (96, 56, 102, 98)
    ]


def test_split_follows_a_vertical_line_and_the_mask_scale() -> None:
    # full frame 800 x 400, mask at half size; vehicles one above the other cross x = 400
    mask = _mask((180, 40, 60, 40), (180, 90, 60, 40))
    vertical = ((400.0, 0.0), (400.0, 400.0))
    blob = (352, 72, 136, 184)
    parts = split_at_line(mask, 0.5, vertical, blob, min_width=0.05)
    assert len(parts) == 2
    tops = sorted(part[1] for part in parts)
    assert tops[0] < 160 <= tops[1]  # one part per vehicle: above and below y = 160


def test_a_scene_turned_90_degrees_splits_alike() -> None:
    # a car and, beside it, a 14 px strip of its outline: under 5 % of the landscape mask's
    # 400 px, over 5 % of the 200 px width of the same mask turned to portrait
    car, strip = (100, 60, 60, 90), (170, 60, 14, 90)
    blob = (96, 56, 92, 98)
    assert split_at_line(_mask(car, strip), 1.0, HORIZONTAL, blob, min_width=0.05) == [blob]
    turned = np.ascontiguousarray(np.rot90(_mask(car, strip), k=-1))  # clockwise: 200 x 400
    x, y, w, h = blob
    turned_blob = (200 - y - h, x, h, w)
    vertical = ((99.0, 0.0), (99.0, 400.0))  # the line y = 100, turned
    assert split_at_line(turned, 1.0, vertical, turned_blob, min_width=0.05) == [turned_blob]


def test_split_parts_follow_a_diagonal_line() -> None:
    # a line at 45 degrees; two vehicles cross it side by side, each long across the line
    # (100 px) and narrow along it (30 px): as traffic crosses a diagonal line. A part sliced
    # along the line's main axis (x) would cut each vehicle to the width of its run.
    mask = np.zeros((400, 400), np.uint8)
    across, on_line = np.array([1.0, -1.0]) / np.sqrt(2), np.array([1.0, 1.0]) / np.sqrt(2)
    vehicles = []
    for centre in (np.array([150.0, 150.0]), np.array([230.0, 230.0])):
        corners = [
            centre + a * 50 * across + b * 15 * on_line
            for a, b in ((-1, -1), (-1, 1), (1, 1), (1, -1))
        ]
        cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 255)
        xs, ys = zip(*corners, strict=True)
        vehicles.append(
            (
                int(min(xs)) + 1,
                int(min(ys)) + 1,
                int(max(xs) - min(xs)) - 2,
                int(max(ys) - min(ys)) - 2,
            )
        )
    diagonal = ((0.0, 0.0), (400.0, 400.0))
    blob = (96, 96, 188, 188)
    parts = split_at_line(mask, 1.0, diagonal, blob, min_width=0.05)
    assert len(parts) == 2
    for part in parts:
        assert sum(_contains(part, vehicle) for vehicle in vehicles) == 1
    assert all(_contains(blob, part) for part in parts)


def make_side_by_side_clip(
    path: Path, gap: int, size: tuple[int, int] = (320, 180), closing: int = 0
) -> None:
    """Two patterned objects cross left to right one above the other, `gap` pixels apart,
    over a static noisy background, then one alone. `closing`: the lower one climbs this many
    pixels a frame until it touches the upper one as their centres reach the middle."""
    rng = np.random.default_rng(0)
    width, height = size
    background = np.clip(rng.normal(110, 6, (height, width, 3)), 0, 255).astype(np.uint8)
    sprite = cv2.resize(_pattern("checker", rng), (48, 48), interpolation=cv2.INTER_NEAREST)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 20, size)
    for _ in range(15):
        writer.write(background)
    for rows in ([40, 40 + 48 + gap], [60]):
        for x in range(-48, width + 1, 8):
            frame = background.copy()
            x0, x1 = max(0, x), min(width, x + 48)
            steps_left = max(0, (width // 2 - 24 - x) // 8)  # frames until the centre crosses
            if closing and len(rows) == 2:
                rows = [40, 40 + 48 + min(gap, closing * steps_left)]
            for y in rows:
                if x1 > x0:
                    frame[y : y + 48, x0:x1] = sprite[:, x0 - x : x1 - x]
            writer.write(frame)
        for _ in range(4):
            writer.write(background)
    writer.release()


def count_events(bundle_dir: Path, clip: Path, **settings: float) -> list[dict]:
    """The count events of the motion pipeline on `clip` (real ONNX Runtime classifier)."""
    bundle = Bundle.load(bundle_dir)
    with create_backend(bundle, "onnxruntime") as backend:
        scheduler = BatchScheduler(Classifier(backend, bundle.labels), max_batch=4)
        config = StreamConfig(name=clip.stem, source="-", mode="motion", **settings)
        processor = StreamProcessor(config, scheduler, bundle.labels)
        events = [e for f in VideoFileSource(clip) for e in processor.process(f)]
        events += list(processor.finish())
        scheduler.close()
    return [e for e in events if e["kind"] == "count"]


@pytest.mark.slow
def test_a_blob_of_two_vehicles_side_by_side_counts_two(
    exported_bundle: Path, tmp_path: Path
) -> None:
    make_side_by_side_clip(tmp_path / "pair.mp4", gap=6)  # dilation joins 6 px: one blob
    joined = count_events(exported_bundle, tmp_path / "pair.mp4", split_min_width=0.0)
    assert len(joined) == 2  # the pair's blob once, the single object once
    split = count_events(exported_bundle, tmp_path / "pair.mp4")
    assert len(split) == 3
    pair = [e for e in split if e["frame"] == split[0]["frame"]]
    assert len(pair) == 2 and pair[1]["split_from"] == pair[0]["track_id"]
    assert pair[1]["track_id"] != pair[0]["track_id"] and pair[1]["votes"] == 1
    upper, lower = sorted(pair, key=lambda e: e["box"][1])
    assert upper["box"][1] + upper["box"][3] <= lower["box"][1] + 8  # one object each
    assert "split_from" not in split[2]


@pytest.mark.slow
def test_a_pair_seen_apart_on_the_line_counts_two_even_when_joined_as_it_crosses(
    exported_bundle: Path, tmp_path: Path
) -> None:
    # 12, 8, 4 px apart while the blob lies across the line, touching when the centres cross
    # (the crossing frame alone shows one vehicle; passed under 8 seeds of OpenCV's RNG, which
    # the KNN background model samples with)
    make_side_by_side_clip(tmp_path / "closing.mp4", gap=12, closing=4)
    counts = count_events(exported_bundle, tmp_path / "closing.mp4")
    assert len(counts) == 3
    assert sum("split_from" in e for e in counts) == 1


@pytest.mark.slow
def test_a_vehicle_told_apart_on_the_line_is_not_counted_again_by_its_own_track(
    exported_bundle: Path,
) -> None:
    # the frame that showed the pair apart came before the crossing; by the crossing frame the
    # blob's track held only the upper vehicle, so only the parts' boxes cover the lower one.
    # Its own track, crossing three frames later (a stride of 3 on the overhead clip), is the
    # same vehicle, not a new one.
    bundle = Bundle.load(exported_bundle)
    image = np.full((180, 320, 3), 110, np.uint8)
    upper, lower = (140, 40, 48, 48), (140, 94, 48, 48)
    with create_backend(bundle, "onnxruntime") as backend:
        scheduler = BatchScheduler(Classifier(backend, bundle.labels), max_batch=4)
        config = StreamConfig(name="pair", source="-", mode="motion")
        processor = StreamProcessor(config, scheduler, bundle.labels)
        crossing = Frame(30, image, 1000.0, time.time(), 0.0)
        track = Track(1, upper, first_frame=10, last_frame=30)
        lower_crop = image[94:142, 140:188].copy()
        processor._beside[track.id] = ([upper, lower], [lower_crop], SIDE_BY_SIDE_FRAMES, 29)
        assert not processor._recounted(track, crossing.index)
        processor._count(track, crossing)
        assert len(processor._counting) == 2  # the pair counts two
        assert processor._recounted(Track(7, (146, 96, 48, 48), 31, 33), 33)
        assert not processor._recounted(Track(8, (250, 94, 48, 48), 31, 33), 33)  # elsewhere
        scheduler.close()
