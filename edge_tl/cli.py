"""`edge-tl` command line. The only module that sees argparse objects or prints results.

Errors meant for users (EdgeTLError) print one line and exit 1; `--debug` shows the traceback.
Commands import their heavy modules when they run, so `edge-tl --help` and the runtime
commands work on the lean install without torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from edge_tl import __version__
from edge_tl.errors import EdgeTLError

__all__ = ["main", "build_parser"]

log = logging.getLogger("edge_tl.cli")

PRECISIONS = ("fp32", "fp16", "int8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    try:
        return int(args.handler(args) or 0)
    except EdgeTLError as exc:
        if args.debug:
            raise
        print(f"edge-tl: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edge-tl: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-tl",
        description="Image classifiers from a folder of labelled photos to a low-latency "
        "service on a camera: train, export, predict, stream, benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"edge-tl {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    common.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
    parser.set_defaults(debug=False, quiet=False, json=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int | None], help: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    p = command(
        "train",
        _cmd_train,
        "Train a classifier on an ImageFolder (pretrained backbone + new head, optionally fine-tuned) "
        "and write a bundle; --test sets are scored beside validation.",
    )
    p.add_argument("data", type=Path, help="dataset folder: DATA/<class>/<image>")
    p.add_argument("-o", "--output", type=Path, required=True, help="bundle folder to write")
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
    _add_test_option(
        p,
        "a test set DIR/<class>/<image> scored after training, beside validation; repeatable. "
        "Never used for training or to choose epochs",
    )
    p.add_argument(
        "--input-size", type=int, default=None, help="input side in pixels (default: the preset's)"
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
    p.add_argument("--epochs", type=int, default=None, help="head epochs on cached features")
    p.add_argument(
        "--head-views",
        type=int,
        default=None,
        help="augmented copies of each training image the head also learns from (each costs a "
        "backbone pass over the training set)",
    )
    p.add_argument(
        "--batch-size", type=int, default=32, help="feature extraction batch (default: %(default)s)"
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
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
        "--strict",
        action="store_true",
        help="stop at the first unreadable image instead of skipping it",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted fine-tuning from its checkpoint",
    )
    _add_json(p)

    p = command(
        "export",
        _cmd_export,
        "Export precision-explicit ONNX graphs (fp32, fp16, int8 Q/DQ), check them for TensorRT, "
        "and measure the accuracy of each on the validation split.",
    )
    p.add_argument("bundle", type=Path)
    p.add_argument(
        "--precision", default="fp32,fp16,int8", help="comma-separated (default: %(default)s)"
    )
    p.add_argument("--opset", type=int, default=20, help="ONNX opset, >= 19 (default: %(default)s)")
    p.add_argument(
        "--check-images",
        type=int,
        default=1024,
        help="validation images scored per precision (default: %(default)s)",
    )
    p.add_argument(
        "--calib-images",
        type=int,
        default=256,
        help="training images for INT8 calibration and the fp16 range check (default: %(default)s)",
    )
    p.add_argument(
        "--calib-method",
        default="percentile",
        choices=["minmax", "entropy", "percentile"],
        help="INT8 range method (default: %(default)s)",
    )
    p.add_argument(
        "--calib-percentile",
        type=float,
        default=99.999,
        help="with --calib-method percentile (default: %(default)s)",
    )
    p.add_argument(
        "--int8-exclude",
        default="auto",
        help="comma-separated node names kept out of INT8; 'auto' = first Conv + classifier; 'none' (default: %(default)s)",
    )
    p.add_argument(
        "--int8-rest",
        default="fp16",
        choices=["fp16", "fp32"],
        help="precision of the layers INT8 does not cover (default: %(default)s)",
    )
    p.add_argument(
        "--fp16-io",
        action="store_true",
        help="fp16 graph inputs/outputs (default: fp32 I/O, cast inside)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="calibration image draw (default: %(default)s)"
    )
    p.add_argument(
        "--fuse-preprocess",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="graphs take uint8 NHWC camera pixels and cast/normalize/transpose themselves "
        "(default: keep the bundle's current choice, off for a new bundle)",
    )
    p.add_argument(
        "--camera-order",
        default="BGR",
        choices=["BGR", "RGB"],
        help="colour order of the frames fed to a fused graph (default: %(default)s, OpenCV's)",
    )
    _add_json(p)

    p = command(
        "build",
        _cmd_build,
        "Build a TensorRT engine from the bundle's precision-explicit ONNX graph (strongly typed) "
        "and add it to the bundle.",
    )
    p.add_argument("bundle", type=Path)
    p.add_argument(
        "--precision",
        default="fp16",
        choices=PRECISIONS,
        help="which ONNX graph to build (default: %(default)s)",
    )
    p.add_argument(
        "--batch", default="1:8:32", help="dynamic-batch profile MIN:OPT:MAX (default: %(default)s)"
    )
    p.add_argument("--workspace-mib", type=int, default=None, help="builder workspace limit in MiB")
    p.add_argument(
        "--opt-level",
        type=int,
        default=3,
        help="builder optimization level 0-5 (default: %(default)s)",
    )
    p.add_argument(
        "--hardware-compat",
        default="none",
        choices=["none", "ampere_plus", "same_cc"],
        help="plan portable across GPUs (default: %(default)s)",
    )
    p.add_argument(
        "--version-compatible",
        action="store_true",
        help="plan loadable by later TensorRT of the same major version",
    )
    p.add_argument(
        "--dla-core",
        type=int,
        default=None,
        help="build for this DLA core (Jetson), GPU fallback on",
    )
    p.add_argument(
        "--target",
        default=None,
        help="TensorRT-RTX ahead-of-time architecture, e.g. sm86 (no GPU needed)",
    )
    p.add_argument(
        "--flavour",
        default="auto",
        choices=["auto", "tensorrt", "tensorrt_rtx"],
        help="which TensorRT (default: %(default)s)",
    )
    p.add_argument(
        "--timing-cache",
        type=Path,
        default=None,
        help="timing cache file (default: beside the bundle)",
    )
    _add_json(p)

    p = command(
        "predict", _cmd_predict, "Classify image files (or folders of images) with a bundle."
    )
    p.add_argument("bundle", type=Path)
    p.add_argument("images", type=Path, nargs="+", help="image files or folders")
    _add_backend_options(p)
    p.add_argument(
        "--top-k", type=int, default=3, help="classes to show per image (default: %(default)s)"
    )
    p.add_argument("--batch-size", type=int, default=16)
    _add_json(p)

    p = command(
        "stream", _cmd_stream, "Classify every frame of a video file and write JSON Lines events."
    )
    p.add_argument("bundle", type=Path)
    p.add_argument("--source", type=Path, required=True, help="video file")
    p.add_argument("--out", type=Path, default=None, help="events file (.jsonl); default: stdout")
    p.add_argument(
        "--stride", type=int, default=1, help="classify every Nth frame (default: %(default)s)"
    )
    p.add_argument("--max-frames", type=int, default=None, help="stop after N classified frames")
    _add_backend_options(p)
    _add_json(p, "print the run summary as JSON (events still go to --out)")

    p = command(
        "serve",
        _cmd_serve,
        "Run the on-device daemon: several streams, shared batching backend, sinks, /metrics and /healthz "
        "(config: TOML or YAML; see deploy/edge-tl.toml).",
    )
    p.add_argument("config", type=Path)
    _add_json(p, "print the final stream states as JSON on exit")

    p = command(
        "bench",
        _cmd_bench,
        "Benchmark backends x precisions x batch sizes in one run: latency percentiles, throughput, "
        "per-stage times, load time, memory, the naive PyTorch baseline and the machine; or compare two runs.",
    )
    p.add_argument("bundle", type=Path, nargs="?", help="bundle to benchmark (omit with --compare)")
    p.add_argument(
        "--backends", default="onnxruntime,torch", help="comma-separated (default: %(default)s)"
    )
    p.add_argument(
        "--precisions", "--precision", default="fp32", help="comma-separated (default: %(default)s)"
    )
    p.add_argument(
        "--batch", default="1", help="comma-separated batch sizes (default: %(default)s)"
    )
    p.add_argument(
        "--warmup", type=int, default=10, help="untimed iterations (default: %(default)s)"
    )
    p.add_argument("--iters", type=int, default=100, help="timed iterations (default: %(default)s)")
    p.add_argument(
        "--duration", type=float, default=None, help="seconds per configuration instead of --iters"
    )
    p.add_argument("--threads", type=int, default=None, help="intra-op threads for every backend")
    p.add_argument(
        "--no-naive", action="store_true", help="skip the naive PyTorch baseline (fresh process)"
    )
    p.add_argument(
        "--no-stages", action="store_true", help="skip the per-stage breakdown on real images"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write NAME.json, NAME.md and PNG plots into this folder",
    )
    p.add_argument(
        "--name", default="bench", help="file name stem for --out (default: %(default)s)"
    )
    p.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("BEFORE.json", "AFTER.json"),
        help="show the change between two saved runs; regressions over 10%% are flagged",
    )
    _add_json(p)

    p = command(
        "data-check",
        _cmd_data_check,
        "Check a dataset folder before training: unreadable, converted, tiny and duplicate images, class balance.",
    )
    p.add_argument("data", type=Path, help="DATA/<class>/<image> (or DATA/train, DATA/val)")
    p.add_argument("--strict", action="store_true", help="exit non-zero on any unreadable image")
    _add_json(p)

    p = command(
        "eval",
        _cmd_eval,
        "Score a bundle on its validation split and on test sets side by side: top-1/3, per-class "
        "recall, confusion matrices; test-set scores are recorded in the bundle.",
    )
    p.add_argument("bundle", type=Path)
    p.add_argument(
        "data", type=Path, nargs="*", help="test folders DATA/<class>/<image> (same as --test)"
    )
    _add_test_option(
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
        help="do not write the test-set scores into the bundle's manifest",
    )
    _add_backend_options(p)
    _add_json(p)

    p = command(
        "info", _cmd_info, "Show a bundle: labels, input spec, artifacts, metrics, provenance."
    )
    p.add_argument("bundle", type=Path)
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check of artifacts")
    _add_json(p)

    p = command(
        "demo",
        _cmd_demo,
        "Run the whole flow on the vehicle sample shipped with edge-tl and print a summary.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("edge-tl-demo"),
        help="report folder (default: %(default)s)",
    )
    p.add_argument(
        "--input-size", type=int, default=224, help="model input side (default: %(default)s)"
    )
    p.add_argument(
        "--bench-iters",
        type=int,
        default=100,
        help="timed iterations per backend (default: %(default)s)",
    )
    p.add_argument("--threads", type=int, default=None)
    _add_json(p)
    return parser


def _add_json(parser: argparse.ArgumentParser, help: str = "print results as JSON") -> None:
    parser.add_argument("--json", action="store_true", help=help)


def _add_test_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--test", type=Path, action="append", default=[], metavar="DIR", help=help)


def _add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", default="auto", help="auto, onnxruntime or torch (default: %(default)s)"
    )
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads")


def _configure_logging(args: argparse.Namespace) -> None:
    from edge_tl.progress import set_enabled

    quiet = args.quiet or args.json
    set_enabled(not quiet)
    level = logging.DEBUG if args.debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("edge_tl").setLevel(level)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    # a pipe or log file gets full cells instead of rich's 80-column truncation
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _precision(text: str):  # type: ignore[no-untyped-def]
    from edge_tl.bundle import Precision

    try:
        return Precision(text)
    except ValueError:
        raise EdgeTLError(
            f"unknown precision '{text}'; choose from {', '.join(PRECISIONS)}"
        ) from None


# --- commands ---------------------------------------------------------------------------------


def _cmd_train(args: argparse.Namespace) -> int:
    from edge_tl.train.pipeline import train_bundle

    config = _train_config(args)
    bundle = train_bundle(config)
    metrics = bundle.manifest.metrics["torch"]
    if args.json:
        _print_json(
            {
                "bundle": str(bundle.path),
                "labels": bundle.labels,
                "preset": args.preset or "default",
                "val": {k: v for k, v in metrics.items() if k != "test_sets"},
                "test_sets": metrics.get("test_sets", {}),
            }
        )
        return 0
    print(
        f"bundle {bundle.path}: {len(bundle.labels)} classes, val top-1 {_pct(metrics['top1'])} "
        f"on {metrics['num_images']} images"
    )
    if metrics.get("test_sets"):
        from edge_tl.scorecard import VAL_SET, summarize

        report = json.loads((bundle.path / "train_report.json").read_text())
        scores = {VAL_SET: summarize(report["val"])} if report["val"] else {}
        _scorecard_table("validation and test sets", scores | metrics["test_sets"], bundle.labels)
        for warning in report["warnings"]:
            print(f"warning: {warning}")
    return 0


def _train_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
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
        strict=args.strict,
        resume=args.resume,
        overwrite=args.overwrite,
        test_dirs=tuple(args.test),
    )


def _cmd_export(args: argparse.Namespace) -> int:
    from edge_tl.bundle import ColorOrder
    from edge_tl.export.pipeline import AUTO, ExportOptions, export_bundle
    from edge_tl.export.precision import CalibrationMethod

    exclude: tuple[str, ...] | str = AUTO
    if args.int8_exclude == "none":
        exclude = ()
    elif args.int8_exclude != AUTO:
        exclude = tuple(n.strip() for n in args.int8_exclude.split(",") if n.strip())
    options = ExportOptions(
        precisions=tuple(
            dict.fromkeys(_precision(p.strip()) for p in args.precision.split(",") if p.strip())
        ),
        opset=args.opset,
        check_images=args.check_images,
        calib_images=args.calib_images,
        calib_method=CalibrationMethod(args.calib_method),
        calib_percentile=args.calib_percentile,
        int8_exclude=exclude,
        int8_rest_fp16=args.int8_rest == "fp16",
        fp16_io=args.fp16_io,
        seed=args.seed,
        fuse_preprocess=args.fuse_preprocess,
        raw_color_order=ColorOrder(args.camera_order),
    )
    reports = export_bundle(args.bundle, options)
    if args.json:
        _print_json({"bundle": str(args.bundle), "precisions": [r.as_dict() for r in reports]})
        return 0
    _table(
        f"exported {args.bundle} · accuracy on {reports[0].images} validation images",
        [
            "precision",
            "file",
            "MB",
            "top-1",
            "agreement vs fp32",
            "max |Δlogit|",
            "CPU p50 ms (b1)",
            "measured on",
        ],
        [
            [
                r.precision,
                r.file,
                f"{r.bytes / 1e6:.1f}",
                _pct(r.top1),
                _pct(r.agreement_fp32),
                f"{r.max_abs_logit_diff_fp32:.3g}",
                f"{r.cpu_latency_ms_p50:.1f}",
                r.measured_on,
            ]
            for r in reports
        ],
    )
    parity = next(
        (r.details["parity_vs_torch"] for r in reports if "parity_vs_torch" in r.details), None
    )
    if parity:
        print(
            f"fp32.onnx vs PyTorch: max |Δlogit| {parity['max_abs_logit_diff']:.2g}, "
            f"top-1 agreement {parity['top1_agreement']:.1%} on {parity['images']} images ({parity['inputs']})"
        )
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from edge_tl.export.tensorrt import BuildOptions, build_engine, parse_batch_profile

    report = build_engine(
        args.bundle,
        BuildOptions(
            precision=_precision(args.precision),
            batch=parse_batch_profile(args.batch),
            workspace_mib=args.workspace_mib,
            optimization_level=args.opt_level,
            hardware_compat=args.hardware_compat,
            version_compatible=args.version_compatible,
            dla_core=args.dla_core,
            target=args.target,
            flavour=args.flavour,
            timing_cache=args.timing_cache,
        ),
    )
    if args.json:
        _print_json(report.as_dict())
    else:
        where = report.gpu_name or f"{report.target}, ahead of time"
        print(
            f"{args.bundle}/{report.file}: {report.bytes / 1e6:.1f} MB, {report.flavour} {report.version} "
            f"for {where}, built in {report.seconds:.1f} s"
        )
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from edge_tl.bundle import Bundle
    from edge_tl.data.folder import IMAGE_SUFFIXES
    from edge_tl.runtime import Classifier, create_backend, load_image

    bundle = Bundle.load(args.bundle)
    files: list[Path] = []
    for item in args.images:
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.exists():
            files.append(item)
        else:
            raise EdgeTLError(f"{item}: no such file or folder")
    if not files:
        raise EdgeTLError(
            f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {', '.join(map(str, args.images))}"
        )
    results = []
    with create_backend(bundle, args.backend, _precision(args.precision), args.threads) as backend:
        classifier = Classifier(backend, bundle.labels, top_k=args.top_k)
        for start in range(0, len(files), args.batch_size):
            chunk = files[start : start + args.batch_size]
            for path, prediction in zip(
                chunk, classifier.classify([load_image(p) for p in chunk]), strict=False
            ):
                results.append(
                    {
                        "file": str(path),
                        "label": prediction.label,
                        "score": prediction.score,
                        "top": prediction.top,
                    }
                )
        description = backend.describe()
    if args.json:
        _print_json({"backend": description, "predictions": results})
    else:
        _table(
            f"{len(results)} image(s) · {description}",
            ["file", "label", "score", "top"],
            [
                [
                    r["file"],
                    r["label"],
                    f"{r['score']:.3f}",
                    ", ".join(f"{label} {score:.2f}" for label, score in r["top"]),
                ]
                for r in results
            ],
        )
    return 0


def _cmd_stream(args: argparse.Namespace) -> int:
    from edge_tl.bundle import Bundle
    from edge_tl.runtime import Classifier, create_backend
    from edge_tl.runtime.sources import VideoFileSource
    from edge_tl.runtime.stream import StreamSummary, classify_frames, write_jsonl

    bundle = Bundle.load(args.bundle)
    source = VideoFileSource(
        args.source, stride=args.stride, max_frames=args.max_frames, prefetch=4
    )
    summary = StreamSummary()
    total = -(-source.frame_count // args.stride) if source.frame_count else None
    if args.max_frames and total:
        total = min(total, args.max_frames)
    with create_backend(bundle, args.backend, _precision(args.precision), args.threads) as backend:
        events = classify_frames(Classifier(backend, bundle.labels), source, summary, total)
        if args.out is None:
            write_jsonl(events, sys.stdout)
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.out.with_name(f".{args.out.name}.partial")
            with open(tmp, "w", encoding="utf-8") as sink:
                write_jsonl(events, sink)
            tmp.replace(args.out)
        description = backend.describe()
    result = {"source": str(args.source), "backend": description, **summary.as_dict()}
    if args.json:
        _print_json(result)
    elif args.out is not None:
        print(
            f"{summary.frames} frames at {summary.fps:.1f} fps ({description}) → {args.out}; "
            f"classes: {summary.label_counts}"
        )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from edge_tl.runtime.daemon import serve

    report = serve(args.config)
    if args.json:
        _print_json(report)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.compare:
        return _bench_compare(args)
    from edge_tl.bench.report import HEADER, rows, write_reports
    from edge_tl.bench.run import BenchConfig, run_benchmark
    from edge_tl.bundle import Bundle

    if args.bundle is None:
        raise EdgeTLError("bench: name a BUNDLE (or use --compare BEFORE.json AFTER.json)")
    bundle = Bundle.load(args.bundle)
    config = BenchConfig(
        backends=tuple(n.strip() for n in args.backends.split(",") if n.strip()),
        precisions=tuple(
            dict.fromkeys(_precision(p.strip()) for p in args.precisions.split(",") if p.strip())
        ),
        batches=_batch_sizes(args.batch),
        warmup=args.warmup,
        iterations=args.iters,
        duration_s=args.duration,
        threads=args.threads,
        naive_baseline=not args.no_naive,
        stages=not args.no_stages,
    )
    result = run_benchmark(bundle, config)
    written = write_reports(result, args.out, args.name) if args.out else []
    if args.json:
        _print_json(result | {"written": [str(p) for p in written]})
        return 0
    _table(f"{result['model']} {result['input']} · {result['system']['cpu']}", HEADER, rows(result))
    for skipped in result["skipped"]:
        print(f"skipped {skipped['backend']} {skipped['precision']}: {skipped['reason']}")
    if result["noisy"]:
        print(
            f"warning: noisy measurements (IQR > 25% of p50): {', '.join(result['noisy'])}; ratios are less trustworthy"
        )
    print(
        f"harness overhead {result['harness_overhead_us']:.2f} µs/iteration; peak RSS {result['peak_rss_mb']:.0f} MB"
    )
    for path in written:
        print(f"wrote {path}")
    return 0


def _bench_compare(args: argparse.Namespace) -> int:
    from edge_tl.bench.compare import compare_runs

    changes = compare_runs(*args.compare)
    if args.json:
        _print_json(changes)
    else:
        _table(
            f"{args.compare[0]} → {args.compare[1]}",
            ["backend", "precision", "batch", "p50 before", "p50 after", "change", ""],
            [
                [
                    c["backend"],
                    c["precision"],
                    c["batch"],
                    f"{c['p50_before_ms']:.2f}",
                    f"{c['p50_after_ms']:.2f}",
                    f"{c['change']:+.1%}",
                    ("REGRESSION" if c["regression"] else "") + (" (noisy)" if c["noisy"] else ""),
                ]
                for c in changes
            ],
        )
    return 1 if any(c["regression"] and not c["noisy"] for c in changes) else 0


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise EdgeTLError(
            f"--batch '{text}': expected comma-separated integers, e.g. 1,8,32"
        ) from None
    if not sizes or min(sizes) < 1:
        raise EdgeTLError(f"--batch '{text}': batch sizes must be >= 1")
    return sizes


def _cmd_data_check(args: argparse.Namespace) -> int:
    from edge_tl.data.folder import scan_dataset
    from edge_tl.data.validate import validate_folder

    folder, _ = scan_dataset(args.data)
    report = validate_folder(folder, strict=args.strict)
    if args.json:
        _print_json(report.as_dict())
    else:
        _table(
            f"{folder.root}: {len(folder.samples)} images",
            ["class", "images"],
            list(report.class_counts.items()),
        )
        for warning in report.warnings() or ["no problems found"]:
            print(f"- {warning}")
    return 1 if args.strict and report.unreadable else 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from edge_tl.bundle import Bundle, stage_bundle
    from edge_tl.evaluate import collect_logits, tta_views, validation_images
    from edge_tl.metrics import classification_report
    from edge_tl.runtime import create_backend
    from edge_tl.scorecard import VAL_SET, load_test_sets, recall_gaps, summarize

    bundle = Bundle.load(args.bundle)
    test_sets = load_test_sets([*args.data, *args.test], bundle.labels)
    sets = []
    images = validation_images(bundle)
    if images is not None:
        sets.append((VAL_SET, images, None))
    elif not test_sets:
        raise EdgeTLError(
            f"{bundle.path}: its validation images are not where training saw them; name a "
            "folder with --test DIR"
        )
    sets += [(t.name, t.images, str(t.root.resolve())) for t in test_sets]
    reports, scores, tta_scores, latency = {}, {}, {}, {}
    views = tta_views(args.tta) if args.tta else None
    with create_backend(bundle, args.backend, _precision(args.precision), args.threads) as backend:
        for name, labelled, root in sets:
            logits = collect_logits([backend], labelled.paths, description=f"eval {name}")[0]
            reports[name] = classification_report(logits, labelled.labels, bundle.labels)
            scores[name] = summarize(reports[name], root)
            if views:
                logits = collect_logits(
                    [backend], labelled.paths, description=f"eval {name} ({args.tta})", views=views
                )[0]
                report = classification_report(logits, labelled.labels, bundle.labels)
                tta_scores[f"{name} · tta {args.tta}"] = summarize(report, root)
        if views:
            latency = _tta_latency(backend, bundle, sets[0][1].paths[0], len(views))
        description = backend.describe()
        metrics_key = "torch" if backend.name == "torch" else backend.precision.value
    warnings = recall_gaps(scores)
    if test_sets and not args.no_record:
        with stage_bundle(bundle.path, base=bundle) as stage:
            entry = stage.manifest.metrics.setdefault(
                metrics_key, {"precision": backend.precision.value}
            )
            recorded = entry.setdefault("test_sets", {})
            for name, summary in scores.items():
                if name != VAL_SET:
                    recorded[name] = summary | {"path": description}
    if args.json:
        _print_json(
            {
                "backend": description,
                "sets": reports,
                "warnings": warnings,
                "tta": {"views": args.tta, "sets": tta_scores, "latency": latency}
                if views
                else None,
            }
        )
        return 0
    _scorecard_table(f"{bundle.path} · {description}", scores | tta_scores, bundle.labels)
    for warning in warnings:
        print(f"warning: {warning}")
    if views:
        print(
            f"test-time augmentation '{args.tta}': {len(views)} passes per image; batch-1 p50 "
            f"{latency['p50_ms_plain']:.2f} ms -> {latency['p50_ms_tta']:.2f} ms "
            f"(x{latency['p50_ms_tta'] / latency['p50_ms_plain']:.2f}) on this machine"
        )
    return 0


def _tta_latency(backend: Any, bundle: Any, image_path: Path, passes: int) -> dict[str, float]:
    """Batch-1 p50 of one image vs the same image in `passes` views (what TTA costs to serve)."""
    from edge_tl.bench.latency import time_backend
    from edge_tl.bench.stats import LatencyStats
    from edge_tl.runtime.preprocess import load_image, prepare_batch

    image = load_image(image_path)

    def p50(batch_of: int) -> float:
        batch = prepare_batch([image] * batch_of, bundle.input_spec, backend.raw_input)
        samples = time_backend(backend.infer, batch, warmup=5, iterations=30)
        return LatencyStats.from_samples(samples).p50_ms

    return {"p50_ms_plain": p50(1), "p50_ms_tta": p50(passes), "passes": passes}


def _scorecard_table(title: str, scores: dict[str, dict[str, Any]], labels: Sequence[str]) -> None:
    """Validation and test sets side by side (summaries from edge_tl.scorecard.summarize)."""
    from edge_tl.scorecard import recall_cells

    _table(
        title,
        ["set", "images", "top-1", "top-3", "macro F1", *[f"recall {c}" for c in labels]],
        [
            [
                name,
                s["num_images"],
                _pct(s["top1"]),
                _pct(s["top3"]),
                f"{s['macro_f1']:.3f}",
                *recall_cells(s, labels),
            ]
            for name, s in scores.items()
        ],
    )


def _cmd_info(args: argparse.Namespace) -> int:
    from edge_tl.bundle import Bundle

    bundle = Bundle.load(args.bundle, verify=not args.no_verify)
    manifest = bundle.manifest
    if args.json:
        _print_json(manifest.model_dump(mode="json"))
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
    _table(
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
        _table(
            "metrics",
            ["name", "split", "images", "top-1", "measured on"],
            [
                [
                    name,
                    split,
                    m.get("num_images", "-"),
                    _pct(m.get("top1")),
                    m.get("path", "-"),
                ]
                for name, entry in manifest.metrics.items()
                for split, m in [
                    (entry.get("split", "-"), entry),
                    *[(f"test: {t}", v) for t, v in entry.get("test_sets", {}).items()],
                ]
                if "top1" in m
            ],
        )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from edge_tl.demo import DemoConfig, run_demo, summary_rows

    result = run_demo(
        DemoConfig(
            out=args.out,
            input_size=args.input_size,
            bench_iterations=args.bench_iters,
            threads=args.threads,
        )
    )
    if args.json:
        _print_json(result)
    else:
        _table("edge-tl demo summary", ["what", "result"], summary_rows(result))
        print(f"report: {Path(result['bundle']).parent / 'report'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
