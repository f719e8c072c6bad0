"""Frames or crops in, labelled predictions out: preprocessing + a backend + softmax."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_tl.bundle import ColorOrder
from edge_tl.runtime.backends.base import Backend
from edge_tl.runtime.preprocess import prepare_batch

__all__ = ["Prediction", "Classifier", "softmax"]


@dataclass(frozen=True)
class Prediction:
    label: str
    index: int
    score: float
    top: list[tuple[str, float]] = field(default_factory=list)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class Classifier:
    """Classify BGR images with an opened backend; records per-stage time of the last call."""

    def __init__(self, backend: Backend, labels: Sequence[str], top_k: int = 3) -> None:
        self.backend = backend
        self.labels = list(labels)
        self.top_k = min(top_k, len(self.labels))
        self.last_timings_ms: dict[str, float] = {}

    def classify(
        self, images: Sequence[np.ndarray], source_order: ColorOrder = ColorOrder.BGR
    ) -> list[Prediction]:
        t0 = time.perf_counter()
        batch = prepare_batch(images, self.backend.input_spec, self.backend.raw_input, source_order)
        t1 = time.perf_counter()
        logits = self.backend.infer(batch)
        t2 = time.perf_counter()
        predictions = self.decode(logits)
        t3 = time.perf_counter()
        self.last_timings_ms = {
            "preprocess": (t1 - t0) * 1e3,
            "infer": (t2 - t1) * 1e3,
            "postprocess": (t3 - t2) * 1e3,
        }
        return predictions

    def decode(self, logits: np.ndarray) -> list[Prediction]:
        probabilities = softmax(logits.astype(np.float32))
        order = np.argsort(-probabilities, axis=1)[:, : self.top_k]
        return [
            Prediction(
                label=self.labels[int(row[0])],
                index=int(row[0]),
                score=float(probs[row[0]]),
                top=[(self.labels[int(j)], float(probs[j])) for j in row],
            )
            for probs, row in zip(probabilities, order, strict=False)
        ]
