"""Know when the model is wrong without labels: each stream's recent classifications against
the reference the training run stored from the validation split (`Manifest.reference`).

A camera the model has never seen shows up first in its confidence: on the shared clips the
default bundle's median top-1 probability is 0.49-0.51 against 0.87 on footage of its own
camera (issue 14). The monitor keeps the last `window` probability vectors of a stream and
says the stream has drifted when (limits set from the shared clips at KS 0.70-0.75 and low
share 0.62-0.63 against the demo's held-out clip at 0.41 and 0.17)

- the share below the validation 10th-percentile confidence is more than `low_share_limit`
  (validation: 0.10 by construction), or
- the window's confidences sit lower than the validation ones by a one-sided
  Kolmogorov-Smirnov distance of more than `ks_limit`, or
- (opt-in) the class mix is further than `class_mix_limit` (total variation) from validation:
  off by default because a real road's mix (all cars on a motorway) legitimately differs from
  a balanced training set.

A drifting stream clears only once its figures are below `clear_ratio` of those limits: a
stream whose figures hover at a limit would otherwise flip, and flip the ImageNet prior's use
with it (measured: a bundle adapted to the overhead clip read 33-41 % low-confidence against
the 35 % limit and sent 6 drift events in 80 frames).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge_tl.records import ScoreReference

__all__ = ["DriftConfig", "DriftMonitor", "DriftStatus", "score_reference", "QUANTILES"]

QUANTILES = [round(q, 2) for q in np.linspace(0, 1, 21)]


class DriftConfig(BaseModel):
    """The `[streams.drift]` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    window: int = Field(default=100, ge=10)  # classifications compared (crops in motion mode)
    min_samples: int = Field(default=30, ge=5)  # no verdict before this many
    low_share_limit: float = Field(default=0.35, gt=0, le=1)
    ks_limit: float = Field(default=0.5, gt=0, le=1)
    class_mix_limit: float | None = Field(default=None, gt=0, le=1)
    clear_ratio: float = Field(default=0.8, gt=0, le=1)  # of each limit, to clear a drifting stream


def score_reference(probabilities: np.ndarray, labels: Sequence[str]) -> ScoreReference:
    """The reference from validation probabilities (N x classes)."""
    ordered = np.sort(probabilities, axis=1)
    confidence, margin = ordered[:, -1], ordered[:, -1] - ordered[:, -2]
    predicted = probabilities.argmax(axis=1)
    return ScoreReference(
        images=len(probabilities),
        quantiles=QUANTILES,
        confidence=[round(float(v), 5) for v in np.quantile(confidence, QUANTILES)],
        margin=[round(float(v), 5) for v in np.quantile(margin, QUANTILES)],
        low_confidence=round(float(np.quantile(confidence, 0.1)), 5),
        class_mix={
            label: round(float((predicted == i).mean()), 5) for i, label in enumerate(labels)
        },
    )


@dataclass(frozen=True)
class DriftStatus:
    samples: int
    confidence_median: float
    margin_median: float
    low_confidence_share: float
    confidence_ks: float
    class_mix_distance: float
    drifting: bool
    reason: str  # plain words; empty when not drifting


class DriftMonitor:
    """Feed probability vectors with `observe`; `status()` compares the window with the
    reference, `changed()` says when the verdict flipped since it was last asked."""

    def __init__(
        self, reference: ScoreReference, labels: Sequence[str], config: DriftConfig | None = None
    ) -> None:
        self.reference, self.labels = reference, list(labels)
        self.config = config or DriftConfig()
        self._scores: deque[np.ndarray] = deque(maxlen=self.config.window)
        self._reported = False
        # the status depends on the window alone: streams ask every frame and classifications
        # arrive on a few frames in ten, so it is recomputed only after an observation
        # (measured: 2.6 % of a 10-camera daemon's CPU went to recomputing an unchanged status)
        self._status: DriftStatus | None = None

    def observe(self, scores: np.ndarray) -> None:
        self._scores.append(np.asarray(scores, dtype=np.float64))
        self._status = None

    def status(self) -> DriftStatus:
        if self._status is None:
            self._status = self._compute()
        return self._status

    def _compute(self) -> DriftStatus:
        ref, config = self.reference, self.config
        if not self._scores:
            return DriftStatus(0, 0.0, 0.0, 0.0, 0.0, 0.0, False, "")
        window = np.stack(self._scores)
        ordered = np.sort(window, axis=1)
        confidence, margin = ordered[:, -1], ordered[:, -1] - ordered[:, -2]
        low_share = float((confidence < ref.low_confidence).mean())
        ks = _ks_distance(confidence, ref.quantiles, ref.confidence)
        counts = np.bincount(window.argmax(axis=1), minlength=len(self.labels)) / len(window)
        expected = np.array([ref.class_mix.get(label, 0.0) for label in self.labels])
        mix_distance = float(0.5 * np.abs(counts - expected).sum())
        median, ref_median = float(np.median(confidence)), _median(ref.quantiles, ref.confidence)
        scale = config.clear_ratio if self._reported else 1.0  # hysteresis, see the module doc
        reasons = []
        if len(window) >= config.min_samples:
            if low_share > scale * config.low_share_limit:
                reasons.append(
                    f"{low_share:.0%} of the last {len(window)} classifications are below the "
                    f"validation 10th-percentile confidence {ref.low_confidence:.2f} "
                    "(validation: 10%)"
                )
            if ks > scale * config.ks_limit:
                reasons.append(
                    f"confidence distribution differs from validation (median {median:.2f} vs "
                    f"{ref_median:.2f}, KS distance {ks:.2f})"
                )
            mix_limit = config.class_mix_limit
            if mix_limit is not None and mix_distance > scale * mix_limit:
                top = self.labels[int(counts.argmax())]
                reasons.append(
                    f"class mix differs from validation (total variation {mix_distance:.2f}; "
                    f"{counts.max():.0%} {top})"
                )
        return DriftStatus(
            samples=len(window),
            confidence_median=median,
            margin_median=float(np.median(margin)),
            low_confidence_share=low_share,
            confidence_ks=ks,
            class_mix_distance=mix_distance,
            drifting=bool(reasons),
            reason="; ".join(reasons),
        )

    @property
    def has_verdict(self) -> bool:
        """Enough classifications in the window (`min_samples`) to tell."""
        return len(self._scores) >= self.config.min_samples

    @property
    def drifting(self) -> bool:
        """The verdict last reported by `changed`."""
        return self._reported

    def changed(self) -> DriftStatus | None:
        """The status when the verdict differs from the last one reported, else None."""
        status = self.status()
        if status.drifting == self._reported:
            return None
        self._reported = status.drifting
        self._status = None  # the limits to compare with changed with the verdict
        return status


def _ks_distance(sample: np.ndarray, quantiles: Sequence[float], values: Sequence[float]) -> float:
    """One-sided Kolmogorov-Smirnov distance: how far the sample's CDF rises above the
    reference CDF (interpolated between its stored quantiles), i.e. how much more mass sits at
    low confidence. A window more confident than validation is not drift."""
    points = np.sort(sample)
    ours = np.arange(1, len(points) + 1) / len(points)
    theirs = np.interp(points, values, quantiles, left=0.0, right=1.0)
    return float(max(0.0, np.max(ours - theirs)))


def _median(quantiles: Sequence[float], values: Sequence[float]) -> float:
    return float(np.interp(0.5, quantiles, values))
