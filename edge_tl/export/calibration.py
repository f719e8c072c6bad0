"""INT8 calibration input: real images from the bundle's training split (never validation),
drawn stratified and seeded, preprocessed exactly as the runtime does.

Yields the protocol ONNX Runtime's calibrators consume: `{input_name: NCHW float32 batch}`.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from edge_tl.bundle import Bundle
from edge_tl.data.folder import Sample, scan_dataset
from edge_tl.errors import ExportError
from edge_tl.images import load_image
from edge_tl.preprocess import prepare_batch

__all__ = ["MIN_CALIBRATION_IMAGES", "training_images", "calibration_feeds"]

log = logging.getLogger(__name__)

MIN_CALIBRATION_IMAGES = 16
RECOMMENDED_CALIBRATION_IMAGES = 256  # the export default; fewer still works, with a warning


def training_images(bundle: Bundle, root: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` training-split images of the dataset at `root`, round-robin over classes so
    every class is represented."""
    if count < MIN_CALIBRATION_IMAGES:
        raise ExportError(
            f"--calib-images {count}: too few to calibrate INT8 ranges; use at least "
            f"{MIN_CALIBRATION_IMAGES} (256 or more is better)"
        )
    dataset = bundle.manifest.provenance.dataset
    folder = scan_dataset(root).folder  # test/ is never drawn from
    val = set(dataset.split.val_files) if dataset and dataset.split else set()
    by_class: dict[int, list[Sample]] = {}
    for sample in folder.samples:
        if sample.relpath not in val:
            by_class.setdefault(sample.label, []).append(sample)
    available = sum(len(v) for v in by_class.values())
    if available < MIN_CALIBRATION_IMAGES:
        raise ExportError(
            f"{folder.root}: only {available} training images; INT8 calibration needs at least "
            f"{MIN_CALIBRATION_IMAGES} (export --precision fp32,fp16 needs none)"
        )
    if available < count:
        log.warning(
            "INT8 calibration on all %d training images (asked for %d; below %d the ranges are "
            "rougher: compare int8's accuracy with fp32's in the export table)",
            available, count, RECOMMENDED_CALIBRATION_IMAGES,
        )  # fmt: skip
        count = available
    rng = random.Random(seed)
    for samples in by_class.values():
        rng.shuffle(samples)
    chosen: list[Sample] = []
    round_index = 0
    while len(chosen) < count:
        for label in sorted(by_class):
            if round_index < len(by_class[label]) and len(chosen) < count:
                chosen.append(by_class[label][round_index])
        round_index += 1
    return [folder.path(s) for s in chosen]


def calibration_feeds(
    bundle: Bundle, paths: list[Path], input_name: str, batch_size: int = 16
) -> list[dict[str, object]]:
    """Preprocessed batches of equal size (ORT's histogram calibrators stack them, so a short
    last batch would fail), decoded once and reused by the range check and the quantizer."""
    spec, raw = bundle.input_spec, bundle.manifest.raw_input
    batch_size = min(batch_size, len(paths))
    # the largest batch up to `batch_size` that divides the images evenly uses all of them
    # (27 → 3 x 9); a prime count would mean batches of 1, so then the rest is dropped
    divisor = next(b for b in range(batch_size, 0, -1) if len(paths) % b == 0)
    batch_size = divisor if divisor >= 4 else batch_size
    usable = len(paths) - len(paths) % batch_size
    return [
        {input_name: prepare_batch([load_image(p) for p in paths[i : i + batch_size]], spec, raw)}
        for i in range(0, usable, batch_size)
    ]
