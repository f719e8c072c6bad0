from __future__ import annotations

import numpy as np
import pytest

from edge_tl.metrics import classification_report, confusion_matrix, topk_accuracy


def test_report_on_a_known_example() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    logits = np.eye(3)[predicted] * 5
    logits[1, 0] = 4  # the 0→1 mistake has the right class second
    report = classification_report(logits, labels, ["bike", "car", "truck"])
    assert report["top1"] == pytest.approx(4 / 6)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    car = report["per_class"]["car"]
    assert car["recall"] == 1.0 and car["precision"] == pytest.approx(2 / 3) and car["support"] == 2
    assert report["per_class"]["truck"]["recall"] == 0.5
    assert topk_accuracy(logits, labels, 2) > report["top1"]


def test_confusion_matrix_counts() -> None:
    matrix = confusion_matrix(np.array([1, 1, 0]), np.array([1, 0, 0]), 2)
    assert matrix.tolist() == [[1, 1], [0, 1]]
