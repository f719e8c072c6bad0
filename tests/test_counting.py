"""The counting benchmark: the matcher on small hand-made ground truths, and `eval-counts` end
to end on a real clip."""

from __future__ import annotations

import json
from pathlib import Path

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
from edge_tl.errors import EdgeTLError
from tests.conftest import SHARED_DATA, run_cli

LABELS = ["bike", "car", "truck"]


def _truth(crossings: list[dict], edge_cases: list[dict] | None = None) -> GroundTruth:
    return GroundTruth.model_validate(
        {
            "resolution": {"width": 1000, "height": 500},
            "line": [[0.1, 0.5], [0.9, 0.5]],
            "crossings": crossings,
            "edge_cases": edge_cases or [],
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
        {"kind": "count", "frame": 7, "box": [380, 200, 40, 100], "class": "truck"},
    ]
    assert count_events(events, line) == [CountedEvent(7, 300.0, "truck")]


def test_bad_ground_truth_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "clip.counts.json"
    path.write_text(json.dumps({"resolution": {"width": 10, "height": 10}, "crossings": []}))
    with pytest.raises(EdgeTLError, match=r"clip\.counts\.json: field 'line'"):
        load_ground_truth(path)
    path.write_text("{")
    with pytest.raises(EdgeTLError, match=r"clip\.counts\.json: not valid JSON"):
        load_ground_truth(path)


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
    result = run_cli(
        "eval-counts", str(exported_bundle), str(HIGHWAY), str(path), "--config", str(config),
        "--events", str(events), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["frames"] == 200 and report["crossings"] == 5
    assert report["recall"] >= 0.8 and report["precision"] >= 0.8  # measured: 4/5 and 4/4
    counts = [json.loads(line) for line in events.read_text().splitlines()]
    assert sum(e["kind"] == "count" for e in counts) == report["counted"]
    assert sum(r["counted"] for r in report["per_class"].values()) == report["counted"]
    assert report["split_frames"] == [e["frame"] for e in counts if "split_from" in e]
