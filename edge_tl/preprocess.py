"""Image preprocessing derived only from a bundle's InputSpec.

Training (feature extraction) and serving call the same functions, so a model is never served
with other preprocessing than it was trained with. OpenCV + numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge_tl.bundle import ColorOrder, InputSpec, Interpolation, RawInput, ResizePolicy

__all__ = [
    "resize_to_input",
    "preprocess",
    "prepare_batch",
    "raw_pixels",
    "normalization_constants",
]

_CV2_INTERPOLATION = {
    Interpolation.NEAREST: cv2.INTER_NEAREST,
    Interpolation.BILINEAR: cv2.INTER_LINEAR,
    Interpolation.BICUBIC: cv2.INTER_CUBIC,
    Interpolation.AREA: cv2.INTER_AREA,
}


def resize_to_input(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Resize (and crop) one HxWx3 image to spec.height x spec.width per the spec's policy."""
    interpolation = _CV2_INTERPOLATION[spec.interpolation]
    height, width = image.shape[:2]
    if spec.resize == ResizePolicy.SQUASH:
        return cv2.resize(image, (spec.width, spec.height), interpolation=interpolation)
    # centre crop: scale so that the crop keeps crop_pct of the shorter side
    scale = max(
        round(spec.height / spec.crop_pct) / height, round(spec.width / spec.crop_pct) / width
    )
    new_w, new_h = max(spec.width, round(width * scale)), max(spec.height, round(height * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - spec.height) // 2, (new_w - spec.width) // 2
    return resized[top : top + spec.height, left : left + spec.width]


def normalization_constants(spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """(gain, offset) per channel such that x_norm = x_uint8 * gain + offset."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    gain = np.float32(spec.pixel_scale) / std
    return gain, -mean / std


def raw_pixels(
    images: Sequence[np.ndarray],
    spec: InputSpec,
    order: ColorOrder,
    source_order: ColorOrder = ColorOrder.BGR,
) -> np.ndarray:
    """Resized uint8 NHWC batch in `order`: all the host does for fused-preprocessing graphs."""
    if not images:
        raise ValueError("preprocess needs at least one image")
    batch = np.empty((len(images), spec.height, spec.width, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image {i} has shape {image.shape}; expected HxWx3")
        batch[i] = resize_to_input(image, spec)
    return np.ascontiguousarray(batch[..., ::-1]) if source_order != order else batch


def prepare_batch(
    images: Sequence[np.ndarray],
    spec: InputSpec,
    raw_input: RawInput | None,
    source_order: ColorOrder = ColorOrder.BGR,
) -> np.ndarray:
    """What a backend's graph takes: raw pixels when preprocessing is fused, else `preprocess`."""
    if raw_input is not None:
        return raw_pixels(images, spec, raw_input.color_order, source_order)
    return preprocess(images, spec, source_order)


def preprocess(
    images: Sequence[np.ndarray], spec: InputSpec, source_order: ColorOrder = ColorOrder.BGR
) -> np.ndarray:
    """Turn HxWx3 uint8 images (OpenCV's BGR by default) into the network's NCHW float32 batch."""
    batch = raw_pixels(images, spec, spec.color_order, source_order)
    gain, offset = normalization_constants(spec)
    normalized = batch.astype(np.float32) * gain + offset
    return np.ascontiguousarray(normalized.transpose(0, 3, 1, 2))
