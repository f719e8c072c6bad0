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
from typing import Any

import numpy as np

from edge_tl._deps import is_available, require
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
from edge_tl.data.folder import ImageFolder, Sample, scan_dataset, stratified_split
from edge_tl.data.validate import validate_folder
from edge_tl.metrics import classification_report
from edge_tl.models.checkpoint import save_model
from edge_tl.models.registry import create_backbone, get_spec
from edge_tl.runtime.classify import softmax
from edge_tl.runtime.preprocess import load_image
from edge_tl.scorecard import VAL_SET, load_test_sets, recall_gaps, scorecard_markdown, summarize
from edge_tl.train.augment import augment, augment_preset
from edge_tl.train.features import extract_features
from edge_tl.train.finetune import FinetuneConfig, finetune, model_logits
from edge_tl.train.head import HeadConfig, accuracy, fit_linear_head

__all__ = ["TrainConfig", "train_bundle", "MODEL_FILE", "TRAIN_REPORT_FILE"]

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
TRAIN_REPORT_FILE = "train_report.json"
REPORTS_DIR = "reports"
SCORECARD_FILE = "scorecard.md"


@dataclass(frozen=True)
class TrainConfig:
    data_dir: Path
    output: Path
    backbone: str = "efficientnet_lite0"
    weights: Path | None = None  # a local checkpoint instead of the backbone's own weights
    input_size: int | None = None  # None: the weights' own size
    resize: ResizePolicy = ResizePolicy.CENTER_CROP
    val_fraction: float = 0.2
    seed: int = 0
    batch_size: int = 32
    threads: int | None = None
    head: HeadConfig = field(default_factory=HeadConfig)
    finetune: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(epochs=0))
    balance: bool = False  # inverse-frequency class weights in the loss
    strict: bool = False  # an unreadable image is fatal instead of skipped
    resume: bool = False  # continue fine-tuning from the checkpoint beside the output
    overwrite: bool = False
    # scored after training, never used to choose anything (epochs, checkpoints, stopping)
    test_dirs: tuple[Path, ...] = ()


def train_bundle(config: TrainConfig) -> Bundle:
    """Check the data, train both phases, write a bundle at `config.output`, return it verified."""
    tune_malloc()
    torch = require("torch", "train")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    started = time.perf_counter()

    folder, predefined_val = scan_dataset(config.data_dir)
    data_report = validate_folder(folder, strict=config.strict)
    for warning in data_report.warnings():
        log.warning("%s: %s", folder.root, warning)
    unreadable = {issue.relpath for issue in data_report.unreadable}
    usable = [s for s in folder.samples if s.relpath not in unreadable]
    if predefined_val is not None:
        val_set = set(predefined_val)
        train = [s for s in usable if s.relpath not in val_set]
        val = [s for s in usable if s.relpath in val_set]
    else:
        train, val = stratified_split(
            usable, config.val_fraction, config.seed, data_report.content_hash
        )
    leaks = data_report.cross_split_duplicates(train, val)
    if leaks:
        log.warning(
            "%d validation image(s) also in train (e.g. %s = %s): validation accuracy is inflated",
            len(leaks),
            *leaks[0],
        )
    test_sets = load_test_sets(config.test_dirs, folder.classes)  # bad folders fail before training
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
    train_y, val_y = _labels(train), _labels(val)
    class_weights = _class_weights(train_y, len(folder.classes)) if config.balance else None

    model = create_backbone(
        config.backbone, len(folder.classes), pretrained=True, weights_file=config.weights
    )
    t0 = time.perf_counter()
    train_x = extract_features(
        model, _paths(folder, train), input_spec, config.batch_size, "features (train)"
    )
    head_x, head_y = train_x, train_y
    if config.head.views:
        rng = np.random.default_rng(config.seed)
        strength = augment_preset(config.head.augment)
        views = [
            extract_features(
                model,
                _paths(folder, train),
                input_spec,
                config.batch_size,
                f"features (augmented view {v + 1}/{config.head.views})",
                transform=lambda image: augment(image, rng, strength),
            )
            for v in range(config.head.views)
        ]
        head_x = np.concatenate([train_x, *views])
        head_y = np.tile(train_y, config.head.views + 1)
    val_x = extract_features(
        model, _paths(folder, val), input_spec, config.batch_size, "features (val)"
    )
    feature_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    result = fit_linear_head(
        head_x, head_y, val_x, val_y, len(folder.classes), config.head, class_weights
    )
    head_seconds = time.perf_counter() - t0
    classifier = getattr(model, spec.classifier)
    with torch.no_grad():
        classifier.weight.copy_(torch.from_numpy(result.weight))
        classifier.bias.copy_(torch.from_numpy(result.bias))
    # the backbone is frozen and in eval mode: features @ head are the model's own logits
    val_logits = val_x @ result.weight.T + result.bias if len(val) else None
    head_val_top1 = accuracy(val_logits, val_y) if val_logits is not None else None

    finetune_history: list[dict[str, float]] = []
    finetune_seconds = 0.0
    if config.finetune.epochs > 0:
        t0 = time.perf_counter()
        val_images = [load_image(p) for p in _paths(folder, val)]  # decoded once, scored twice
        finetune_history = finetune(
            model,
            input_spec,
            [load_image(p) for p in _paths(folder, train)],
            train_y,
            val_images,
            val_y,
            config.finetune,
            checkpoint=_checkpoint_path(config.output),
            resume=config.resume,
            class_weights=class_weights,
        )
        finetune_seconds = time.perf_counter() - t0
        if len(val):
            val_logits = model_logits(model, input_spec, val_images, config.batch_size)

    evaluation = (
        classification_report(val_logits, val_y, folder.classes) if val_logits is not None else None
    )
    scores = {VAL_SET: summarize(evaluation)} if evaluation else {}
    test_reports = {}
    for test_set in test_sets:
        images = [load_image(p) for p in test_set.images.paths]
        logits = model_logits(model, input_spec, images, config.batch_size)
        test_reports[test_set.name] = classification_report(
            logits, test_set.images.labels, folder.classes
        )
        scores[test_set.name] = summarize(test_reports[test_set.name], str(test_set.root.resolve()))
    warnings = recall_gaps(scores)
    for warning in warnings:
        log.warning("%s", warning)
    dataset = DatasetInfo(
        root=str(folder.root.resolve()),
        fingerprint=folder.fingerprint(data_report.content_hash),
        num_images=len(folder.samples),
        class_counts=folder.class_counts(),
        split=SplitInfo(
            seed=config.seed, val_fraction=config.val_fraction, val_files=[s.relpath for s in val]
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
            weights=str(config.weights) if config.weights else spec.weights,
            feature_dim=int(train_x.shape[1]),
        ),
        provenance=new_provenance(dataset),
    )
    total_seconds = time.perf_counter() - started
    tuned = (
        "whole backbone"
        if config.finetune.blocks is None
        else f"top {config.finetune.blocks} stages"
    )
    phases = "frozen backbone + head" + (
        f", fine-tuned {tuned} ({config.finetune.augment} augmentation)" if finetune_history else ""
    )
    measured_on = f"torch eager cpu ({phases})"
    manifest.metrics["torch"] = {
        "precision": Precision.FP32.value,
        "split": "val",
        "num_images": len(val),
        "top1": evaluation["top1"] if evaluation else None,
        "top3": evaluation["top3"] if evaluation else None,
        "per_class_recall": {k: v["recall"] for k, v in evaluation["per_class"].items()}
        if evaluation
        else {},
        "path": measured_on,
        "test_sets": {k: v | {"path": measured_on} for k, v in scores.items() if k != VAL_SET},
    }
    report = {
        "config": _jsonable(asdict(config)),
        "phases": phases,
        "data": data_report.as_dict() | {"cross_split_duplicates": leaks},
        "head": {
            "best_epoch": result.best_epoch,
            "val_top1": head_val_top1,
            "history": result.history,
        },
        "finetune": {"history": finetune_history},
        "val": evaluation,
        "test_sets": test_reports,
        "warnings": warnings,
        "train_images": len(train),
        "val_images": len(val),
        "seconds": {
            "features": feature_seconds,
            "head": head_seconds,
            "finetune": finetune_seconds,
            "total": total_seconds,
        },
    }
    with stage_bundle(config.output, overwrite=config.overwrite) as stage:
        stage.manifest = manifest
        save_model(model, stage.new_file(MODEL_FILE), config.backbone, len(folder.classes))
        stage.add_artifact(MODEL_FILE, ArtifactKind.TORCH, Precision.FP32)
        stage.new_file(TRAIN_REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        _write_plots(stage.dir / REPORTS_DIR, report, folder, val, val_logits)
        if scores:
            (stage.dir / REPORTS_DIR).mkdir(exist_ok=True)
            (stage.dir / REPORTS_DIR / SCORECARD_FILE).write_text(
                scorecard_markdown(
                    f"{config.output.name}: validation and test sets", scores, folder.classes
                )
            )
    log.info(
        "wrote %s (val top-1 %s) in %.1f s",
        config.output,
        manifest.metrics["torch"]["top1"],
        total_seconds,
    )
    return Bundle.load(config.output)


def _write_plots(
    out: Path,
    report: dict[str, Any],
    folder: ImageFolder,
    val: list[Sample],
    val_logits: np.ndarray | None,
) -> None:
    """Confusion matrix, curves and the worst validation mistakes, when matplotlib is there."""
    if not is_available("matplotlib"):
        log.warning("matplotlib not installed: no PNG reports (pip install 'edge-tl[train]')")
        return
    from edge_tl.reports import plot_confusion, plot_curves, plot_worst

    out.mkdir(exist_ok=True)
    plot_curves(report["head"]["history"], "head on cached features", out / "curves-head.png")
    if report["finetune"]["history"]:
        plot_curves(report["finetune"]["history"], "fine-tuning", out / "curves-finetune.png")
    if val_logits is None or report["val"] is None:
        return
    plot_confusion(
        report["val"]["confusion_matrix"], folder.classes, "validation", out / "confusion-val.png"
    )
    (out / "confusion-val.json").write_text(json.dumps(report["val"], indent=2) + "\n")
    for name, test_report in report["test_sets"].items():
        plot_confusion(
            test_report["confusion_matrix"],
            folder.classes,
            f"test: {name}",
            out / f"confusion-test-{_file_safe(name)}.png",
        )
    labels = _labels(val)
    probabilities = softmax(val_logits)
    wrong = np.flatnonzero(val_logits.argmax(axis=1) != labels)
    worst = wrong[np.argsort(probabilities[wrong, labels[wrong]])][:24]
    plot_worst(
        [load_image(folder.path(val[i])) for i in worst],
        [
            f"{folder.classes[labels[i]]}→{folder.classes[int(val_logits[i].argmax())]} "
            f"{probabilities[i].max():.2f}"
            for i in worst
        ],
        f"worst validation mistakes ({len(wrong)} of {len(val)})",
        out / "worst-val.png",
    )


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def _checkpoint_path(output: Path) -> Path:
    return output.parent / f".{output.name}.finetune-checkpoint.pt"


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
