"""ImageFolder layout (root/<class>/<image>) discovery, stratified splits and fingerprints.

No image decoding here: this module only lists files. Must not import torch.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

from edge_tl.errors import DataError
from edge_tl.images import find_images

__all__ = [
    "Sample",
    "ImageFolder",
    "scan_image_folder",
    "scan_dataset",
    "Dataset",
    "stratified_split",
]


@dataclass(frozen=True)
class Sample:
    relpath: str  # relative to the dataset root, '/'-separated
    label: int


@dataclass(frozen=True)
class ImageFolder:
    root: Path
    classes: list[str]
    samples: list[Sample]

    def path(self, sample: Sample) -> Path:
        return self.root / sample.relpath

    def class_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.classes, 0)
        for sample in self.samples:
            counts[self.classes[sample.label]] += 1
        return counts

    def fingerprint(self, content_hash: dict[str, str] | None = None) -> str:
        """sha256 over every (relative path, content hash): changes when any image changes.
        Pass the hashes the validator already computed to avoid reading every file again."""
        digest = hashlib.sha256()
        for sample in self.samples:
            content = (content_hash or {}).get(sample.relpath) or hashlib.sha256(
                self.path(sample).read_bytes()
            ).hexdigest()
            digest.update(f"{sample.relpath}\0{content}\n".encode())
        return digest.hexdigest()

    def subset(self, relpaths: list[str]) -> list[Sample]:
        by_path = {s.relpath: s for s in self.samples}
        missing = [p for p in relpaths if p not in by_path]
        if missing:
            raise DataError(
                f"{self.root}: {len(missing)} image(s) recorded in the bundle's split are gone, "
                f"e.g. '{missing[0]}'; the dataset changed since training"
            )
        return [by_path[p] for p in relpaths]


def scan_image_folder(root: str | os.PathLike[str], min_classes: int = 2) -> ImageFolder:
    """List root/<class>/<image> files; classes sorted by name, images sorted by path."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: expected a folder of class folders, got a file")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes, samples, empty = [], [], []
    for class_dir in class_dirs:
        try:
            files = find_images([class_dir])
        except DataError:
            files = []
        if not files:
            empty.append(class_dir.name)
            continue
        label = len(classes)
        classes.append(class_dir.name)
        samples.extend(Sample(p.relative_to(root).as_posix(), label) for p in files)
    if len(classes) < min_classes:
        found = f"found {len(classes)} ({', '.join(classes) or 'none'})"
        hint = f"; empty: {', '.join(empty)}" if empty else ""
        raise DataError(
            f"{root}: need at least {min_classes} class folders with images "
            f"(root/<class>/<image>), {found}{hint}"
        )
    return ImageFolder(root=root, classes=classes, samples=samples)


def stratified_split(
    samples: list[Sample], val_fraction: float, seed: int, group_of: dict[str, str] | None = None
) -> tuple[list[Sample], list[Sample]]:
    """Seeded per-class split; every class keeps ≥ 1 training image and, if asked, ≥ 1 val image.

    Samples with the same `group_of[relpath]` (e.g. identical content) land on the same side,
    so an exact duplicate can never be in train and val at once.
    """
    if not 0 <= val_fraction < 1:
        raise DataError(f"val fraction must be in [0, 1), got {val_fraction}")
    groups: dict[tuple[int, str], list[Sample]] = {}
    for sample in sorted(samples, key=lambda s: s.relpath):
        key = (group_of or {}).get(sample.relpath, sample.relpath)
        groups.setdefault((sample.label, key), []).append(sample)
    by_label: dict[int, list[list[Sample]]] = {}
    for (label, _), members in groups.items():
        by_label.setdefault(label, []).append(members)
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(by_label):
        label_groups = by_label[label]
        rng.shuffle(label_groups)
        total = sum(len(g) for g in label_groups)
        n_val = round(total * val_fraction)
        if val_fraction > 0 and len(label_groups) >= 2:
            n_val = min(max(n_val, 1), total - 1)
        else:
            n_val = 0
        taken = 0
        for members in label_groups:
            if taken + len(members) <= n_val:
                val.extend(members)
                taken += len(members)
            else:
                train.extend(members)
    return train, val


@dataclass(frozen=True)
class Dataset:
    """A training dataset as every command reads it (train, export, eval, data-check)."""

    folder: ImageFolder  # train and val images; relpaths keep the split prefix (train/car/1.jpg)
    val_relpaths: list[str] | None  # a predefined validation split, or None: ours to make
    test_dir: Path | None = None  # DATA/test: scored as a test set, never trained on


def scan_dataset(root: str | os.PathLike[str]) -> Dataset:
    """An ImageFolder (root/<class>/<image>), or a folder with train/ and val/ (and optional
    test/) splits inside, as Ultralytics' classification datasets are laid out."""
    root = Path(root)
    test_dir = root / "test" if (root / "test").is_dir() else None
    if (root / "train").is_dir() and (root / "val").is_dir():
        train = scan_image_folder(root / "train")
        val = scan_image_folder(root / "val")
        if val.classes != train.classes:
            raise DataError(
                f"{root}: val/ classes ({', '.join(val.classes)}) differ from train/ classes "
                f"({', '.join(train.classes)})"
            )
        samples = [Sample(f"train/{s.relpath}", s.label) for s in train.samples]
        val_samples = [Sample(f"val/{s.relpath}", s.label) for s in val.samples]
        folder = ImageFolder(root=root, classes=train.classes, samples=samples + val_samples)
        return Dataset(folder, [s.relpath for s in val_samples], test_dir)
    if (root / "train").is_dir():
        train = scan_image_folder(root / "train")
        samples = [Sample(f"train/{s.relpath}", s.label) for s in train.samples]
        return Dataset(
            ImageFolder(root=root, classes=train.classes, samples=samples), None, test_dir
        )
    return Dataset(scan_image_folder(root), None)
