"""Training augmentation: each camera effect does what it says, and nothing happens when off."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from edge_tl.errors import EdgeTLError
from edge_tl.train.augment import AUGMENT_PRESETS, AugmentConfig, augment, augment_preset

OFF = AUGMENT_PRESETS["none"]


def _vehicle(size: int = 96) -> np.ndarray:
    """A bright block in the left half on a textured road: orientation is easy to read."""
    rng = np.random.default_rng(1)
    image = rng.integers(60, 90, (size, size, 3), dtype=np.uint8)
    image[size // 4 : 3 * size // 4, 4 : size // 2 - 4] = (230, 220, 210)
    return image


def _left_minus_right(image: np.ndarray) -> float:
    half = image.shape[1] // 2
    return float(image[:, :half].mean() - image[:, half:].mean())


def _sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def test_no_augmentation_returns_the_image_unchanged() -> None:
    image = _vehicle()
    out = augment(image, np.random.default_rng(0), OFF)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.abs(out.astype(int) - image).max() <= 1  # identity warp, no light change


@pytest.mark.parametrize("name", sorted(AUGMENT_PRESETS))
def test_every_preset_keeps_size_and_type(name: str) -> None:
    rng = np.random.default_rng(0)
    for image in (_vehicle(96), _vehicle(100)[:, :70]):  # square and not
        out = augment(image, rng, AUGMENT_PRESETS[name])
        assert out.shape == image.shape and out.dtype == np.uint8


def test_overhead_turns_vehicles_every_way_and_light_barely() -> None:
    image = _vehicle()
    assert _left_minus_right(image) > 50

    def flipped_share(config: AugmentConfig) -> float:
        rng = np.random.default_rng(0)
        views = [augment(image, rng, replace(config, hflip=0.0)) for _ in range(60)]
        return float(np.mean([_left_minus_right(v) < 0 for v in views]))

    # with rotations of any angle the bright half ends on the right about half the time
    assert 0.25 < flipped_share(AUGMENT_PRESETS["overhead"]) < 0.75
    assert flipped_share(AUGMENT_PRESETS["light"]) == 0.0  # ±10° never turns it round


def test_blur_low_resolution_and_jpeg_degrade_the_image() -> None:
    checker = np.kron((np.indices((24, 24)).sum(axis=0) % 2) * 255, np.ones((4, 4)))
    image = np.repeat(checker[..., None], 3, axis=2).astype(np.uint8)
    for effect in ({"blur": 1.0}, {"downscale": 1.0}):
        out = augment(image, np.random.default_rng(0), replace(OFF, **effect))
        assert _sharpness(out) < 0.8 * _sharpness(image), effect
    # JPEG at quality 10-20: ringing around every edge
    out = augment(image, np.random.default_rng(0), replace(OFF, jpeg=1.0, jpeg_quality=(10, 20)))
    assert np.abs(out.astype(int) - image).mean() > 3


def test_grayscale_removes_colour() -> None:
    image = np.zeros((32, 32, 3), np.uint8)
    image[..., 2] = 200  # red
    out = augment(image, np.random.default_rng(0), replace(OFF, grayscale=1.0))
    assert np.abs(out[..., 0].astype(int) - out[..., 2]).max() <= 1


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(EdgeTLError, match="'strong' is unknown; choose from none, light"):
        augment_preset("strong")
    assert augment_preset("camera") is AUGMENT_PRESETS["camera"]
