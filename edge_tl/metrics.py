"""Classification metrics as pure numpy functions: softmax, top-k, agreement between two
models, per-class precision/recall/F1, confusion matrix. The one implementation used by
training, export, evaluation and the runtime; part of the torch-free foundation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "softmax",
    "log_softmax",
    "top1",
    "topk_accuracy",
    "agreement",
    "max_abs_diff",
    "confusion_matrix",
    "classification_report",
]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise probabilities of (N, C) logits, numerically stable."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in [0, 1]; nan for an empty set."""
    return topk_accuracy(logits, labels, 1)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of rows whose argmax agrees; nan for no rows."""
    return float((a.argmax(axis=1) == b.argmax(axis=1)).mean()) if len(a) else float("nan")


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    if len(labels) == 0:
        return float("nan")
    if k == 1:
        return float((logits.argmax(axis=1) == labels).mean())
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def classification_report(
    logits: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    predicted = logits.argmax(axis=1)
    matrix = confusion_matrix(predicted, labels, len(class_names))
    true_positive = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, true_positive / predicted_count, 0.0)
        recall = np.where(support > 0, true_positive / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {
        "images": int(len(labels)),
        "top1": topk_accuracy(logits, labels, 1),
        "top3": topk_accuracy(logits, labels, 3),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "macro_f1": float(f1[support > 0].mean()) if (support > 0).any() else 0.0,
        "confusion_matrix": matrix.tolist(),
        "labels": list(class_names),
    }
