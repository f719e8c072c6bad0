"""One model's scores on its validation split and on test sets, side by side. torch-free.

A validation split drawn from the training footage flatters a model: the same vehicles appear in
neighbouring frames on both sides of a random split. Test sets from other footage say what a
deployment meets. This module names the test sets, turns classification reports into the
summaries the manifest keeps, warns when a class's recall on a test set falls far below its
validation recall, and writes the side-by-side Markdown report.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_tl.bundle import Bundle, Manifest, Precision, stage_bundle
from edge_tl.data.folder import scan_image_folder
from edge_tl.errors import EdgeTLError
from edge_tl.evaluate import (
    LabelledImages,
    collect_logits,
    labelled_subset,
    tta_latency,
    tta_views,
    validation_images,
)
from edge_tl.metrics import classification_report, softmax
from edge_tl.records import PrecisionMetrics, ScoredSet, ScoreReference
from edge_tl.runtime.backends.base import Backend
from edge_tl.runtime.drift import score_reference

__all__ = [
    "VAL_SET",
    "TestSet",
    "load_test_sets",
    "summarize",
    "recall_gaps",
    "recall_cells",
    "scorecard_markdown",
    "RECALL_GAP_WARNING",
    "SetsEvaluation",
    "evaluate_sets",
    "record_test_scores",
    "record_torch_scores",
]

VAL_SET = "val"
RECALL_GAP_WARNING = 0.10  # a class losing more recall than this on a test set is flagged


@dataclass(frozen=True)
class TestSet:
    name: str  # unique among the sets scored together; the folder's name where that is unique
    root: Path
    images: LabelledImages


def load_test_sets(dirs: Sequence[str | os.PathLike[str]], labels: Sequence[str]) -> list[TestSet]:
    """Scan each folder (DATA/<class>/<image>) and map its classes onto `labels`.

    A test set may lack some classes; a class that is not among `labels` is an error naming it.
    """
    sets: list[TestSet] = []
    taken = {VAL_SET}
    for directory in dirs:
        root = Path(directory)
        folder = scan_image_folder(root, min_classes=1)
        name = root.resolve().name or str(root)
        if name in taken:
            name = str(root)
        taken.add(name)
        sets.append(TestSet(name, root, labelled_subset(labels, folder, folder.samples)))
    return sets


def summarize(report: Mapping[str, Any], root: str | None = None) -> ScoredSet:
    """What the manifest keeps of a classification report (edge_tl.metrics)."""
    return ScoredSet(
        num_images=report["images"],
        top1=report["top1"],
        top3=report["top3"],
        macro_f1=report["macro_f1"],
        per_class_recall={k: v["recall"] for k, v in report["per_class"].items()},
        per_class_support={k: v["support"] for k, v in report["per_class"].items()},
        confusion_matrix=report["confusion_matrix"],
        root=root,
    )


def recall_gaps(sets: Mapping[str, ScoredSet], max_drop: float = RECALL_GAP_WARNING) -> list[str]:
    """Warnings for classes whose recall on a test set is more than `max_drop` below validation.

    `sets` maps set names to summaries (see `summarize`); the validation set is `VAL_SET`.
    Classes a test set has no images of are not compared.
    """
    val = sets.get(VAL_SET)
    if val is None:
        return []
    warnings = []
    for name, summary in sets.items():
        if name == VAL_SET:
            continue
        for label, recall in summary.per_class_recall.items():
            if not summary.per_class_support.get(label) or label not in val.per_class_recall:
                continue
            drop = val.per_class_recall[label] - recall
            if drop > max_drop:
                warnings.append(
                    f"class '{label}': recall {recall:.1%} on {name} vs {val.per_class_recall[label]:.1%} "
                    f"on validation ({drop * 100:.1f} points lower): the model may not hold up on "
                    "new footage of this class; add varied examples of it"
                )
    return warnings


def recall_cells(summary: ScoredSet, labels: Sequence[str]) -> list[str]:
    """Per-class recall as table cells; '-' for a class the set has no images of (not 0 %)."""
    return [
        f"{summary.per_class_recall[c]:.1%}" if summary.per_class_support.get(c) else "-"
        for c in labels
    ]


def scorecard_markdown(title: str, sets: Mapping[str, ScoredSet], labels: Sequence[str]) -> str:
    """Validation and every test set side by side: top-1/3, per-class recall, confusion matrices."""
    lines = [f"# {title}", "", "## Accuracy per set", ""]
    header = ["set", "images", "top-1", "top-3", "macro F1", *[f"recall {c}" for c in labels]]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, s in sets.items():
        row = [name, str(s.num_images), f"{s.top1:.2%}", f"{s.top3:.2%}", f"{s.macro_f1:.3f}"]
        lines.append("| " + " | ".join([*row, *recall_cells(s, labels)]) + " |")
    gaps = recall_gaps(sets)
    if gaps:
        lines += ["", "## Warnings", "", *[f"- {g}" for g in gaps]]
    for name, s in sets.items():
        lines += ["", f"## Confusion matrix: {name} (rows true, columns predicted)", ""]
        lines += ["| true \\ predicted | " + " | ".join(labels) + " |"]
        lines += ["|" + "---|" * (len(labels) + 1)]
        for label, row in zip(labels, s.confusion_matrix, strict=True):
            lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class SetsEvaluation:
    """What `edge-tl eval` reports: a classification report and a summary per set."""

    backend: str
    reports: dict[str, dict[str, Any]]
    scores: dict[str, ScoredSet]
    warnings: list[str]
    tta: str | None = None
    tta_scores: dict[str, ScoredSet] | None = None
    tta_latency: dict[str, float] | None = None
    reference: ScoreReference | None = None  # from the validation split, for drift checks

    def as_dict(self) -> dict[str, Any]:
        tta = None
        if self.tta:
            sets = {k: v.model_dump() for k, v in (self.tta_scores or {}).items()}
            tta = {"views": self.tta, "sets": sets, "latency": self.tta_latency}
        return {
            "backend": self.backend,
            "sets": self.reports,
            "warnings": self.warnings,
            "tta": tta,
        }


def evaluate_sets(
    bundle: Bundle, backend: Backend, test_dirs: Sequence[Path], tta: str | None = None
) -> SetsEvaluation:
    """Score an opened backend on the bundle's validation split (when its images are still
    there) and on each test folder; with `tta`, also in test-time-augmented views, plus what
    they cost in batch-1 latency."""
    test_sets = load_test_sets(test_dirs, bundle.labels)
    sets: list[tuple[str, LabelledImages, str | None]] = []
    images = validation_images(bundle)
    if images is not None:
        sets.append((VAL_SET, images, None))
    elif not test_sets:
        raise EdgeTLError(
            f"{bundle.path}: its validation images are not where training saw them; name a "
            "folder with --test DIR"
        )
    sets += [(t.name, t.images, str(t.root.resolve())) for t in test_sets]
    views = tta_views(tta) if tta else None
    result = SetsEvaluation(backend.describe(), {}, {}, [], tta, {} if views else None)
    for name, labelled, root in sets:
        logits = collect_logits([backend], labelled.paths, description=f"eval {name}")[0]
        result.reports[name] = classification_report(logits, labelled.labels, bundle.labels)
        if name == VAL_SET:
            result.reference = score_reference(softmax(logits), bundle.labels)
        result.scores[name] = summarize(result.reports[name], root)
        if views:
            logits = collect_logits(
                [backend], labelled.paths, description=f"eval {name} ({tta})", views=views
            )[0]
            report = classification_report(logits, labelled.labels, bundle.labels)
            result.tta_scores[f"{name} · tta {tta}"] = summarize(report, root)
    if views:
        result.tta_latency = tta_latency(backend, sets[0][1].paths[0], len(views))
    result.warnings = recall_gaps(result.scores)
    return result


def record_test_scores(
    bundle: Bundle,
    backend: Backend,
    scores: Mapping[str, ScoredSet],
    reference: ScoreReference | None = None,
) -> None:
    """Write the test-set summaries into the bundle's manifest (staged, atomic), under the
    backend's metrics entry; the validation summary is the export's to record, not ours. A
    bundle trained before drift references were stored also gets `reference`."""
    key = "torch" if backend.name == "torch" else backend.precision.value
    with stage_bundle(bundle.path, base=bundle) as stage:
        if stage.manifest.reference is None:
            stage.manifest.reference = reference
        entry = stage.manifest.metrics.setdefault(
            key, PrecisionMetrics(precision=backend.precision.value)
        )
        for name, summary in scores.items():
            if name != VAL_SET:
                entry.test_sets[name] = summary.model_copy(
                    update={"measured_on": backend.describe()}
                )


def record_torch_scores(
    manifest: Manifest, scores: Mapping[str, ScoredSet], measured_on: str
) -> None:
    """The trained model's validation and test-set scores, as `train` records them."""
    val = scores.get(VAL_SET, ScoredSet())
    manifest.metrics["torch"] = PrecisionMetrics(
        **val.model_dump(exclude={"measured_on"}),
        precision=Precision.FP32.value,
        split=VAL_SET,
        measured_on=measured_on,
        test_sets={
            k: v.model_copy(update={"measured_on": measured_on})
            for k, v in scores.items()
            if k != VAL_SET
        },
    )
