"""Validation and test sets side by side: summaries, recall-gap warnings, the Markdown report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_tl.errors import DataError
from edge_tl.metrics import classification_report
from edge_tl.scorecard import (
    VAL_SET,
    load_test_sets,
    recall_gaps,
    scorecard_markdown,
    summarize,
)
from tests.conftest import make_image_folder

LABELS = ["bike", "car", "truck"]


def _summary(true: list[int], predicted: list[int]) -> dict:
    logits = np.eye(len(LABELS), dtype=np.float32)[predicted]
    return summarize(classification_report(logits, np.asarray(true), LABELS))


def test_a_class_that_loses_recall_on_a_test_set_is_named() -> None:
    val = _summary([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2])  # every class 100 %
    # test: car recall 50 % (-50 points), bike 100 %, truck absent
    test = _summary([0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 2, 0])
    warnings = recall_gaps({VAL_SET: val, "new-footage": test})
    assert len(warnings) == 1
    assert "'car'" in warnings[0] and "50.0%" in warnings[0] and "new-footage" in warnings[0]
    # a small drop is not flagged, and with no validation set there is nothing to compare
    assert recall_gaps({VAL_SET: val, "t": test}, max_drop=0.6) == []
    assert recall_gaps({"t": test}) == []


def test_summary_keeps_what_the_manifest_needs() -> None:
    summary = _summary([0, 1, 2, 2], [0, 2, 2, 2])
    assert summary.num_images == 4 and summary.top1 == pytest.approx(0.75)
    assert summary.per_class_recall == {"bike": 1.0, "car": 0.0, "truck": 1.0}
    assert summary.confusion_matrix[1] == [0, 0, 1]  # the car was taken for a truck


def test_markdown_shows_every_set_and_its_confusion_matrix() -> None:
    sets = {
        VAL_SET: _summary([0, 1, 2], [0, 1, 2]),
        "footage-b": _summary([0, 1, 1], [0, 2, 2]),
    }
    text = scorecard_markdown("lite0", sets, LABELS)
    assert "| val | 3 | 100.00% |" in text
    assert "| footage-b | 3 | 33.33% |" in text
    assert "## Confusion matrix: footage-b" in text
    assert "| car | 0 | 0 | 2 |" in text  # both cars predicted as trucks
    assert "## Warnings" in text and "'car'" in text
    # a class missing from a test set shows as '-', not as 0 % recall
    assert text.splitlines()[7].rstrip().endswith("| - |")


def test_test_sets_map_onto_the_model_labels(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "a", per_class=2)
    sets = load_test_sets([root], ["checker", "disc", "other", "stripes"])
    assert sets[0].name == "a"
    labels = sets[0].images.labels
    assert sorted(set(labels.tolist())) == [0, 1, 3]  # 'other' has no folder: no index 2
    with pytest.raises(DataError, match="disc.*not labels of the model"):
        load_test_sets([root], ["checker", "stripes"])
    with pytest.raises(DataError, match="no such folder"):
        load_test_sets([tmp_path / "missing"], LABELS)


def test_two_test_sets_with_the_same_folder_name_stay_apart(tmp_path: Path) -> None:
    first = make_image_folder(tmp_path / "x" / "footage", per_class=1)
    second = make_image_folder(tmp_path / "y" / "footage", per_class=1)
    names = [s.name for s in load_test_sets([first, second], ["checker", "disc", "stripes"])]
    assert len(set(names)) == 2 and names[0] == "footage"
