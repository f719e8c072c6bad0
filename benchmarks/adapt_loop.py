"""The adaptation loop measured (issue 15): a script stands in for the person.

For each shared clip with ground truth: harvest its first half with the bundle, label the
harvested tracks from the ground truth (a track matched to a crossing gets its class, any other
is discarded, as a person would throw away a pedestrian or a double), adapt, export fp32, then
score counting on the second half only. Wall time of every step is recorded.

    .venv/bin/python benchmarks/adapt_loop.py --bundle /tmp/veh-prior
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_tl.adapt.labels import LABELS_FILE, load_tracks, write_labels  # noqa: E402
from edge_tl.counting import (  # noqa: E402
    CountedEvent,
    MatchWindow,
    count_events,
    count_metrics,
    load_ground_truth,
    match_counts,
    position_along,
)
from edge_tl.runtime.tracker import box_centre  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "data" / "videos"
OUT = ROOT / "benchmarks" / "results" / "adapt-loop.json"


def edge_tl(*args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "edge_tl.cli", *args, "-q"], capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"edge-tl {' '.join(args)}:\n{done.stderr}")
    return round(time.perf_counter() - started, 1), done.stdout


def second_half_scores(events_file: Path, truth_file: Path, half: int, labels: list[str]) -> dict:
    truth = load_ground_truth(truth_file)
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    counted = [e for e in count_events(events, truth.line_px) if e.frame >= half]
    truth.crossings = [c for c in truth.crossings if c.frame >= half]
    truth.edge_cases = [c for c in truth.edge_cases if c.frame is None or c.frame >= half]
    result = count_metrics(counted, truth, labels)
    keep = ("crossings", "sure_crossings", "counted", "matched", "spurious", "f1",
            "class_accuracy_sure", "confusion")  # fmt: skip
    return {k: result[k] for k in keep}


def label_from_truth(harvest: Path, truth_file: Path) -> dict[str, int]:
    """What the person would do: the ground truth's class for a matched track, else discard."""
    truth = load_ground_truth(truth_file)
    tracks = load_tracks(harvest)
    counted = [
        CountedEvent(
            t.count_frame, position_along(truth.line_px, box_centre(t.box)), t.class_ or ""
        )
        for t in tracks
    ]
    match = match_counts(counted, truth.crossings, truth.edge_cases, MatchWindow.of(truth))
    labels = {t.id: "x" for t in tracks}
    for ci, ei in match.pairs:
        labels[tracks[ei].id] = truth.crossings[ci].class_
    write_labels(harvest / LABELS_FILE, labels)
    return {
        "tracks": len(tracks),
        "labelled": len(match.pairs),
        "discarded": len(tracks) - len(match.pairs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    args = parser.parse_args()
    labels = json.loads((args.bundle / "manifest.json").read_text())["labels"]
    results: dict = {"bundle": str(args.bundle), "clips": {}}
    work = Path(tempfile.mkdtemp(prefix="adapt-loop-"))
    for truth_file in sorted(VIDEOS.glob("*.counts.json")):
        clip = truth_file.with_name(truth_file.name.replace(".counts.json", ".mp4"))
        frames = int(cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT))
        half = frames // 2
        line = ",".join(str(v) for p in load_ground_truth(truth_file).line for v in p)
        harvest, labelled, adapted = (
            work / f"{clip.stem}-harvest",
            work / f"{clip.stem}-labelled",
            work / f"{clip.stem}-bundle",
        )
        steps: dict[str, float] = {}
        steps["harvest"], _ = edge_tl("harvest", str(args.bundle), "--source", str(clip), "--line", line,
                                      "-o", str(harvest), "--max-frames", str(half))  # fmt: skip
        started = time.perf_counter()
        labelling = label_from_truth(harvest, truth_file)
        steps["label (from ground truth)"] = round(time.perf_counter() - started, 1)
        steps["label --export"], _ = edge_tl("label", str(harvest), "--export", str(labelled),
                                             "--bundle", str(args.bundle))  # fmt: skip
        steps["adapt"], report = edge_tl(
            "adapt", str(args.bundle), str(labelled), "-o", str(adapted), "--json"
        )
        steps["export fp32"], _ = edge_tl("export", str(adapted), "--precision", "fp32")
        scores = {}
        for name, bundle in (("before", args.bundle), ("after", adapted)):
            events = work / f"{clip.stem}-{name}.jsonl"
            edge_tl(
                "eval-counts",
                str(bundle),
                str(clip),
                str(truth_file),
                "--events",
                str(events),
                "--json",
            )
            scores[name] = second_half_scores(events, truth_file, half, labels)
        results["clips"][clip.stem] = {
            "frames": frames,
            "harvested_first_frames": half,
            "labelling": labelling,
            "adapt": json.loads(report),
            "second_half": scores,
            "seconds": steps | {"harvest to new bundle": round(sum(steps.values()), 1)},
        }
        print(
            f"{clip.stem}: second-half class accuracy (sure) {scores['before']['class_accuracy_sure']} → "
            f"{scores['after']['class_accuracy_sure']}, F1 {scores['before']['f1']:.3f} → "
            f"{scores['after']['f1']:.3f}; harvest → bundle {results['clips'][clip.stem]['seconds']['harvest to new bundle']} s"
        )
    OUT.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
