"""`edge-tl harvest`, `edge-tl label` and `edge-tl adapt`: a new camera's counted tracks
collected, labelled by a person, and used to retrain the bundle's head."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_tl.cli._common import AddCommand, add_json, pct, positive_int, print_json, table
from edge_tl.errors import EdgeTLError

__all__ = ["register", "parse_line"]


def register(add_command: AddCommand) -> None:
    p = add_command(
        "harvest",
        _harvest,
        "Run the motion pipeline on a clip or camera and keep every counted track's crops "
        "for labelling (DIR/tracks.jsonl, DIR/<stream>/<track>/<n>.jpg).",
    )
    p.add_argument("bundle", type=Path)
    p.add_argument("--source", required=True, help="video file, rtsp://..., camera index, ...")
    p.add_argument(
        "--line",
        type=parse_line,
        default=None,
        help="counting line as normalized x1,y1,x2,y2 (default: a vertical line in the middle)",
    )
    p.add_argument("-o", "--out", type=Path, required=True, help="harvest folder (appended to)")
    p.add_argument("--crops", type=positive_int, default=5, help="crops kept per track")
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop after N frames")
    add_json(p)

    p = add_command(
        "label",
        _label,
        "Label harvested tracks on a local page (keys 1-N, x discards; saved to DIR/labels.csv "
        "at every key), or with --export turn the labels into an ImageFolder for `edge-tl adapt`.",
    )
    p.add_argument("harvest", type=Path, help="a folder `edge-tl harvest` or serve wrote")
    p.add_argument(
        "--bundle", type=Path, default=None, help="its classes are the choices (and the only ones)"
    )
    p.add_argument("--port", type=int, default=0, help="page port on 127.0.0.1 (default: any)")
    p.add_argument("--export", type=Path, default=None, help="new folder: OUT/<class>/<crops>")
    p.add_argument(
        "--from-csv",
        type=Path,
        default=None,
        help="with --export: labels (default: DIR/labels.csv)",
    )
    add_json(p)

    p = add_command(
        "adapt",
        _adapt,
        "Retrain a bundle's head on its original data plus a new camera's labelled tracks; "
        "report the original validation split and held-out tracks of the new camera side by side.",
    )
    p.add_argument("bundle", type=Path)
    p.add_argument("labelled", type=Path, help="ImageFolder from `edge-tl label --export`")
    p.add_argument("-o", "--out", type=Path, required=True, help="the new bundle")
    p.add_argument("--data", type=Path, default=None, help="the original dataset, if it moved")
    p.add_argument(
        "--new-share",
        type=float,
        default=0.3,
        help="share of the head's training samples from the new camera (default: %(default)s)",
    )
    p.add_argument(
        "--no-domain-shift",
        dest="domain_shift",
        action="store_false",
        help="do not add the original images moved by the new camera's feature offset",
    )
    p.add_argument(
        "--keep-original",
        type=float,
        default=0.5,
        help="share of the original head averaged into the new one: a camera's classes with "
        "few tracks keep what the bundle knew (0: the new head alone; default: %(default)s)",
    )
    p.add_argument("--overwrite", action="store_true")
    add_json(p)


def parse_line(text: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """'0.1,0.5,0.9,0.5' → ((0.1, 0.5), (0.9, 0.5)), every value in 0..1."""
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}': expected x1,y1,x2,y2, e.g. 0.1,0.5,0.9,0.5"
        ) from None
    if not all(0 <= v <= 1 for v in (x1, y1, x2, y2)) or (x1, y1) == (x2, y2):
        raise argparse.ArgumentTypeError(f"'{text}': two different points, each value in 0..1")
    return (x1, y1), (x2, y2)


def _harvest(args: argparse.Namespace) -> int:
    from edge_tl.runtime.daemon import harvest_source

    stream = {"harvest_crops": args.crops}
    if args.max_frames:
        stream["max_frames"] = args.max_frames
    result = harvest_source(args.bundle, args.source, args.out, args.line, stream)
    if args.json:
        print_json(result)
    else:
        print(
            f"{result['tracks']} counted track(s) from {result['frames']} frames → "
            f"{result['tracks_file']}; predicted: {result['class_counts']}"
        )
    return 0


def _label(args: argparse.Namespace) -> int:
    from edge_tl.adapt.labels import LABELS_FILE, export_labelled, load_tracks, read_labels
    from edge_tl.bundle import Bundle

    if args.export is None:
        from edge_tl.adapt.label_page import LabelServer

        classes = (
            Bundle.load(args.bundle, verify=False).labels
            if args.bundle
            else sorted({t.class_ for t in load_tracks(args.harvest) if t.class_})
        )
        server = LabelServer(args.harvest, classes, args.port)
        print(f"label {len(server.tracks)} track(s) at {server.url}  (Ctrl-C to stop)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        print(f"labels in {server.labels_file}: {len(server.labels)}")
        return 0
    source = args.from_csv or args.harvest / LABELS_FILE
    labels = read_labels(source)
    if not labels:
        raise EdgeTLError(f"{source}: no labels (rows 'id,class'); label the tracks first")
    classes = Bundle.load(args.bundle, verify=False).labels if args.bundle else None
    per_class = export_labelled(args.harvest, labels, args.export, classes)
    if args.json:
        print_json({"export": str(args.export), "tracks": per_class})
    else:
        print(f"{sum(per_class.values())} track(s) → {args.export}: {per_class}")
    return 0


def _adapt(args: argparse.Namespace) -> int:
    from edge_tl.adapt.retrain import AdaptOptions, adapt_bundle

    if not 0 < args.new_share < 1:
        raise EdgeTLError(f"--new-share {args.new_share}: must be between 0 and 1")
    if not 0 <= args.keep_original < 1:
        raise EdgeTLError(f"--keep-original {args.keep_original}: must be >= 0 and < 1")
    options = AdaptOptions(
        new_share=args.new_share,
        data_dir=args.data,
        overwrite=args.overwrite,
        domain_shift=args.domain_shift,
        keep_original=args.keep_original,
    )
    report = adapt_bundle(args.bundle, args.labelled, args.out, options)
    if args.json:
        print_json(report.as_dict())
        return 0

    table(
        f"{args.bundle} → {args.out} ({sum(report.tracks.values())} tracks, "
        f"{report.held_out_tracks} held out)",
        ["", "original validation top-1", "new camera, held-out tracks"],
        [
            [
                "before",
                pct(report.original_val_top1["before"]),
                pct(report.new_camera_track_top1["before"]),
            ],
            [
                "after",
                pct(report.original_val_top1["after"]),
                pct(report.new_camera_track_top1["after"]),
            ],
        ],
    )
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(f"next: edge-tl export {args.out}")
    return 0
