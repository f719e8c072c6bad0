"""`edge-tl predict`, `edge-tl stream` and `edge-tl serve`: the device side."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge_tl.cli._common import (
    AddCommand,
    add_backend_options,
    add_json,
    positive_int,
    precision,
    print_json,
    table,
)

__all__ = ["register"]


def register(add_command: AddCommand) -> None:
    p = add_command(
        "predict", _predict, "Classify image files (or folders of images) with a bundle."
    )
    p.add_argument("bundle", type=Path)
    p.add_argument("images", type=Path, nargs="+", help="image files or folders")
    add_backend_options(p)
    p.add_argument(
        "--top-k",
        type=positive_int,
        default=3,
        help="classes to show per image (default: %(default)s)",
    )
    p.add_argument("--batch-size", type=positive_int, default=16)
    add_json(p)

    p = add_command(
        "stream", _stream, "Classify every frame of a video file and write JSON Lines events."
    )
    p.add_argument("bundle", type=Path)
    p.add_argument(
        "--source",
        required=True,
        help="whatever serve takes: video file, image folder, camera index, /dev/videoN, "
        "rtsp://..., gst:PIPELINE",
    )
    p.add_argument("--out", type=Path, default=None, help="events file (.jsonl); default: stdout")
    p.add_argument(
        "--stride",
        type=positive_int,
        default=1,
        help="classify every Nth frame (default: %(default)s)",
    )
    p.add_argument(
        "--max-frames", type=positive_int, default=None, help="stop after N classified frames"
    )
    add_backend_options(p)
    add_json(p, "print the run summary as JSON (events still go to --out)")

    p = add_command(
        "serve",
        _serve,
        "Run the on-device daemon: several streams, shared batching backend, sinks, /metrics and /healthz "
        "(config: TOML or YAML; see deploy/edge-tl.toml).",
    )
    p.add_argument("config", type=Path)
    add_json(p, "print the final stream states as JSON on exit")


def _predict(args: argparse.Namespace) -> int:
    from edge_tl.bundle import Bundle
    from edge_tl.images import find_images
    from edge_tl.runtime import create_backend
    from edge_tl.runtime.classify import classify_files

    bundle = Bundle.load(args.bundle)
    files = find_images(args.images)
    with create_backend(bundle, args.backend, precision(args.precision), args.threads) as backend:
        classified = classify_files(backend, bundle.labels, files, args.top_k, args.batch_size)
        description = backend.describe()
    results = [
        {
            "file": str(c.path),
            "label": c.prediction.label,
            "score": c.prediction.score,
            "top": c.prediction.top,
        }
        for c in classified
        if c.prediction is not None
    ]
    failed = [{"file": str(c.path), "error": c.error} for c in classified if c.prediction is None]
    for failure in failed:
        print(f"edge-tl: error: {failure['error']}", file=sys.stderr)
    if args.json:
        print_json({"backend": description, "predictions": results, "failed": failed})
        return 1 if failed else 0
    table(
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
    if failed:
        print(f"{len(failed)} of {len(classified)} file(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


def _stream(args: argparse.Namespace) -> int:
    from edge_tl.runtime.daemon import stream_source

    summary = stream_source(
        args.bundle,
        str(args.source),
        out=args.out,
        stdout=sys.stdout,
        backend=args.backend,
        precision=precision(args.precision),
        threads=args.threads,
        stride=args.stride,
        max_frames=args.max_frames,
    )
    if args.out is None:  # stdout holds the events (JSONL): the summary goes to stderr
        print(json.dumps(summary), file=sys.stderr)
    elif args.json:
        print_json(summary)
    else:
        print(
            f"{summary['frames']} frames at {summary['fps']:.1f} fps ({summary['backend']}) → "
            f"{args.out}; classes: {summary['class_counts']}"
        )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from edge_tl.runtime.daemon import serve

    report = serve(args.config)
    if args.json:
        print_json(report)
    if not any(s["frames"] for s in report["streams"].values()):
        errors = {n: s["error"] for n, s in report["streams"].items() if s["error"]}
        print(
            f"edge-tl: error: no stream delivered a frame: {errors or 'none connected'}",
            file=sys.stderr,
        )
        return 1
    return 0
