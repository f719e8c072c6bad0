"""Run one or more backends over labelled images and score them. torch-free.

Images are decoded and preprocessed once per batch and fed to every backend, so backends are
compared on identical inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_tl.bundle import Bundle
from edge_tl.data.folder import ImageFolder, Sample, scan_dataset
from edge_tl.errors import DataError
from edge_tl.images import load_image
from edge_tl.metrics import log_softmax
from edge_tl.preprocess import prepare_batch
from edge_tl.progress import track
from edge_tl.runtime.backends.base import Backend
from edge_tl.timing import p50_ms

__all__ = [
    "TTA_VIEWS",
    "tta_views",
    "LabelledImages",
    "collect_logits",
    "logits_on_images",
    "validation_images",
    "labelled_subset",
    "tta_latency",
]


@dataclass(frozen=True)
class LabelledImages:
    paths: list[Path]
    labels: np.ndarray  # indices into the bundle's labels


View = Callable[[np.ndarray], np.ndarray]


def _identity(image: np.ndarray) -> np.ndarray:
    return image


def _hflip(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1])


def _rot180(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[::-1, ::-1])


# test-time augmentation: the views each image is scored in (log-probabilities averaged)
TTA_VIEWS: dict[str, tuple[View, ...]] = {
    "none": (_identity,),
    "hflip": (_identity, _hflip),
    "hflip-rot180": (_identity, _hflip, _rot180, lambda image: _hflip(_rot180(image))),
}


def tta_views(name: str) -> tuple[View, ...]:
    try:
        return TTA_VIEWS[name]
    except KeyError:
        raise DataError(
            f"unknown test-time augmentation '{name}'; choose from {', '.join(TTA_VIEWS)}"
        ) from None


def collect_logits(
    backends: Sequence[Backend],
    paths: Sequence[Path],
    batch_size: int = 32,
    description: str = "evaluate",
    views: Sequence[View] = (_identity,),
) -> list[np.ndarray]:
    """Logits (N, C) of each backend on the same images, decoded once per batch and prepared
    once per input format (fused-preprocessing graphs take raw pixels, model.pt does not).

    With several `views` (test-time augmentation), each image is scored in every view and the
    result is the mean log-probability over views (argmax = the product of probabilities).
    """
    if not backends:
        raise ValueError("collect_logits needs at least one backend")
    outputs: list[list[np.ndarray]] = [[] for _ in backends]
    batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    for batch_paths in track(batches, description):
        images = [load_image(p) for p in batch_paths]
        if len(views) == 1:
            per_backend = logits_on_images(backends, [views[0](i) for i in images])
        else:
            scored = [logits_on_images(backends, [v(i) for i in images]) for v in views]
            per_backend = [
                np.mean([log_softmax(s[b]) for s in scored], axis=0) for b in range(len(backends))
            ]
        for out, logits in zip(outputs, per_backend, strict=True):
            out.append(logits)
    return [np.concatenate(out) if out else np.zeros((0, 0), np.float32) for out in outputs]


def logits_on_images(backends: Sequence[Backend], images: list[np.ndarray]) -> list[np.ndarray]:
    """One batch of BGR images through every backend, prepared once per input format."""
    spec = backends[0].input_spec
    prepared: dict[object, np.ndarray] = {}
    results = []
    for backend in backends:
        key = backend.raw_input
        if key not in prepared:
            prepared[key] = prepare_batch(images, spec, key)
        results.append(backend.infer(prepared[key]))
    return results


def dataset_root(bundle: Bundle, data_dir: Path | None = None) -> Path | None:
    """Where the bundle's training dataset is: `data_dir` (the same dataset moved or copied;
    checked against the recorded validation files), else where training saw it; None when it
    is not there."""
    dataset = bundle.manifest.provenance.dataset
    if data_dir is None:
        return Path(dataset.root) if dataset and Path(dataset.root).is_dir() else None
    if not data_dir.is_dir():
        raise DataError(f"--data {data_dir}: not a folder")
    recorded = dataset.split.val_files if dataset and dataset.split else []
    if recorded and not any((data_dir / relpath).is_file() for relpath in recorded[:50]):
        raise DataError(
            f"--data {data_dir}: none of the bundle's validation images is there (e.g. "
            f"{recorded[0]}); it is not the dataset the bundle was trained on"
        )
    return data_dir


def validation_images(
    bundle: Bundle, limit: int | None = None, data_dir: Path | None = None
) -> LabelledImages | None:
    """The bundle's recorded validation split, if its dataset is still where training saw it
    (or at `data_dir`)."""
    dataset = bundle.manifest.provenance.dataset
    if dataset is None or dataset.split is None or not dataset.split.val_files:
        return None
    root = dataset_root(bundle, data_dir)
    if root is None:
        return None
    folder = scan_dataset(root).folder
    return labelled_subset(bundle.labels, folder, folder.subset(dataset.split.val_files[:limit]))


def dataset_test_dir(bundle: Bundle) -> Path | None:
    """DATA/test of the dataset the bundle was trained on, when it is still there."""
    dataset = bundle.manifest.provenance.dataset
    return scan_dataset(dataset.root).test_dir if dataset and Path(dataset.root).is_dir() else None


def labelled_subset(
    labels: Sequence[str], folder: ImageFolder, samples: list[Sample]
) -> LabelledImages:
    """Map a folder's class indices onto a model's label order (its classes must be labels)."""
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted(set(folder.classes) - set(index))
    if unknown:
        raise DataError(
            f"{folder.root}: class folder(s) {', '.join(unknown)} are not labels of the model "
            f"({', '.join(labels)})"
        )
    labels = np.asarray([index[folder.classes[s.label]] for s in samples], dtype=np.int64)
    return LabelledImages(paths=[folder.path(s) for s in samples], labels=labels)


def tta_latency(backend: Backend, image_path: Path, passes: int) -> dict[str, float]:
    """Batch-1 p50 of one image vs the same image in `passes` views (what TTA costs to serve)."""
    image = load_image(image_path)

    def p50(batch_of: int) -> float:
        batch = prepare_batch([image] * batch_of, backend.input_spec, backend.raw_input)
        return p50_ms(backend.infer, batch)

    return {"p50_ms_plain": p50(1), "p50_ms_tta": p50(passes), "passes": passes}
