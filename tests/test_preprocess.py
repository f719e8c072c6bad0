from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_tl.bundle import ColorOrder, InputSpec, ResizePolicy
from edge_tl.errors import DataError
from edge_tl.images import load_image
from edge_tl.preprocess import preprocess, resize_to_input


def _spec(**kw: object) -> InputSpec:
    base = dict(height=32, width=32, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    return InputSpec(**(base | kw))


def test_normalization_and_channel_order() -> None:
    bgr = np.zeros((10, 10, 3), np.uint8)
    bgr[..., 0] = 255  # blue
    out = preprocess([bgr], _spec(resize=ResizePolicy.SQUASH))
    assert out.shape == (1, 3, 32, 32) and out.dtype == np.float32
    # RGB order: R=0 → (0-0.5)/0.5 = -1; G=0 → (0-0.25)/0.25 = -1; B=1 → (1-0)/1 = 1
    np.testing.assert_allclose(out[0, :, 5, 5], [-1.0, -1.0, 1.0], atol=1e-6)
    same = preprocess([bgr[..., ::-1].copy()], _spec(resize=ResizePolicy.SQUASH), ColorOrder.RGB)
    np.testing.assert_array_equal(out, same)


def test_center_crop_keeps_the_middle() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 90:110] = 255  # a vertical bar in the middle; the sides get cropped away
    spec = _spec(height=50, width=50, crop_pct=0.5, resize=ResizePolicy.CENTER_CROP)
    out = resize_to_input(image, spec)
    assert out.shape == (50, 50, 3)
    # shorter side 100 → 100 (50 / 0.5), width 200; central 50x50 holds the bar in its middle
    assert out[:, 25].min() == 255 and out[:, 0].max() == 0


def test_load_image_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="broken.jpg: not an image"):
        load_image(bad)
    with pytest.raises(DataError, match="missing.jpg: cannot read"):
        load_image(tmp_path / "missing.jpg")
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((4, 4), 7, np.uint8))
    assert load_image(grey).shape == (4, 4, 3)
