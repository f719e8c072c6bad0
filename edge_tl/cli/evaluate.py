"""`edge-tl eval` and `edge-tl info`: what a bundle scores, and what it holds."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_tl.cli._common import (
    AddCommand,
    add_backend_options,
    add_json,
    add_test_option,
    pct,
    precision,
    print_json,
    table,
)

if TYPE_CHECKING:
    from edge_tl.records import ScoredSet

__all__ = ["register", "scorecard_table"]


def register(add_command: AddCommand) -> None:
    p = add_command(
        "eval",
        _eval,
        "Score a bundle on its validation split and on test sets side by side: top-1/3, per-class "
        "recall, confusion matrices; test-set scores are recorded in the bundle.",
    )
    p.add_argument("bundle", type=Path)
    p.add_argument(
        "data", type=Path, nargs="*", help="test folders DATA/<class>/<image> (same as --test)"
    )
    add_test_option(
        p, "a test set with the bundle's class names; repeat for several (scored beside validation)"
    )
    p.add_argument(
        "--tta",
        default=None,
        help="also score with test-time augmentation (hflip or hflip-rot180) and show what it "
        "costs in batch-1 latency",
    )
    p.add_argument(
        "--no-record",
        action="store_true",
        help="do not write the test-set scores (nor a missing drift reference) into the bundle's manifest",
    )
    add_backend_options(p)
    add_json(p)

    p = add_command(
        "eval-counts",
        _eval_counts,
        "Count vehicles crossing a line in a clip with serve's motion pipeline and score the "
        "counts against hand-checked ground truth: recall, precision, F1, class accuracy.",
    )
    p.add_argument("bundle", type=Path)
    p.add_argument("clip", type=Path, help="a video file")
    p.add_argument(
        "ground_truth", type=Path, help="CLIP.counts.json: the line and its crossings (README)"
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="take the stream settings (motion, tracking, voting) from this serve config "
        "instead of the defaults; the line always comes from the ground truth",
    )
    p.add_argument("--stream", default=None, help="which stream of --config (default: the first)")
    p.add_argument("--events", type=Path, default=None, help="also write the events as JSONL")
    p.add_argument(
        "--errors",
        type=Path,
        default=None,
        metavar="DIR",
        help="also draw each miss, spurious count and wrong class into DIR (one JPEG each, with "
        "the frames before and after, and errors.json); an earlier gallery there is replaced",
    )
    add_backend_options(p)
    add_json(p)

    p = add_command(
        "info", _info, "Show a bundle: labels, input spec, artifacts, metrics, provenance."
    )
    p.add_argument("bundle", type=Path)
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check of artifacts")
    add_json(p)


def _eval(args: argparse.Namespace) -> int:
    from edge_tl.bundle import Bundle
    from edge_tl.evaluate import dataset_test_dir
    from edge_tl.runtime import create_backend
    from edge_tl.scorecard import evaluate_sets, record_test_scores

    bundle = Bundle.load(args.bundle)
    test_dirs = [*args.data, *args.test]
    own_test = dataset_test_dir(bundle)  # DATA/test of a train/val/test dataset
    if own_test is not None and all(Path(d).resolve() != own_test.resolve() for d in test_dirs):
        test_dirs.append(own_test)
    with create_backend(bundle, args.backend, precision(args.precision), args.threads) as backend:
        result = evaluate_sets(bundle, backend, test_dirs, args.tta)
    missing_reference = bundle.manifest.reference is None and result.reference is not None
    if (test_dirs or missing_reference) and not args.no_record:
        record_test_scores(bundle, backend, result.scores, result.reference)
    if args.json:
        print_json(result.as_dict())
        return 0
    scores, description, latency = result.scores, result.backend, result.tta_latency
    scorecard_table(
        f"{bundle.path} · {description}", scores | (result.tta_scores or {}), bundle.labels
    )
    for warning in result.warnings:
        print(f"warning: {warning}")
    if latency:
        print(
            f"test-time augmentation '{args.tta}': {latency['passes']} passes per image; batch-1 p50 "
            f"{latency['p50_ms_plain']:.2f} ms -> {latency['p50_ms_tta']:.2f} ms "
            f"(x{latency['p50_ms_tta'] / latency['p50_ms_plain']:.2f}) on this machine"
        )
    return 0


def _eval_counts(args: argparse.Namespace) -> int:
    from edge_tl.counting import evaluate_counts

    stream = _stream_settings(args.config, args.stream) if args.config else None
    result = evaluate_counts(
        args.bundle,
        args.clip,
        args.ground_truth,
        stream,
        args.backend,
        precision(args.precision),
        args.threads,
        args.events,
        args.errors,
    )
    if args.json:
        print_json(result)
        return 0
    table(
        f"{args.clip.name} · {result['backend']}",
        ["crossings", "counted", "matched", "missed", "spurious", "recall", "precision", "F1",
         "class acc. (sure)"],
        [[
            result["crossings"], result["counted"], result["matched"], result["missed"],
            result["spurious"], pct(result["recall"]), pct(result["precision"]),
            f"{result['f1']:.3f}", pct(result["class_accuracy_sure"]),
        ]],
    )  # fmt: skip
    rows = result["per_class"]
    table(
        "per class",
        ["class", "true", "counted", "detected", "named right", "sure: detected", "sure: right"],
        [[c, *r.values()] for c, r in rows.items() if r["true"] or r["counted"]],
    )
    predicted = list(next(iter(result["confusion"].values()), {}))
    table(
        "confusion of matched crossings (rows true, columns counted as)",
        ["true \\ counted", *predicted],
        [[t, *row.values()] for t, row in result["confusion"].items() if any(row.values())],
    )
    if gallery := result.get("error_gallery"):
        print(f"{gallery['pictures']} error pictures in {gallery['folder']}")
    return 0


def _stream_settings(config_path: Path, name: str | None) -> dict[str, Any]:
    from edge_tl.errors import EdgeTLError
    from edge_tl.runtime.config import load_config

    streams = load_config(config_path).streams
    chosen = next((s for s in streams if name in (None, s.name)), None)
    if chosen is None:
        raise EdgeTLError(f"{config_path}: no stream named '{name}'")
    return chosen.model_dump(exclude={"name", "source", "line", "mode"})


def scorecard_table(title: str, scores: Mapping[str, ScoredSet], labels: Sequence[str]) -> None:
    """Validation and test sets side by side (summaries from edge_tl.scorecard.summarize)."""
    from edge_tl.scorecard import recall_cells

    table(
        title,
        ["set", "images", "top-1", "top-3", "macro F1", *[f"recall {c}" for c in labels]],
        [
            [
                name,
                s.num_images,
                pct(s.top1),
                pct(s.top3),
                f"{s.macro_f1:.3f}",
                *recall_cells(s, labels),
            ]
            for name, s in scores.items()
        ],
    )


def _info(args: argparse.Namespace) -> int:
    from edge_tl.bundle import Bundle

    bundle = Bundle.load(args.bundle, verify=not args.no_verify)
    manifest = bundle.manifest
    if args.json:
        print_json(manifest.model_dump(mode="json"))
        return 0
    spec = manifest.input
    print(
        f"bundle {bundle.path} (schema {manifest.schema_version}, edge-tl {manifest.provenance.edge_tl})"
    )
    print(
        f"model   {manifest.model.backbone} ({manifest.model.architecture}), {manifest.model.num_classes} classes: "
        f"{', '.join(manifest.labels)}"
    )
    print(
        f"input   {spec.layout} {spec.height}x{spec.width} {spec.color_order.value}, mean {spec.mean}, std {spec.std}, "
        f"{spec.resize.value} (crop {spec.crop_pct}), {spec.interpolation.value}"
    )
    table(
        "artifacts",
        ["file", "kind", "precision", "MB", "sha256"],
        [
            [
                a.file,
                a.kind.value,
                a.precision.value if a.precision else "-",
                f"{a.bytes / 1e6:.1f}",
                a.sha256[:12],
            ]
            for a in manifest.artifacts.values()
        ],
    )
    if manifest.metrics:
        table(
            "metrics",
            ["name", "split", "images", "top-1", "measured on"],
            [
                [name, split, m.num_images, pct(m.top1), m.measured_on or "-"]
                for name, entry in manifest.metrics.items()
                for split, m in [
                    (entry.split, entry),
                    *[(f"test: {t}", v) for t, v in entry.test_sets.items()],
                ]
                if m.top1 is not None
            ],
        )
    return 0
