"""`edge-tl train` and `edge-tl data-check`: datasets in, a trained bundle out."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_tl.cli._common import (
    AddCommand,
    add_json,
    add_test_option,
    pct,
    positive_int,
    print_json,
    table,
)
from edge_tl.errors import EdgeTLError

__all__ = ["register", "train_config"]


def register(add_command: AddCommand) -> None:
    p = add_command(
        "train",
        _train,
        "Train a classifier on an ImageFolder (pretrained backbone + new head, optionally fine-tuned) "
        "and write a bundle; --test sets are scored beside validation.",
    )
    p.add_argument("data", type=Path, help="dataset folder: DATA/<class>/<image>")
    p.add_argument(
        "-o", "--out", dest="output", type=Path, required=True, help="bundle folder to write"
    )
    p.add_argument(
        "--backbone",
        default=None,
        help="efficientnet_lite0/1/2 (offline weights) or timm:<model> (hub weights) "
        "(default: the preset's)",
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="local checkpoint to start from instead of the backbone's own weights",
    )
    p.add_argument(
        "--preset",
        default=None,
        help="training recipe: default (frozen Lite2, ~4 min on 2 cores), fast (frozen Lite0, "
        "~2 min) or frozen (the --backbone frozen); the flags below override single settings",
    )
    add_test_option(
        p,
        "a test set DIR/<class>/<image> scored after training, beside validation; repeatable. "
        "Never used for training or to choose epochs",
    )
    p.add_argument(
        "--input-size",
        type=positive_int,
        default=None,
        help="input side in pixels (default: the preset's)",
    )
    p.add_argument(
        "--resize",
        choices=["center_crop", "squash"],
        default=None,
        help="how images become the input square (default: the preset's)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="stratified validation share (default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="split and training seed (default: %(default)s)"
    )
    p.add_argument(
        "--epochs", type=positive_int, default=None, help="head epochs on cached features"
    )
    p.add_argument(
        "--head-views",
        type=int,
        default=None,
        help="augmented copies of each training image the head also learns from (each costs a "
        "backbone pass over the training set)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        help="feature extraction batch (default: %(default)s)",
    )
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for PyTorch")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    p.add_argument(
        "--finetune-epochs",
        type=int,
        default=None,
        help="phase two: fine-tune the backbone with augmentation for N epochs (0: frozen backbone)",
    )
    p.add_argument(
        "--finetune-blocks",
        default=None,
        help="backbone stages to fine-tune from the top, or 'all'",
    )
    p.add_argument(
        "--augment",
        default=None,
        help="fine-tuning augmentation: none, light, camera or overhead (any heading)",
    )
    p.add_argument(
        "--head-augment", default=None, help="augmentation of the --head-views (as --augment)"
    )
    p.add_argument("--finetune-lr", type=float, default=None, help="backbone learning rate")
    p.add_argument(
        "--head-lr", type=float, default=None, help="classifier learning rate in phase two"
    )
    p.add_argument(
        "--weight-decay", type=float, default=None, help="AdamW weight decay in phase two"
    )
    p.add_argument("--label-smoothing", type=float, default=None)
    p.add_argument("--mixup", type=float, default=None, help="mixup alpha (0: off)")
    p.add_argument("--cutmix", type=float, default=None, help="cutmix alpha (0: off)")
    p.add_argument("--dropout", type=float, default=None, help="dropout before the classifier")
    p.add_argument("--ema", type=float, default=None, help="weight EMA decay (0: off)")
    p.add_argument(
        "--patience",
        type=int,
        default=None,
        help="stop fine-tuning after N epochs without a better validation top-1",
    )
    p.add_argument(
        "--balance", action="store_true", help="inverse-frequency class weights in the loss"
    )
    p.add_argument(
        "--no-imagenet-prior",
        action="store_true",
        help="do not keep the backbone's ImageNet classifier as a second opinion for cameras the "
        "model has never seen (labels matched by name: car, bike, bus, truck...)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first unreadable image instead of skipping it",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted fine-tuning from its checkpoint",
    )
    add_json(p)

    p = add_command(
        "data-check",
        _data_check,
        "Check a dataset folder before training: unreadable, converted, tiny and duplicate images, class balance.",
    )
    p.add_argument("data", type=Path, help="DATA/<class>/<image> (or DATA/train, DATA/val)")
    p.add_argument("--strict", action="store_true", help="exit non-zero on any unreadable image")
    add_json(p)


def _train(args: argparse.Namespace) -> int:
    from edge_tl.train.pipeline import train_bundle

    config = train_config(args)
    bundle = train_bundle(config)
    metrics = bundle.manifest.metrics["torch"]
    if args.json:
        print_json(
            {
                "bundle": str(bundle.path),
                "labels": bundle.labels,
                "preset": args.preset or "default",
                "val": metrics.model_dump(exclude={"test_sets"}),
                "test_sets": {k: v.model_dump() for k, v in metrics.test_sets.items()},
            }
        )
        return 0
    print(
        f"bundle {bundle.path}: {len(bundle.labels)} classes, val top-1 {pct(metrics.top1)} "
        f"on {metrics.num_images} images"
    )
    if metrics.test_sets:
        from edge_tl.cli.evaluate import scorecard_table
        from edge_tl.scorecard import VAL_SET, summarize

        report = json.loads((bundle.path / "train_report.json").read_text())
        scores = {VAL_SET: summarize(report["val"])} if report["val"] else {}
        scorecard_table("validation and test sets", scores | metrics.test_sets, bundle.labels)
        for warning in report["warnings"]:
            print(f"warning: {warning}")
    return 0


def train_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """A preset, with the flags the user gave laid over it."""
    from dataclasses import replace

    from edge_tl.bundle import ResizePolicy
    from edge_tl.train.pipeline import TrainConfig
    from edge_tl.train.presets import DEFAULT_PRESET, get_preset

    recipe = get_preset(args.preset or DEFAULT_PRESET)
    blocks: int | None | str = args.finetune_blocks
    if blocks is not None:
        if blocks == "all":
            blocks = None
        elif not blocks.isdigit():
            raise EdgeTLError(f"--finetune-blocks takes a number or 'all', got '{blocks}'")
        else:
            blocks = int(blocks)
    finetune_flags = {
        "epochs": args.finetune_epochs,
        "augment": args.augment,
        "backbone_lr": args.finetune_lr,
        "head_lr": args.head_lr,
        "weight_decay": args.weight_decay,
        "label_smoothing": args.label_smoothing,
        "mixup": args.mixup,
        "cutmix": args.cutmix,
        "drop_rate": args.dropout,
        "ema_decay": args.ema,
        "patience": args.patience,
    }
    finetune = replace(
        recipe.finetune,
        seed=args.seed,
        **{k: v for k, v in finetune_flags.items() if v is not None},
        **({"blocks": blocks} if args.finetune_blocks is not None else {}),
    )
    head_flags = {"epochs": args.epochs, "views": args.head_views, "augment": args.head_augment}
    head = replace(
        recipe.head, seed=args.seed, **{k: v for k, v in head_flags.items() if v is not None}
    )
    return TrainConfig(
        data_dir=args.data,
        output=args.output,
        backbone=args.backbone or recipe.backbone or "efficientnet_lite0",
        weights=args.weights,
        input_size=args.input_size or recipe.input_size,
        resize=ResizePolicy(args.resize) if args.resize else recipe.resize,
        val_fraction=args.val_fraction,
        seed=args.seed,
        batch_size=args.batch_size,
        threads=args.threads,
        head=head,
        finetune=finetune,
        balance=args.balance,
        imagenet_prior=not args.no_imagenet_prior,
        strict=args.strict,
        resume=args.resume,
        overwrite=args.overwrite,
        test_dirs=tuple(args.test),
    )


def _data_check(args: argparse.Namespace) -> int:
    from edge_tl.data.folder import scan_dataset, scan_image_folder
    from edge_tl.data.validate import validate_folder

    dataset = scan_dataset(args.data)
    parts = {"train and val" if dataset.test_dir else "dataset": dataset.folder}
    if dataset.test_dir:
        parts["test"] = scan_image_folder(dataset.test_dir, min_classes=1)
    reports = {name: validate_folder(folder, strict=args.strict) for name, folder in parts.items()}
    if args.json:
        print_json(
            reports["dataset"].as_dict()
            if len(reports) == 1
            else {name: report.as_dict() for name, report in reports.items()}
        )
    else:
        for name, report in reports.items():
            folder = parts[name]
            table(
                f"{folder.root} ({name}): {len(folder.samples)} images",
                ["class", "images"],
                list(report.class_counts.items()),
            )
            for warning in report.warnings() or ["no problems found"]:
                print(f"- {warning}")
    return 1 if args.strict and any(r.unreadable for r in reports.values()) else 0
