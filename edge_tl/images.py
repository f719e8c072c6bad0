"""Image files: which suffixes count as images, finding them under paths, decoding them.

The one place that lists image files, for datasets, `predict` and image-folder sources alike.
OpenCV + numpy only; must not import torch or anything above the foundation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from edge_tl.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "is_image_file", "find_images", "load_image"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# images this OpenCV build cannot decode: skipped, but said so
UNREADABLE_SUFFIXES = frozenset({".gif", ".heic", ".heif", ".avif", ".svg", ".jxl"})

log = logging.getLogger(__name__)


def is_image_file(path: Path) -> bool:
    """An image by its suffix; hidden files (editor and OS droppings) are not."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def find_images(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Image files at `paths`: a file as given, a folder searched recursively (sorted).

    A path that does not exist is a DataError naming it; so is finding no image at all.
    """
    paths = [Path(p) for p in paths]
    files: list[Path] = []
    skipped: list[Path] = []
    for item in paths:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file())
            files += [p for p in found if is_image_file(p)]
            skipped += [p for p in found if p.suffix.lower() in UNREADABLE_SUFFIXES]
        elif item.exists():
            files.append(item)
        else:
            raise DataError(f"{item}: no such file or folder")
    if skipped:
        kinds = ", ".join(sorted({p.suffix.lower() for p in skipped}))
        log.warning(
            "skipped %d file(s) OpenCV cannot decode (%s), e.g. %s; convert them to JPEG or PNG",
            len(skipped), kinds, skipped[0],
        )  # fmt: skip
    if not files:
        raise DataError(
            f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {', '.join(map(str, paths))}"
        )
    return files


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as HxWx3 uint8 BGR (grey, alpha and 16-bit are converted)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DataError(
            f"{path}: not an image OpenCV can decode (empty, truncated or other format)"
        )
    return image
