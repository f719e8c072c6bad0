"""Training augmentation on decoded BGR images (OpenCV/numpy), applied before the bundle's own
preprocessing, so augmented and served images go through the same resize and normalization.

It imitates what cameras do to a vehicle crop: another framing (scale, shift, aspect), a
rotated or tilted camera (rotation, perspective), motion or focus blur, low resolution, JPEG
compression, and other light (brightness, contrast, colour). The geometric part is one
perspective warp, so a crop, a rotation and a tilt cost one resampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

__all__ = ["AugmentConfig", "augment", "augment_preset", "AUGMENT_PRESETS"]


@dataclass(frozen=True)
class AugmentConfig:
    scale: tuple[float, float] = (0.6, 1.0)  # random resized crop: share of the area kept
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    rotate_degrees: float = 10.0  # uniform in ±this
    perspective: float = 0.0  # corner jitter, a share of the crop's side
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25
    grayscale: float = 0.0  # probability of a colourless image (night / IR / washed out)
    blur: float = 0.0  # probability of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    downscale: float = 0.0  # probability of a low-resolution round trip
    downscale_range: tuple[float, float] = (0.4, 0.9)
    jpeg: float = 0.0  # probability of a JPEG round trip
    jpeg_quality: tuple[int, int] = (30, 90)


def augment(
    image: np.ndarray, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()
) -> np.ndarray:
    """One random view of an HxWx3 uint8 BGR image, same size as the input."""
    image = _warp(np.ascontiguousarray(image), rng, config)
    image = _light(image, rng, config)
    if config.blur and rng.random() < config.blur:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(*config.blur_sigma))
    if config.downscale and rng.random() < config.downscale:
        height, width = image.shape[:2]
        factor = rng.uniform(*config.downscale_range)
        small = cv2.resize(
            image,
            (max(1, round(width * factor)), max(1, round(height * factor))),
            interpolation=cv2.INTER_AREA,
        )
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    if config.jpeg and rng.random() < config.jpeg:
        quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return image


def augment_preset(name: str) -> AugmentConfig:
    """The named strength from AUGMENT_PRESETS; an unknown name fails listing the known ones."""
    try:
        return AUGMENT_PRESETS[name]
    except KeyError:
        from edge_tl.errors import EdgeTLError

        raise EdgeTLError(
            f"augmentation '{name}' is unknown; choose from {', '.join(AUGMENT_PRESETS)}"
        ) from None


def _warp(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Random resized crop (torchvision's sampling) + flip + rotation + perspective, one warp."""
    height, width = image.shape[:2]
    crop_w, crop_h, left, top = float(width), float(height), 0.0, 0.0
    for _ in range(10):
        area = height * width * rng.uniform(*config.scale)
        aspect = math.exp(rng.uniform(math.log(config.ratio[0]), math.log(config.ratio[1])))
        w, h = math.sqrt(area * aspect), math.sqrt(area / aspect)
        if 0 < w <= width and 0 < h <= height:
            crop_w, crop_h = w, h
            left, top = rng.uniform(0, width - w), rng.uniform(0, height - h)
            break
    # the crop's corners in the source, clockwise from top-left
    corners = np.array(
        [[left, top], [left + crop_w, top], [left + crop_w, top + crop_h], [left, top + crop_h]],
        dtype=np.float64,
    )
    if config.hflip and rng.random() < config.hflip:
        corners = corners[[1, 0, 3, 2]]
    if config.rotate_degrees:
        angle = math.radians(rng.uniform(-config.rotate_degrees, config.rotate_degrees))
        centre = corners.mean(axis=0)
        rotation = np.array(
            [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
        )
        corners = (corners - centre) @ rotation.T + centre
    if config.perspective:
        jitter = config.perspective * np.array([crop_w, crop_h])
        corners = corners + rng.uniform(-1, 1, size=(4, 2)) * jitter
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64).astype(
        np.float32
    )
    matrix = cv2.getPerspectiveTransform(corners.astype(np.float32), target)
    return cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )


def _light(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    pixels = image.astype(np.float32)
    pixels *= 1 + rng.uniform(-config.brightness, config.brightness)
    mean = pixels.mean()
    pixels = (pixels - mean) * (1 + rng.uniform(-config.contrast, config.contrast)) + mean
    grey = pixels.mean(axis=2, keepdims=True)
    if config.grayscale and rng.random() < config.grayscale:
        pixels = np.repeat(grey, 3, axis=2)
    else:
        pixels = (pixels - grey) * (1 + rng.uniform(-config.saturation, config.saturation)) + grey
    return np.rint(np.clip(pixels, 0, 255)).astype(np.uint8)


# Named strengths, chosen by the experiments in benchmarks/results/training-generalization.md.
_CAMERA = AugmentConfig(
    scale=(0.5, 1.0),
    rotate_degrees=30.0,
    perspective=0.1,
    brightness=0.3,
    contrast=0.3,
    saturation=0.4,
    grayscale=0.05,
    blur=0.3,
    downscale=0.3,
    jpeg=0.5,
)
AUGMENT_PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(
        scale=(1.0, 1.0),
        ratio=(1.0, 1.0),
        hflip=0.0,
        rotate_degrees=0.0,
        brightness=0.0,
        contrast=0.0,
        saturation=0.0,
    ),
    "light": AugmentConfig(),
    # what a fixed camera does to a crop: framing, tilt, blur, resolution, compression, light
    "camera": _CAMERA,
    # seen from above, a vehicle can head any way: rotations of any angle, camera effects as above
    "overhead": replace(_CAMERA, rotate_degrees=180.0),
}
