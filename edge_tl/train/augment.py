"""Training augmentation on decoded BGR images (OpenCV/numpy), applied before the bundle's own
preprocessing, so augmented and served images go through the same resize and normalization."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["AugmentConfig", "augment"]


@dataclass(frozen=True)
class AugmentConfig:
    scale: tuple[float, float] = (0.6, 1.0)  # random resized crop: share of the area kept
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    rotate_degrees: float = 10.0
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25


def augment(
    image: np.ndarray, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()
) -> np.ndarray:
    height, width = image.shape[:2]
    for _ in range(10):  # random resized crop, torchvision's sampling
        area = height * width * rng.uniform(*config.scale)
        aspect = math.exp(rng.uniform(math.log(config.ratio[0]), math.log(config.ratio[1])))
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
            image = image[top : top + h, left : left + w]
            break
    if rng.random() < config.hflip:
        image = image[:, ::-1]
    if config.rotate_degrees:
        angle = rng.uniform(-config.rotate_degrees, config.rotate_degrees)
        h, w = image.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        image = cv2.warpAffine(
            np.ascontiguousarray(image), matrix, (w, h), borderMode=cv2.BORDER_REFLECT
        )
    pixels = image.astype(np.float32)
    pixels *= 1 + rng.uniform(-config.brightness, config.brightness)
    mean = pixels.mean()
    pixels = (pixels - mean) * (1 + rng.uniform(-config.contrast, config.contrast)) + mean
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = (pixels - grey) * (1 + rng.uniform(-config.saturation, config.saturation)) + grey
    return np.clip(pixels, 0, 255).astype(np.uint8)
