"""`edge-tl bench` and `edge-tl demo`: measured numbers."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_tl.cli._common import (
    AddCommand,
    add_json,
    comma_list,
    positive_int,
    precisions,
    print_json,
    table,
)
from edge_tl.errors import EdgeTLError

__all__ = ["register"]


def register(add_command: AddCommand) -> None:
    p = add_command(
        "bench",
        _bench,
        "Benchmark backends x precisions x batch sizes in one run: latency percentiles, throughput, "
        "per-stage times, load time, memory, the naive PyTorch baseline, each CPU row as a multiple of the CPU's fp32 floor, and the machine; or compare two runs.",
    )
    p.add_argument("bundle", type=Path, nargs="?", help="bundle to benchmark (omit with --compare)")
    p.add_argument(
        "--backends", default="onnxruntime,torch", help="comma-separated (default: %(default)s)"
    )
    p.add_argument(
        "--precision",
        dest="precisions",
        default="fp32",
        help="comma-separated (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size",
        dest="batch",
        default="1",
        help="comma-separated batch sizes (default: %(default)s)",
    )
    p.add_argument(
        "--warmup", type=int, default=10, help="untimed iterations (default: %(default)s)"
    )
    p.add_argument(
        "--iters", type=positive_int, default=100, help="timed iterations (default: %(default)s)"
    )
    p.add_argument(
        "--duration", type=float, default=None, help="seconds per configuration instead of --iters"
    )
    p.add_argument(
        "--threads", type=positive_int, default=None, help="intra-op threads for every backend"
    )
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
    add_json(p)

    p = add_command(
        "bench-streams",
        _bench_streams,
        "How many cameras this box serves in real time: copies of a clip, looped and paced like "
        "cameras, through the daemon; per-camera fps, latency, CPU and RSS per load, and what a "
        "camera-second costs in decode, motion, inference and the rest.",
    )
    p.add_argument("bundle", type=Path)
    p.add_argument("--source", type=Path, required=True, help="video clip standing in for a camera")
    p.add_argument("--mode", default="motion", choices=["motion", "frame"])
    p.add_argument("--backend", default="auto", help="as for serve (default: %(default)s)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    p.add_argument("--threads", type=positive_int, default=None, help="inference threads")
    p.add_argument(
        "--workers", type=positive_int, default=1, help="worker processes, as in serve's config"
    )
    p.add_argument(
        "--decoder",
        default="auto",
        choices=["auto", "opencv", "pyav"],
        help="as the streams' `decoder` (default: %(default)s: PyAV when installed)",
    )
    p.add_argument(
        "--motion",
        default=None,
        choices=["mog2", "knn"],
        help="the streams' background model, as `[streams.motion] method` (default: the "
        "streams' own default)",
    )
    p.add_argument(
        "--live",
        action="store_true",
        help="read the copies as cameras are: only recent frames kept, a camera behind skips frames "
        "(default: every frame, a backlog shows as latency)",
    )
    p.add_argument(
        "--in-step",
        action="store_true",
        help="start every copy at the clip's start (default: copy k of N starts k/N into it, so "
        "the copies' vehicles and loop points do not coincide as no real cameras' would)",
    )
    p.add_argument("--max", dest="max_cameras", type=positive_int, default=32)
    p.add_argument(
        "--seconds",
        type=float,
        default=30.0,
        help="measured window per load (default: %(default)s)",
    )
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before the window")
    p.add_argument("--no-breakdown", action="store_true", help="skip the per-camera CPU breakdown")
    p.add_argument("--out", type=Path, default=None, help="write NAME.json and NAME.md here")
    p.add_argument("--name", default="streams", help="file name stem for --out")
    add_json(p)

    p = add_command(
        "demo",
        _demo,
        "Run the whole flow on the vehicle sample shipped with edge-tl and print a summary.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("edge-tl-demo"),
        help="report folder (default: %(default)s)",
    )
    p.add_argument(
        "--input-size",
        type=positive_int,
        default=224,
        help="model input side (default: %(default)s)",
    )
    p.add_argument(
        "--bench-iters",
        type=int,
        default=100,
        help="timed iterations per backend (default: %(default)s)",
    )
    p.add_argument("--threads", type=positive_int, default=None)
    add_json(p)


def _bench(args: argparse.Namespace) -> int:
    if args.compare:
        return _bench_compare(args)
    from edge_tl.bench.report import HEADER, floor_lines, rows, write_reports
    from edge_tl.bench.run import BenchConfig, run_benchmark
    from edge_tl.bundle import Bundle

    if args.bundle is None:
        raise EdgeTLError("bench: name a BUNDLE (or use --compare BEFORE.json AFTER.json)")
    bundle = Bundle.load(args.bundle)
    config = BenchConfig(
        backends=tuple(comma_list(args.backends)),
        precisions=precisions(args.precisions),
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
        print_json(result | {"written": [str(p) for p in written]})
        return 0
    table(f"{result['model']} {result['input']} · {result['system']['cpu']}", HEADER, rows(result))
    for line in floor_lines(result)[1:]:
        print(line)
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


def _bench_streams(args: argparse.Namespace) -> int:
    import json

    from edge_tl.bench.streams import StreamBenchConfig, bench_streams, to_markdown

    if args.seconds <= 0 or args.warmup < 0:
        raise EdgeTLError("--seconds must be > 0 and --warmup >= 0")
    config = StreamBenchConfig(
        bundle=args.bundle,
        source=args.source,
        mode=args.mode,
        backend=args.backend,
        precision=args.precision,
        threads=args.threads,
        workers=args.workers,
        decoder=args.decoder,
        **({"motion_method": args.motion} if args.motion else {}),
        live=args.live,
        in_step=args.in_step,
        max_cameras=args.max_cameras,
        seconds=args.seconds,
        warmup_s=args.warmup,
    )
    result = bench_streams(config, breakdown=not args.no_breakdown)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / f"{args.name}.md").write_text(to_markdown(result))
    if args.json:
        print_json(result)
    else:
        print(to_markdown(result))
    return 0


def _bench_compare(args: argparse.Namespace) -> int:
    from edge_tl.bench.compare import compare_runs

    changes = compare_runs(*args.compare)
    if args.json:
        print_json(changes)
    else:
        table(
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


def _demo(args: argparse.Namespace) -> int:
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
        print_json(result)
    else:
        table("edge-tl demo summary", ["what", "result"], summary_rows(result))
        print(f"report: {Path(result['bundle']).parent / 'report'}")
    return 0
