"""The counting benchmark: the matcher on small hand-made ground truths, and `eval-counts` end
to end on a real clip."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_tl.counting import (
    CountedEvent,
    Crossing,
    GroundTruth,
    count_events,
    count_metrics,
    load_ground_truth,
    match_counts,
    position_along,
)
from edge_tl.counting.gallery import (
    CONTEXT_FRAMES,
    INDEX_FILE,
    PANEL_WIDTH,
    count_errors,
    write_gallery,
)
from edge_tl.errors import EdgeTLError
from tests.conftest import SHARED_DATA, run_cli

LABELS = ["bike", "car", "truck"]


def _truth(
    crossings: list[dict], edge_cases: list[dict] | None = None, **fields: object
) -> GroundTruth:
    return GroundTruth.model_validate(
        {
            "resolution": {"width": 1000, "height": 500},
            "line": [[0.1, 0.5], [0.9, 0.5]],
            "crossings": crossings,
            "edge_cases": edge_cases or [],
            **fields,
        }
    )


def test_position_is_measured_from_the_first_end_point() -> None:
    line = ((100.0, 250.0), (900.0, 250.0))
    assert position_along(line, (400.0, 250.0)) == pytest.approx(300.0)
    assert position_along(line, (400.0, 100.0)) == pytest.approx(300.0)  # projected
    diagonal = ((0.0, 0.0), (30.0, 40.0))
    assert position_along(diagonal, (30.0, 40.0)) == pytest.approx(50.0)


def test_double_count_miss_and_tolerances() -> None:
    crossings = [
        Crossing.model_validate({"frame": 100, "class": "car", "pos_px_along_line": 200}),
        Crossing.model_validate({"frame": 200, "class": "truck", "pos_px_along_line": 500}),
        Crossing.model_validate({"frame": 300, "class": "bike", "pos_px_along_line": 100}),
    ]
    events = [
        CountedEvent(103, 210, "car"),  # matches crossing 0
        CountedEvent(105, 190, "car"),  # the same car counted twice: spurious
        CountedEvent(216, 500, "truck"),  # 16 frames late: outside the 15-frame window
        CountedEvent(200, 581, "truck"),  # 81 px off along the line: outside too
        CountedEvent(310, 170, "bike"),  # 10 frames, 70 px: inside both
    ]
    match = match_counts(events, crossings)
    assert match.pairs == [(0, 0), (2, 4)]
    assert match.missed == [1]
    assert match.spurious == [1, 2, 3]


def test_the_match_window_is_half_a_second_at_the_clips_frame_rate() -> None:
    """A count 8 frames after its crossing: 0.27 s at 30 fps (a match), 0.8 s at 10 fps (not:
    15 frames were 1.5 s there). A file that does not say its fps keeps 15 frames."""
    crossing = [{"frame": 100, "class": "car", "pos_px_along_line": 200}]
    late = [CountedEvent(108, 200, "car")]
    at_30, at_10 = _truth(crossing, fps=29.97), _truth(crossing, fps=10)
    assert count_metrics(late, at_30, LABELS)["match_window"] == {"frames": 15, "px": 80.0}
    assert count_metrics(late, at_30, LABELS)["matched"] == 1
    assert count_metrics(late, at_10, LABELS)["match_window"]["frames"] == 5
    assert count_metrics(late, at_10, LABELS)["matched"] == 0
    assert count_metrics([CountedEvent(115, 200, "car")], _truth(crossing), LABELS)["matched"] == 1
    # a smaller frame's file says its own pixels: 50 px off matches at 80, not at 40
    off = [CountedEvent(100, 250, "car")]
    assert count_metrics(off, _truth(crossing), LABELS)["matched"] == 1
    assert count_metrics(off, _truth(crossing, match_px=40), LABELS)["matched"] == 0


def test_closest_pairs_win_and_each_is_used_once() -> None:
    crossings = [
        Crossing.model_validate({"frame": 50, "class": "car", "pos_px_along_line": 100}),
        Crossing.model_validate({"frame": 52, "class": "bike", "pos_px_along_line": 160}),
    ]
    events = [CountedEvent(52, 165, "bike"), CountedEvent(51, 95, "car")]
    assert match_counts(events, crossings).pairs == [(0, 1), (1, 0)]


def test_edge_cases_are_neither_required_nor_penalised() -> None:
    truth = _truth(
        [{"frame": 10, "class": "car", "pos_px_along_line": 100}],
        [
            {"frame": 400, "class": "car", "note": "touches the line only"},
            {"frame": None, "note": "pedestrians at times: a note, matches nothing"},
        ],
    )
    events = [
        CountedEvent(12, 100, "car"),
        CountedEvent(405, 700, "car"),
        CountedEvent(600, 0, "car"),
    ]
    result = count_metrics(events, truth, LABELS)
    assert (result["matched"], result["spurious"], result["edge_case_counts"]) == (1, 1, 1)
    assert result["precision"] == pytest.approx(0.5) and result["recall"] == 1.0
    assert result["spurious_frames"] == [600]


def test_class_accuracy_counts_sure_crossings_only() -> None:
    truth = _truth(
        [
            {"frame": 10, "class": "car", "confidence": "sure", "pos_px_along_line": 100},
            {"frame": 80, "class": "car", "confidence": "sure", "pos_px_along_line": 100},
            {"frame": 160, "class": "truck", "confidence": "unsure", "pos_px_along_line": 100},
            {"frame": 240, "class": "auto-rickshaw", "confidence": "sure", "pos_px_along_line": 9},
            {"frame": 320, "class": "truck (bus)", "pos_px_along_line": 50},  # a note in brackets
        ]
    )
    events = [
        CountedEvent(10, 100, "car"),
        CountedEvent(80, 100, "bike"),
        CountedEvent(160, 100, "car"),
        CountedEvent(240, 9, "car"),
        CountedEvent(320, 50, "truck"),
    ]
    result = count_metrics(events, truth, LABELS)
    assert result["f1"] == 1.0
    assert result["class_accuracy_sure"] == pytest.approx(2 / 4)  # the unsure truck is left out
    assert result["class_accuracy_all"] == pytest.approx(2 / 5)
    assert result["confusion"]["car"] == {"bike": 1, "car": 1, "truck": 0}
    assert result["confusion"]["auto-rickshaw"]["car"] == 1  # a class outside the labels: a row
    assert result["per_class"]["car"] == {
        "true": 2,
        "counted": 3,
        "detected": 2,
        "right": 1,
        "sure_detected": 2,
        "sure_right": 1,
    }


def test_count_events_take_the_box_centre_and_skip_other_kinds() -> None:
    line = ((100.0, 250.0), (900.0, 250.0))
    events = [
        {"kind": "class", "frame": 1, "box": [0, 0, 10, 10], "class": "car"},
        {"kind": "count", "frame": 7, "box": [380, 200, 40, 100], "class": "truck", "track_id": 12},
    ]
    assert count_events(events, line) == [CountedEvent(7, 300.0, "truck", (380, 200, 40, 100), 12)]


def test_bad_ground_truth_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "clip.counts.json"
    path.write_text(json.dumps({"resolution": {"width": 10, "height": 10}, "crossings": []}))
    with pytest.raises(EdgeTLError, match=r"clip\.counts\.json: field 'line'"):
        load_ground_truth(path)
    path.write_text("{")
    with pytest.raises(EdgeTLError, match=r"clip\.counts\.json: not valid JSON"):
        load_ground_truth(path)


@pytest.mark.parametrize("kind", ["missing", "not a video"])
def test_eval_counts_names_a_clip_it_cannot_read_before_loading_the_bundle(
    tmp_path: Path, kind: str
) -> None:
    truth = tmp_path / "clip.counts.json"
    truth.write_text(_truth([]).model_dump_json(by_alias=True))
    clip = tmp_path / "clip.mp4"
    if kind == "not a video":
        clip.write_text("not a video")
    # no bundle at all: the clip is checked first, so its error is the one reported
    result = run_cli("eval-counts", str(tmp_path / "no-bundle"), str(clip), str(truth))
    assert result.returncode != 0
    expected = (
        "no such video file"
        if kind == "missing"
        else "OpenCV cannot open it as a video (unknown format or codec)"  # as `stream` says
    )
    # before: OpenCV's -1 x -1 passed for a size, and the daemon started on the bundle
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"edge-tl: error: {clip}: {expected}"
    assert not any("Traceback" in line or "daemon" in line for line in lines)


def _gallery_case() -> tuple[GroundTruth, list[CountedEvent]]:
    """One of each error on a 400 x 200 ground truth (line at y = 100, from x = 40 to 360)."""
    truth = GroundTruth.model_validate(
        {
            "resolution": {"width": 400, "height": 200},
            "line": [[0.1, 0.5], [0.9, 0.5]],
            "crossings": [
                {"frame": 10, "class": "car", "pos_px_along_line": 60},  # named right
                {"frame": 20, "class": "bike", "pos_px_along_line": 200},  # missed
                {"frame": 30, "class": "truck", "pos_px_along_line": 100},  # named car
                {"frame": 40, "class": "car", "confidence": "unsure", "pos_px_along_line": 100},
            ],
            "edge_cases": [{"frame": 50, "pos_px_along_line": 250}],
        }
    )
    events = [
        CountedEvent(11, 62, "car", (80, 80, 44, 40), 1),
        CountedEvent(31, 104, "car", (120, 80, 48, 40), 2),
        CountedEvent(41, 100, "truck", (116, 80, 48, 40), 3),  # unsure: not judged on class
        CountedEvent(52, 250, "car", (270, 80, 40, 40), 4),  # an edge case: neither way
        CountedEvent(70, 280, "bike", (300, 70, 40, 60), 5),  # spurious
    ]
    return truth, events


def test_errors_are_misses_spurious_counts_and_sure_crossings_named_wrong() -> None:
    truth, events = _gallery_case()
    errors = count_errors(events, truth)
    assert [(e.kind, e.frame, e.truth, e.counted) for e in errors] == [
        ("missed", 20, "bike", None),
        ("class", 31, "truck", "car"),
        ("spurious", 70, None, "bike"),
    ]
    assert [e.file_name for e in errors] == [
        "missed-00020-bike.jpg",
        "class-00031-truck-as-car.jpg",
        "spurious-00070-bike.jpg",
    ]
    assert errors[2].box == (300, 70, 40, 60) and errors[2].track_id == 5
    # which count each is (its own tick is left off its picture), none for a miss
    assert [e.event for e in errors] == [None, 1, 4]


def _numbered_clip(path: Path, frames: int, size: tuple[int, int]) -> Path:
    """Frame i is flat grey 3 * i: which frame a panel shows can be read from its pixels."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 3 * i, np.uint8))
    writer.release()
    return path


def test_gallery_draws_each_error_between_its_neighbours(tmp_path: Path) -> None:
    truth, events = _gallery_case()
    # the clip at twice the ground truth's resolution: boxes are drawn where the truth puts them
    clip = _numbered_clip(tmp_path / "clip.mp4", 80, (800, 400))
    out = tmp_path / "errors"
    drawn = write_gallery(clip, truth, events, out)
    index = json.loads((out / INDEX_FILE).read_text())
    files = [entry["file"] for entry in index]
    assert files == [e.file_name for e in drawn]
    assert sorted(p.name for p in out.iterdir()) == sorted([INDEX_FILE, *files])
    picture = cv2.imread(str(out / "spurious-00070-bike.jpg"))
    height = round(200 * PANEL_WIDTH / 400)
    assert picture.shape == (height, 3 * PANEL_WIDTH, 3)
    # panels: frames 62, 70, 78 (grey 3 * i), read in a corner away from the drawings
    scale = PANEL_WIDTH / 400
    greys = [
        float(np.median(picture[10:40, k * PANEL_WIDTH + 300 : k * PANEL_WIDTH + 380]))
        for k in range(3)
    ]
    expected = [3 * (70 + d) for d in (-CONTEXT_FRAMES, 0, CONTEXT_FRAMES)]
    assert greys == pytest.approx(expected, abs=6)
    # the spurious count's box (300, 70, 40, 60) in red on the middle panel only
    x0, y0 = PANEL_WIDTH + round(300 * scale), round(70 * scale)
    edge = picture[y0 + 5 : y0 + round(50 * scale), x0 - 1 : x0 + 2].reshape(-1, 3).mean(axis=0)
    assert edge[2] > 150 and edge[0] < 100 and edge[1] < 100
    before = picture[y0 + 5 : y0 + round(50 * scale), x0 - 1 - PANEL_WIDTH : x0 + 2 - PANEL_WIDTH]
    redness = before[..., 2].astype(int) - before[..., 1]  # the line crosses it: median
    assert float(np.median(redness)) < 10


def test_two_errors_alike_in_one_frame_get_a_picture_each(tmp_path: Path) -> None:
    truth, _ = _gallery_case()
    pair = [
        {"frame": 20, "class": "car", "pos_px_along_line": 100},
        {"frame": 20, "class": "car", "pos_px_along_line": 250},  # side by side, both missed
    ]
    truth = truth.model_copy(update={"crossings": [Crossing.model_validate(c) for c in pair]})
    clip = _numbered_clip(tmp_path / "clip.mp4", 40, (400, 200))
    write_gallery(clip, truth, [], tmp_path / "errors")
    index = json.loads((tmp_path / "errors" / INDEX_FILE).read_text())
    files = [entry["file"] for entry in index]
    assert len(set(files)) == 2 and [e["position"] for e in index] == [100, 250]
    assert all((tmp_path / "errors" / name).is_file() for name in files)


def test_gallery_replaces_an_earlier_gallery_but_nothing_else(tmp_path: Path) -> None:
    truth, events = _gallery_case()
    clip = _numbered_clip(tmp_path / "clip.mp4", 80, (400, 200))
    out = tmp_path / "errors"
    write_gallery(clip, truth, events, out)
    (out / "missed-09999-car.jpg").write_bytes(b"stale")  # from an earlier, different run
    write_gallery(clip, truth, events[:2], out)  # now the spurious count is gone
    assert not (out / "missed-09999-car.jpg").exists()
    assert not (out / "spurious-00070-bike.jpg").exists()
    assert (out / "missed-00020-bike.jpg").is_file()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(EdgeTLError, match=r"mine: exists and is not an error gallery"):
        write_gallery(clip, truth, events, mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "errors", "mine"]


HIGHWAY = SHARED_DATA / "videos" / "highway-720p.mp4"


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not HIGHWAY.is_file(), reason="needs ../shared/data/videos")
def test_eval_counts_end_to_end_on_a_real_clip(exported_bundle: Path, tmp_path: Path) -> None:
    """The first 200 frames of the highway clip (5 hand-checked crossings). The toy bundle's
    classes are shapes, so only detection is meaningful here: it does not depend on them."""
    truth = json.loads(HIGHWAY.with_suffix(".counts.json").read_text())
    truth["crossings"] = [c for c in truth["crossings"] if c["frame"] < 190]
    truth["edge_cases"] = []
    path = tmp_path / "first-200.counts.json"
    path.write_text(json.dumps(truth))
    config = tmp_path / "serve.toml"
    config.write_text(
        f'bundle = "{exported_bundle}"\n[[streams]]\nname = "a"\nsource = "x"\nmax_frames = 200\n'
    )
    events = tmp_path / "events.jsonl"
    gallery = tmp_path / "errors"
    result = run_cli(
        "eval-counts", str(exported_bundle), str(HIGHWAY), str(path), "--config", str(config),
        "--events", str(events), "--errors", str(gallery), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["frames"] == 200 and report["crossings"] == 5
    assert report["recall"] >= 0.8 and report["precision"] >= 0.8  # measured: 4/5 and 4/4
    counts = [json.loads(line) for line in events.read_text().splitlines()]
    assert sum(e["kind"] == "count" for e in counts) == report["counted"]
    assert sum(r["counted"] for r in report["per_class"].values()) == report["counted"]
    assert report["split_frames"] == [e["frame"] for e in counts if "split_from" in e]
    drawn = json.loads((gallery / INDEX_FILE).read_text())
    assert report["error_gallery"]["pictures"] == len(drawn)
    assert [e["frame"] for e in drawn if e["kind"] == "missed"] == report["missed_frames"]
    assert [e["frame"] for e in drawn if e["kind"] == "spurious"] == report["spurious_frames"]
    assert all((gallery / e["file"]).is_file() for e in drawn)
