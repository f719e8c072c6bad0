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
    InputSpec,
    Manifest,
    ModelInfo,
    Precision,
    ResizePolicy,
    SplitInfo,
    check_bundle_target,
    new_provenance,
    stage_bundle,
)
from edge_tl.data.folder import ImageFolder, Sample, scan_dataset, stratified_split
from edge_tl.data.validate import DataReport, validate_folder
from edge_tl.errors import DataError
from edge_tl.images import load_image
from edge_tl.metrics import classification_report, softmax, top1
from edge_tl.models.checkpoint import save_model
from edge_tl.models.registry import create_backbone, get_spec
from edge_tl.records import PriorInfo, ScoredSet
from edge_tl.runtime.drift import score_reference
from edge_tl.scorecard import (
    VAL_SET,
    TestSet,
    load_test_sets,
    recall_gaps,
    record_torch_scores,
    scorecard_markdown,
    summarize,
)
from edge_tl.train.augment import augment, augment_preset
from edge_tl.train.features import extract_features
from edge_tl.train.finetune import FinetuneConfig, finetune, model_logits
from edge_tl.train.head import HeadConfig, HeadResult, fit_linear_head

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
    imagenet_prior: bool = (
        True  # keep the backbone's ImageNet classifier as a prior (unseen cameras)
    )
    strict: bool = False  # an unreadable image is fatal instead of skipped
    resume: bool = False  # continue fine-tuning from the checkpoint beside the output
    overwrite: bool = False
    # scored after training, never used to choose anything (epochs, checkpoints, stopping)
    test_dirs: tuple[Path, ...] = ()


@dataclass
class _Data:
    """The dataset as training sees it: the folder, the split, and the labels of each side."""

    folder: ImageFolder
    train: list[Sample]
    val: list[Sample]
    report: DataReport
    leaks: list[tuple[str, str]]
    test_sets: list[TestSet]

    @property
    def classes(self) -> list[str]:
        return self.folder.classes


@dataclass
class _Scores:
    val_logits: np.ndarray | None
    evaluation: dict[str, Any] | None
    scores: dict[str, ScoredSet]
    test_reports: dict[str, dict[str, Any]]
    warnings: list[str]


def train_bundle(config: TrainConfig) -> Bundle:
    """Check the data, train both phases, write a bundle at `config.output`, return it verified."""
    tune_malloc()
    check_bundle_target(config.output, config.overwrite)
    torch = require("torch", "train")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    data = _prepare_data(config)
    spec = get_spec(config.backbone)
    input_spec = spec.input_spec(config.input_size, config.resize)
    log.info(
        "%s: %d classes, %d train / %d val images, %s at %dpx",
        data.folder.root, len(data.classes), len(data.train), len(data.val), config.backbone,
        input_spec.height,
    )  # fmt: skip
    class_weights = (
        _class_weights(_labels(data.train), len(data.classes)) if config.balance else None
    )
    model = create_backbone(
        config.backbone, len(data.classes), pretrained=True, weights_file=config.weights
    )
    head = _head_phase(model, spec.classifier, data, input_spec, config, class_weights)
    finetuned = _finetune_phase(model, data, input_spec, config, class_weights)
    scores = _score(model, data, input_spec, config, head.val_logits if not finetuned else None)
    manifest = _manifest(config, data, spec, input_spec, head.feature_dim, bool(finetuned))
    prior = _imagenet_prior(config, spec, manifest)
    report = _report(config, data, head, finetuned, scores, time.perf_counter() - started)
    _write_bundle(config, manifest, model, report, data, scores, prior)
    log.info(
        "wrote %s (val top-1 %s) in %.1f s",
        config.output,
        manifest.metrics["torch"].top1,
        report["seconds"]["total"],
    )
    return Bundle.load(config.output)


def _prepare_data(config: TrainConfig) -> _Data:
    """Validate the folder, drop unreadable images, split (or take the given split), and load
    the test sets (so a bad test folder fails before any training)."""
    dataset = scan_dataset(config.data_dir)
    folder, predefined_val = dataset.folder, dataset.val_relpaths
    data_report = validate_folder(folder, strict=config.strict)
    for warning in data_report.warnings():
        log.warning("%s: %s", folder.root, warning)
    unreadable = {issue.relpath for issue in data_report.unreadable}
    usable = [s for s in folder.samples if s.relpath not in unreadable]
    if not usable:
        raise DataError(f"{folder.root}: none of its {len(folder.samples)} images can be read")
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
    test_dirs = [*config.test_dirs, *([dataset.test_dir] if dataset.test_dir else [])]
    test_sets = load_test_sets(test_dirs, folder.classes)
    return _Data(folder, train, val, data_report, leaks, test_sets)


@dataclass
class _HeadPhase:
    result: HeadResult
    val_logits: np.ndarray | None
    val_top1: float | None
    feature_dim: int
    seconds: dict[str, float]


def _head_phase(
    model: Any,
    classifier_name: str,
    data: _Data,
    input_spec: InputSpec,
    config: TrainConfig,
    class_weights: np.ndarray | None,
) -> _HeadPhase:
    """Phase one: backbone features computed once (plus augmented views when asked), a linear
    head trained on them, the best validation epoch installed as the model's classifier."""
    torch = require("torch", "train")
    train_paths, val_paths = _paths(data.folder, data.train), _paths(data.folder, data.val)
    train_y, val_y = _labels(data.train), _labels(data.val)
    t0 = time.perf_counter()
    train_x = extract_features(
        model, train_paths, input_spec, config.batch_size, "features (train)"
    )
    head_x, head_y = train_x, train_y
    if config.head.views:
        rng = np.random.default_rng(config.seed)
        strength = augment_preset(config.head.augment)
        views = [
            extract_features(
                model,
                train_paths,
                input_spec,
                config.batch_size,
                f"features (augmented view {v + 1}/{config.head.views})",
                transform=lambda image: augment(image, rng, strength),
            )
            for v in range(config.head.views)
        ]
        head_x = np.concatenate([train_x, *views])
        head_y = np.tile(train_y, config.head.views + 1)
    val_x = extract_features(model, val_paths, input_spec, config.batch_size, "features (val)")
    feature_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = fit_linear_head(
        head_x, head_y, val_x, val_y, len(data.classes), config.head, class_weights
    )
    head_seconds = time.perf_counter() - t0
    classifier = getattr(model, classifier_name)
    with torch.no_grad():
        classifier.weight.copy_(torch.from_numpy(result.weight))
        classifier.bias.copy_(torch.from_numpy(result.bias))
    # the backbone is frozen and in eval mode: features @ head are the model's own logits
    val_logits = val_x @ result.weight.T + result.bias if len(data.val) else None
    return _HeadPhase(
        result,
        val_logits,
        top1(val_logits, val_y) if val_logits is not None else None,
        int(train_x.shape[1]),
        {"features": feature_seconds, "head": head_seconds},
    )


@dataclass
class _FinetunePhase:
    history: list[dict[str, float]]
    seconds: float


def _finetune_phase(
    model: Any,
    data: _Data,
    input_spec: InputSpec,
    config: TrainConfig,
    class_weights: np.ndarray | None,
) -> _FinetunePhase | None:
    """Phase two (when asked): fine-tune the backbone on images decoded per epoch."""
    if config.finetune.epochs <= 0:
        return None
    t0 = time.perf_counter()
    history = finetune(
        model,
        input_spec,
        _paths(data.folder, data.train),
        _labels(data.train),
        _paths(data.folder, data.val),
        _labels(data.val),
        config.finetune,
        checkpoint=_checkpoint_path(config.output),
        resume=config.resume,
        class_weights=class_weights,
    )
    return _FinetunePhase(history, time.perf_counter() - t0)


def _score(
    model: Any,
    data: _Data,
    input_spec: InputSpec,
    config: TrainConfig,
    val_logits: np.ndarray | None,
) -> _Scores:
    """The final model on validation (logits reused from the head phase when the backbone did
    not change) and on every test set, side by side."""
    if val_logits is None and data.val:
        val_logits = model_logits(
            model, input_spec, _paths(data.folder, data.val), config.batch_size
        )
    evaluation = (
        classification_report(val_logits, _labels(data.val), data.classes)
        if val_logits is not None
        else None
    )
    scores = {VAL_SET: summarize(evaluation)} if evaluation else {}
    test_reports = {}
    for test_set in data.test_sets:
        logits = model_logits(model, input_spec, test_set.images.paths, config.batch_size)
        test_reports[test_set.name] = classification_report(
            logits, test_set.images.labels, data.classes
        )
        scores[test_set.name] = summarize(test_reports[test_set.name], str(test_set.root.resolve()))
    warnings = recall_gaps(scores)
    for warning in warnings:
        log.warning("%s", warning)
    return _Scores(val_logits, evaluation, scores, test_reports, warnings)


def _imagenet_prior(config: TrainConfig, spec: Any, manifest: Manifest) -> Any:
    """The backbone's ImageNet classifier as a prior for unseen cameras (models/prior.py),
    recorded in the manifest; None when switched off, with custom weights, or no match."""
    if not config.imagenet_prior or config.weights is not None:
        return None
    from edge_tl.models.prior import PRIOR_FLOOR, imagenet_prior  # imports torch

    built = imagenet_prior(spec, manifest.labels)
    if built is None:
        return None
    head, names = built
    manifest.prior = PriorInfo(imagenet_classes=names, floor=PRIOR_FLOOR)
    return head


def _manifest(
    config: TrainConfig,
    data: _Data,
    spec: Any,
    input_spec: InputSpec,
    feature_dim: int,
    finetuned: bool,
) -> Manifest:
    dataset = DatasetInfo(
        root=str(data.folder.root.resolve()),
        fingerprint=data.folder.fingerprint(data.report.content_hash),
        num_images=len(data.folder.samples),
        class_counts=data.folder.class_counts(),
        split=SplitInfo(
            seed=config.seed,
            val_fraction=config.val_fraction,
            val_files=[s.relpath for s in data.val],
        ),
    )
    return Manifest(
        schema_version=SCHEMA_VERSION,
        name=config.output.name,
        labels=data.classes,
        input=input_spec,
        model=ModelInfo(
            backbone=config.backbone,
            architecture=spec.architecture,
            num_classes=len(data.classes),
            weights=str(config.weights) if config.weights else spec.weights,
            feature_dim=feature_dim,
        ),
        provenance=new_provenance(dataset),
    )


def _phases(config: TrainConfig, finetuned: bool) -> str:
    tuned = (
        "whole backbone"
        if config.finetune.blocks is None
        else f"top {config.finetune.blocks} stages"
    )
    return "frozen backbone + head" + (
        f", fine-tuned {tuned} ({config.finetune.augment} augmentation)" if finetuned else ""
    )


def _report(
    config: TrainConfig,
    data: _Data,
    head: _HeadPhase,
    finetuned: _FinetunePhase | None,
    scores: _Scores,
    total_seconds: float,
) -> dict[str, Any]:
    """train_report.json: the config, the data check, both phases' curves and every score."""
    return {
        "config": _jsonable(asdict(config)),
        "phases": _phases(config, finetuned is not None),
        "data": data.report.as_dict() | {"cross_split_duplicates": data.leaks},
        "head": {
            "best_epoch": head.result.best_epoch,
            "val_top1": head.val_top1,
            "history": head.result.history,
        },
        "finetune": {"history": finetuned.history if finetuned else []},
        "val": scores.evaluation,
        "test_sets": scores.test_reports,
        "warnings": scores.warnings,
        "train_images": len(data.train),
        "val_images": len(data.val),
        "seconds": head.seconds
        | {"finetune": finetuned.seconds if finetuned else 0.0, "total": total_seconds},
    }


def _write_bundle(
    config: TrainConfig,
    manifest: Manifest,
    model: Any,
    report: dict[str, Any],
    data: _Data,
    scores: _Scores,
    prior: Any,
) -> None:
    """The torch metrics into the manifest, then model.pt, the report and its plots, staged."""
    measured_on = f"torch eager cpu ({report['phases']})"
    record_torch_scores(manifest, scores.scores, measured_on)
    if scores.val_logits is not None:
        manifest.reference = score_reference(softmax(scores.val_logits), data.classes)
    with stage_bundle(config.output, overwrite=config.overwrite) as stage:
        stage.manifest = manifest
        save_model(model, stage.new_file(MODEL_FILE), config.backbone, len(data.classes), prior)
        stage.add_artifact(MODEL_FILE, ArtifactKind.TORCH, Precision.FP32)
        stage.new_file(TRAIN_REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        _write_plots(stage.dir / REPORTS_DIR, report, data.folder, data.val, scores.val_logits)
        if scores.scores:
            (stage.dir / REPORTS_DIR).mkdir(exist_ok=True)
            (stage.dir / REPORTS_DIR / SCORECARD_FILE).write_text(
                scorecard_markdown(
                    f"{config.output.name}: validation and test sets", scores.scores, data.classes
                )
            )


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
    plot_curves(
        report["head"]["history"],
        "head on cached features",
        out / "curves-head.png",
        report["head"]["best_epoch"],
    )
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
            f"true {folder.classes[labels[i]]} → predicted "
            f"{folder.classes[int(val_logits[i].argmax())]} ({probabilities[i].max():.2f})"
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
