"""Dataset checks that run before training: the problems that silently ruin models.

Unreadable or truncated files, unusual pixel formats (grey, alpha, CMYK, 16-bit: converted to
8-bit colour by the loader, reported here), tiny images, class imbalance, exact duplicates and
duplicates that straddle train/val. Decoding uses OpenCV, which the runtime also uses; Pillow,
when installed, adds the pixel mode and catches truncated JPEGs that OpenCV half-decodes.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edge_tl.data.folder import ImageFolder, Sample
from edge_tl.errors import DataError
from edge_tl.progress import track

__all__ = ["DataReport", "ImageIssue", "validate_folder", "MIN_SIDE", "IMBALANCE_RATIO"]

MIN_SIDE = 16  # pixels; smaller images carry almost nothing after upscaling
IMBALANCE_RATIO = 3.0  # largest / smallest class above this is worth a warning


@dataclass(frozen=True)
class ImageIssue:
    relpath: str
    problem: str


@dataclass
class DataReport:
    root: str
    classes: list[str]
    class_counts: dict[str, int]
    unreadable: list[ImageIssue] = field(default_factory=list)
    converted: list[ImageIssue] = field(default_factory=list)  # non-RGB8 modes, loaded as BGR8
    tiny: list[ImageIssue] = field(default_factory=list)
    duplicate_groups: list[list[str]] = field(default_factory=list)  # identical bytes
    near_duplicate_groups: list[list[str]] = field(default_factory=list)  # same 64-bit dHash
    content_hash: dict[str, str] = field(default_factory=dict)
    perceptual_hash: dict[str, str] = field(default_factory=dict)

    @property
    def imbalance(self) -> float:
        counts = [c for c in self.class_counts.values() if c]
        return max(counts) / min(counts) if counts else 1.0

    def warnings(self) -> list[str]:
        notes = []
        if self.unreadable:
            notes.append(
                f"{len(self.unreadable)} unreadable image(s), e.g. {self.unreadable[0].relpath}: "
                f"{self.unreadable[0].problem}"
            )
        if self.converted:
            notes.append(
                f"{len(self.converted)} image(s) not 8-bit RGB (converted), e.g. "
                f"{self.converted[0].relpath}: {self.converted[0].problem}"
            )
        if self.tiny:
            notes.append(
                f"{len(self.tiny)} image(s) smaller than {MIN_SIDE}px, e.g. {self.tiny[0].relpath}"
            )
        if self.imbalance > IMBALANCE_RATIO:
            notes.append(
                f"class imbalance {self.imbalance:.1f}:1 ({self.class_counts}); "
                "consider --balance (weighted loss)"
            )
        if self.duplicate_groups:
            extra = sum(len(g) - 1 for g in self.duplicate_groups)
            notes.append(
                f"{extra} exact duplicate image(s) in {len(self.duplicate_groups)} group(s), e.g. "
                f"{' = '.join(self.duplicate_groups[0][:3])}; the split keeps each group on one side"
            )
        near = [g for g in self.near_duplicate_groups if g not in self.duplicate_groups]
        if near:
            notes.append(
                f"{sum(len(g) for g in near)} near-duplicate image(s) in {len(near)} group(s) (same "
                f"perceptual hash, e.g. {' ~ '.join(near[0][:3])}); the split keeps each group on one side"
            )
        return notes

    def split_groups(self) -> dict[str, str]:
        """Group key per image for the split: near-duplicates (consecutive video frames of one
        vehicle, re-encoded copies) must not straddle train and val."""
        return self.perceptual_hash or self.content_hash

    def cross_split_duplicates(
        self, train: list[Sample], val: list[Sample]
    ) -> list[tuple[str, str]]:
        """(val image, identical train image) pairs: leakage that inflates validation accuracy."""
        train_by_hash = {
            self.content_hash[s.relpath]: s.relpath for s in train if s.relpath in self.content_hash
        }
        return [
            (s.relpath, train_by_hash[self.content_hash[s.relpath]])
            for s in val
            if self.content_hash.get(s.relpath) in train_by_hash
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "classes": self.classes,
            "class_counts": self.class_counts,
            "imbalance": round(self.imbalance, 2),
            "unreadable": [i.__dict__ for i in self.unreadable],
            "converted": [i.__dict__ for i in self.converted],
            "tiny": [i.__dict__ for i in self.tiny],
            "duplicate_groups": self.duplicate_groups,
            "near_duplicate_groups": self.near_duplicate_groups,
            "warnings": self.warnings(),
        }


def validate_folder(folder: ImageFolder, strict: bool = False) -> DataReport:
    """Decode every image once; with `strict`, the first unreadable image is fatal."""
    report = DataReport(
        root=str(folder.root), classes=folder.classes, class_counts=folder.class_counts()
    )
    by_hash: dict[str, list[str]] = defaultdict(list)
    by_look: dict[str, list[str]] = defaultdict(list)
    for sample in track(folder.samples, "checking images"):
        path = folder.path(sample)
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        report.content_hash[sample.relpath] = digest
        by_hash[digest].append(sample.relpath)
        image, problem, mode = _inspect(data)
        if problem:
            if strict:
                raise DataError(f"{path}: {problem} (--strict stops at the first unreadable image)")
            report.unreadable.append(ImageIssue(sample.relpath, problem))
            continue
        if mode:
            report.converted.append(ImageIssue(sample.relpath, mode))
        look = _dhash(image)
        report.perceptual_hash[sample.relpath] = look
        by_look[look].append(sample.relpath)
        if min(image.shape[:2]) < MIN_SIDE:
            report.tiny.append(ImageIssue(sample.relpath, f"{image.shape[1]}x{image.shape[0]}"))
    report.duplicate_groups = sorted(sorted(g) for g in by_hash.values() if len(g) > 1)
    report.near_duplicate_groups = sorted(sorted(g) for g in by_look.values() if len(g) > 1)
    return report


def _dhash(image: np.ndarray) -> str:
    """64-bit difference hash: robust to re-encoding and small brightness changes."""
    grey = image
    if image.ndim == 3 and image.shape[2] > 1:
        grey = cv2.cvtColor(
            image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        )
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return np.packbits(bits).tobytes().hex()


def _inspect(data: bytes) -> tuple[np.ndarray | None, str | None, str | None]:
    """(decoded image as stored, problem that makes the file unusable, unusual pixel format);
    the one decode of the file that every check uses."""
    if not data:
        return None, "empty file", None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None, "not an image OpenCV can decode", None
    mode = None
    if image.dtype != np.uint8:
        mode = f"{image.dtype.itemsize * 8}-bit"
    elif image.ndim == 2 or image.shape[2] == 1:
        mode = "greyscale"
    elif image.shape[2] == 4:
        mode = "with alpha"
    try:
        from PIL import Image
    except ImportError:
        return image, None, mode
    import io

    try:
        with Image.open(io.BytesIO(data)) as pil:
            pil_mode = pil.mode
            pil.load()  # raises on truncated data (LOAD_TRUNCATED_IMAGES is off)
    except (OSError, SyntaxError, ValueError) as exc:
        return None, f"truncated or corrupt ({exc})", None
    if pil_mode == "CMYK":
        mode = "CMYK"
    elif pil_mode in ("I;16", "I;16B", "I") and mode is None:
        mode = "16-bit"
    return image, None, mode
