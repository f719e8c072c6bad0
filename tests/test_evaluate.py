"""Test-time augmentation in collect_logits: the mean log-probability over views."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_tl.bundle import InputSpec, ResizePolicy
from edge_tl.errors import DataError
from edge_tl.evaluate import collect_logits, tta_views


class _LeftBrightness:
    """A stand-in model with a visible answer: class 0 when the left half is brighter."""

    raw_input = None
    input_spec = InputSpec(
        height=8, width=8, mean=(0.5,) * 3, std=(0.5,) * 3, resize=ResizePolicy.SQUASH
    )

    def infer(self, batch: np.ndarray) -> np.ndarray:
        left, right = batch[..., :4].mean(axis=(1, 2, 3)), batch[..., 4:].mean(axis=(1, 2, 3))
        return np.stack([left - right, right - left], axis=1).astype(np.float32)


def _write(path: Path, bright_left: bool) -> Path:
    image = np.full((8, 8, 3), 40, np.uint8)
    image[:, :4] = 220 if bright_left else 40
    image[:, 4:] = 40 if bright_left else 220
    cv2.imwrite(str(path), image)
    return path


def test_hflip_views_cancel_a_left_right_cue(tmp_path: Path) -> None:
    paths = [_write(tmp_path / "a.png", True), _write(tmp_path / "b.png", False)]
    plain = collect_logits([_LeftBrightness()], paths)[0]
    assert plain.argmax(axis=1).tolist() == [0, 1]
    averaged = collect_logits([_LeftBrightness()], paths, views=tta_views("hflip"))[0]
    # each image and its mirror disagree exactly: the average says both classes are equal
    np.testing.assert_allclose(averaged[:, 0], averaged[:, 1], atol=1e-5)
    # a single view returns the backend's logits untouched; several return log-probabilities
    identity_twice = collect_logits([_LeftBrightness()], paths, views=tta_views("none") * 2)[0]
    np.testing.assert_allclose(np.exp(identity_twice).sum(axis=1), 1.0, rtol=1e-5)
    assert identity_twice.argmax(axis=1).tolist() == [0, 1]


def test_unknown_tta_names_the_choices() -> None:
    with pytest.raises(DataError, match="choose from none, hflip, hflip-rot180"):
        tta_views("rotate-everything")
