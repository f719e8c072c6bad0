"""`edge-tl export` and `edge-tl build`: precision-explicit ONNX graphs and TensorRT engines."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_tl.cli._common import (
    PRECISIONS,
    AddCommand,
    add_json,
    comma_list,
    pct,
    positive_int,
    precisions,
    print_json,
    table,
)
from edge_tl.errors import EdgeTLError

__all__ = ["register"]


def register(add_command: AddCommand) -> None:
    p = add_command(
        "export",
        _export,
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
        "--data",
        type=Path,
        default=None,
        help="the training dataset, when it is no longer where training saw it (int8 "
        "calibration, the fp16 range check and the accuracy table read it)",
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
    add_json(p)

    p = add_command(
        "export-triton",
        _export_triton,
        "Write a Triton Inference Server model repository from the bundle (one model per "
        "precision, a new version folder each time, config.pbtxt with dynamic batching).",
    )
    p.add_argument("bundle", type=Path)
    p.add_argument("repo", type=Path, help="model repository folder (created or added to)")
    p.add_argument(
        "--flavour",
        default="onnxruntime",
        choices=["onnxruntime", "tensorrt", "python"],
        help="Triton backend: onnxruntime (CPU/GPU servers), tensorrt (the bundle's plans), "
        "python (ONNX Runtime inside the python backend; the CPU-only tritonserver of the "
        "nvidia-pytriton wheel) (default: %(default)s)",
    )
    p.add_argument("--precision", default="fp32", help="comma-separated (default: %(default)s)")
    p.add_argument("--name", default=None, help="model name stem (default: the bundle's name)")
    p.add_argument(
        "--max-batch", type=positive_int, default=32, help="max_batch_size (default: %(default)s)"
    )
    p.add_argument(
        "--queue-delay-us",
        type=int,
        default=2000,
        help="dynamic batching: longest wait for a fuller batch (default: %(default)s)",
    )
    p.add_argument(
        "--instances", type=positive_int, default=1, help="model instances (default: %(default)s)"
    )
    p.add_argument(
        "--instance-kind",
        choices=["cpu", "gpu"],
        default=None,
        help="where instances run (default: gpu for tensorrt, else cpu)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="python flavour: ORT threads per instance",
    )
    add_json(p)

    p = add_command(
        "build",
        _build,
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
        "--batch-profile",
        default="1:8:32",
        metavar="MIN:OPT:MAX",
        help="dynamic-batch profile of the engine (default: %(default)s)",
    )
    # the old spelling; `--batch` means a list of batch sizes elsewhere (bench)
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
    add_json(p)


def _export(args: argparse.Namespace) -> int:
    from edge_tl.bundle import ColorOrder
    from edge_tl.export.pipeline import AUTO, ExportOptions, export_bundle
    from edge_tl.export.precision import CalibrationMethod

    exclude: tuple[str, ...] | str = AUTO
    if args.int8_exclude == "none":
        exclude = ()
    elif args.int8_exclude != AUTO:
        exclude = tuple(comma_list(args.int8_exclude))
    options = ExportOptions(
        precisions=precisions(args.precision),
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
        data_dir=args.data,
    )
    reports = export_bundle(args.bundle, options)
    if args.json:
        print_json({"bundle": str(args.bundle), "precisions": [r.as_dict() for r in reports]})
        return 0
    backends = list(reports[0].cpu_latency_ms_p50_by_backend) or ["onnxruntime"]
    table(
        f"exported {args.bundle} · accuracy on {reports[0].images} validation images",
        [
            "precision",
            "file",
            "MB",
            "top-1",
            "agreement vs fp32",
            "max |Δlogit|",
            *[f"p50 ms b1 {name}" for name in backends],
            "accuracy measured on",
        ],
        [
            [
                r.precision,
                r.file,
                f"{r.bytes / 1e6:.1f}",
                pct(r.top1),
                pct(r.agreement_fp32),
                f"{r.max_abs_logit_diff_fp32:.3g}",
                *[
                    f"{r.cpu_latency_ms_p50_by_backend.get(name, r.cpu_latency_ms_p50):.1f}"
                    for name in backends
                ],
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


def _export_triton(args: argparse.Namespace) -> int:
    from edge_tl.bundle import Bundle
    from edge_tl.export.triton import TritonOptions, export_triton

    if args.queue_delay_us < 0:
        raise EdgeTLError(f"--queue-delay-us {args.queue_delay_us}: must be >= 0")
    options = TritonOptions(
        flavour=args.flavour,
        precisions=precisions(args.precision),
        name=args.name,
        max_batch=args.max_batch,
        queue_delay_us=args.queue_delay_us,
        instances=args.instances,
        instance_kind=args.instance_kind,
        threads=args.threads,
    )
    written = export_triton(Bundle.load(args.bundle), args.repo, options)
    if args.json:
        print_json({"repository": str(args.repo), "versions": [str(p) for p in written]})
        return 0
    for path in written:
        print(f"wrote {path} (model '{path.parent.name}', version {path.name})")
    print(f"serve it: tritonserver --model-repository {args.repo}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from edge_tl.bundle import Precision
    from edge_tl.export.tensorrt import BuildOptions, build_engine, parse_batch_profile

    report = build_engine(
        args.bundle,
        BuildOptions(
            precision=Precision(args.precision),
            batch=parse_batch_profile(args.batch_profile),
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
        print_json(report.as_dict())
    else:
        where = report.gpu_name or f"{report.target}, ahead of time"
        print(
            f"{args.bundle}/{report.file}: {report.bytes / 1e6:.1f} MB, {report.flavour} {report.version} "
            f"for {where}, built in {report.seconds:.1f} s"
        )
    return 0
