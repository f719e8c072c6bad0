"""Frames or crops in, labelled predictions out: preprocessing + a backend + softmax."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_tl.bundle import ColorOrder
from edge_tl.errors import DataError
from edge_tl.images import load_image
from edge_tl.metrics import softmax
from edge_tl.preprocess import prepare_batch
from edge_tl.runtime.backends.base import Backend

__all__ = ["Prediction", "Classifier", "top_k", "fuse", "ClassifiedFile", "classify_files"]


@dataclass(frozen=True)
class Prediction:
    label: str
    index: int
    score: float
    scores: np.ndarray  # probabilities of every class, in the bundle's label order
    top: list[tuple[str, float]] = field(default_factory=list)
    # per-stage milliseconds of the batch this prediction was computed in
    timings_ms: dict[str, float] = field(default_factory=dict)
    # the ImageNet prior's probabilities per label, when the bundle has one (models/prior.py)
    prior: np.ndarray | None = None


def fuse(scores: np.ndarray, prior: np.ndarray, weight: float) -> np.ndarray:
    """The head's and the prior's probabilities as one vector: a weighted geometric mean
    (product of experts), renormalized. `weight` is the prior's share of the say."""
    logp = (1 - weight) * np.log(np.maximum(scores, 1e-12)) + weight * np.log(
        np.maximum(prior, 1e-12)
    )
    fused = np.exp(logp - logp.max(axis=-1, keepdims=True))
    return fused / fused.sum(axis=-1, keepdims=True)


def top_k(scores: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The k best (label, score) pairs of one probability vector, best first."""
    order = np.argsort(-scores)[:k]
    return [(labels[int(j)], float(scores[j])) for j in order]


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
        logits, prior_logp = self.backend.infer_with_prior(batch)
        t2 = time.perf_counter()
        probabilities = softmax(logits.astype(np.float32))
        priors = softmax(prior_logp.astype(np.float32)) if prior_logp is not None else None
        t3 = time.perf_counter()
        self.last_timings_ms = {
            "preprocess": (t1 - t0) * 1e3,
            "infer": (t2 - t1) * 1e3,
            "postprocess": (t3 - t2) * 1e3,
        }
        return [
            self.decode(probs, self.last_timings_ms, priors[i] if priors is not None else None)
            for i, probs in enumerate(probabilities)
        ]

    def decode(
        self,
        scores: np.ndarray,
        timings_ms: dict[str, float] | None = None,
        prior: np.ndarray | None = None,
    ) -> Prediction:
        """A Prediction from one probability vector (the head's; `prior` rides along)."""
        best = int(scores.argmax())
        return Prediction(
            label=self.labels[best],
            index=best,
            score=float(scores[best]),
            scores=scores,
            top=top_k(scores, self.labels, self.top_k),
            timings_ms=dict(timings_ms or {}),
            prior=prior,
        )


@dataclass(frozen=True)
class ClassifiedFile:
    path: Path
    prediction: Prediction | None
    error: str | None = None  # why the file could not be classified


def classify_files(
    backend: Backend, labels: Sequence[str], files: Sequence[Path], k: int = 3, batch_size: int = 16
) -> list[ClassifiedFile]:
    """Every file's prediction, decoded and classified `batch_size` at a time; a file that
    cannot be decoded gets its error instead, and the others go on."""
    classifier = Classifier(backend, labels, top_k=k)
    results: list[ClassifiedFile] = []
    for start in range(0, len(files), batch_size):
        decoded: list[tuple[Path, np.ndarray]] = []
        for path in files[start : start + batch_size]:
            try:
                decoded.append((path, load_image(path)))
            except DataError as exc:
                results.append(ClassifiedFile(path, None, str(exc)))
        if decoded:
            predictions = classifier.classify([image for _, image in decoded])
            results += [
                ClassifiedFile(p, pred) for (p, _), pred in zip(decoded, predictions, strict=True)
            ]
    order = {path: i for i, path in enumerate(files)}
    return sorted(results, key=lambda r: order[r.path])
