"""`edge-tl train`: ImageFolder → pretrained backbone (frozen) → new head → bundle with model.pt.

Phase one of transfer learning: backbone features are computed once, the linear head trains on
them in seconds, and the best validation epoch is installed as the model's classifier.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_tl._deps import require
from edge_tl._malloc import tune_malloc
from edge_tl.bundle import (
    SCHEMA_VERSION,
    ArtifactKind,
    Bundle,
    DatasetInfo,
    Manifest,
    ModelInfo,
    Precision,
    ResizePolicy,
    SplitInfo,
    new_provenance,
    stage_bundle,
)
from edge_tl.data.folder import ImageFolder, Sample, scan_image_folder, stratified_split
from edge_tl.models.checkpoint import save_model
from edge_tl.models.registry import create_backbone, get_spec
from edge_tl.train.features import extract_features
from edge_tl.train.head import HeadConfig, accuracy, fit_linear_head

__all__ = ["TrainConfig", "train_bundle", "MODEL_FILE", "TRAIN_REPORT_FILE"]

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
TRAIN_REPORT_FILE = "train_report.json"


@dataclass(frozen=True)
class TrainConfig:
    data_dir: Path
    output: Path
    backbone: str = "efficientnet_lite0"
    input_size: int | None = None  # None: the weights' own size
    resize: ResizePolicy = ResizePolicy.CENTER_CROP
    val_fraction: float = 0.2
    seed: int = 0
    batch_size: int = 32
    threads: int | None = None
    head: HeadConfig = field(default_factory=HeadConfig)
    overwrite: bool = False


def train_bundle(config: TrainConfig) -> Bundle:
    """Train and write a bundle at `config.output`; returns it loaded and verified."""
    tune_malloc()
    torch = require("torch", "train")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    started = time.perf_counter()

    folder = scan_image_folder(config.data_dir)
    train, val = stratified_split(folder.samples, config.val_fraction, config.seed)
    spec = get_spec(config.backbone)
    input_spec = spec.input_spec(config.input_size, config.resize)
    log.info(
        "%s: %d classes, %d train / %d val images, %s at %dpx",
        folder.root,
        len(folder.classes),
        len(train),
        len(val),
        config.backbone,
        input_spec.height,
    )

    model = create_backbone(config.backbone, len(folder.classes), pretrained=True)
    t0 = time.perf_counter()
    train_x = extract_features(
        model, _paths(folder, train), input_spec, config.batch_size, "features (train)"
    )
    val_x = extract_features(
        model, _paths(folder, val), input_spec, config.batch_size, "features (val)"
    )
    feature_seconds = time.perf_counter() - t0
    train_y, val_y = _labels(train), _labels(val)

    t0 = time.perf_counter()
    result = fit_linear_head(train_x, train_y, val_x, val_y, len(folder.classes), config.head)
    head_seconds = time.perf_counter() - t0
    classifier = getattr(model, spec.classifier)
    with torch.no_grad():
        classifier.weight.copy_(torch.from_numpy(result.weight))
        classifier.bias.copy_(torch.from_numpy(result.bias))
    val_top1 = accuracy(val_x @ result.weight.T + result.bias, val_y) if len(val) else None

    dataset = DatasetInfo(
        root=str(folder.root.resolve()),
        fingerprint=folder.fingerprint(),
        num_images=len(folder.samples),
        class_counts=folder.class_counts(),
        split=SplitInfo(
            seed=config.seed,
            val_fraction=config.val_fraction,
            val_files=[s.relpath for s in val],
        ),
    )
    manifest = Manifest(
        schema_version=SCHEMA_VERSION,
        name=config.output.name,
        labels=folder.classes,
        input=input_spec,
        model=ModelInfo(
            backbone=config.backbone,
            architecture=spec.architecture,
            num_classes=len(folder.classes),
            weights=spec.weights,
            feature_dim=int(train_x.shape[1]),
        ),
        provenance=new_provenance(dataset),
    )
    total_seconds = time.perf_counter() - started
    manifest.metrics["torch"] = {
        "precision": Precision.FP32.value,
        "split": "val",
        "num_images": len(val),
        "top1": val_top1,
        "path": "torch eager cpu (features + head)",
    }
    report = {
        "config": _jsonable(asdict(config)),
        "phase": "frozen backbone, linear head on cached features",
        "best_epoch": result.best_epoch,
        "val_top1": val_top1,
        "train_images": len(train),
        "val_images": len(val),
        "seconds": {"features": feature_seconds, "head": head_seconds, "total": total_seconds},
        "history": result.history,
    }
    with stage_bundle(config.output, overwrite=config.overwrite) as stage:
        stage.manifest = manifest
        save_model(model, stage.new_file(MODEL_FILE), config.backbone, len(folder.classes))
        stage.add_artifact(MODEL_FILE, ArtifactKind.TORCH, Precision.FP32)
        stage.new_file(TRAIN_REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    log.info("wrote %s (val top-1 %s) in %.1f s", config.output, val_top1, total_seconds)
    return Bundle.load(config.output)


def _paths(folder: ImageFolder, samples: list[Sample]) -> list[Path]:
    return [folder.path(s) for s in samples]


def _labels(samples: list[Sample]) -> np.ndarray:
    return np.asarray([s.label for s in samples], dtype=np.int64)


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value.value if hasattr(value, "value") else value)
