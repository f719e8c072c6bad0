"""Counting accuracy on the shared clips: `edge-tl eval-counts` on every clip that has a
`.counts.json`, one configuration for all (the stream defaults, or one `--config`), never
tuned per clip. Results go to benchmarks/results/counting/<name>.json; `--table` prints the
Markdown table of every recorded run.

    .venv/bin/python benchmarks/counting.py --bundle /tmp/veh-default --name lite2-head
    .venv/bin/python benchmarks/counting.py --table
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
OUT = ROOT / "benchmarks" / "results" / "counting"
KEEP = (
    "crossings", "sure_crossings", "counted", "matched", "missed", "spurious",
    "edge_case_counts", "recall", "precision", "f1", "class_accuracy_sure",
    "class_accuracy_all", "per_class", "confusion", "missed_frames", "spurious_frames",
    "backend", "frames", "settings", "drift_events", "camera_moved_frames", "split_frames",
    "match_window",
)  # fmt: skip


def run(bundle: Path, name: str, note: str, extra: list[str]) -> dict:
    clips = sorted(VIDEOS.glob("*.counts.json"))
    if not clips:
        sys.exit(f"no ground truth under {VIDEOS}")
    result: dict = {"name": name, "note": note, "bundle": str(bundle), "args": extra, "clips": {}}
    for truth in clips:
        clip = truth.with_name(truth.name.replace(".counts.json", ".mp4"))
        result["clips"][clip.stem] = eval_clip(bundle, clip, truth, extra)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def eval_clip(bundle: Path, clip: Path, truth: Path, extra: list[str], name: str = "") -> dict:
    """`edge-tl eval-counts` on one clip in a fresh process (the kept fields and the seconds)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "edge_tl.cli", "eval-counts", str(bundle), str(clip), str(truth),
         "--json", "-q", *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        sys.exit(done.stderr)
    report = json.loads(done.stdout)
    entry = {k: report[k] for k in KEEP}
    entry["seconds"] = round(time.perf_counter() - started, 1)
    print(
        f"{name or clip.stem}: F1 {report['f1']:.3f}, class accuracy (sure) "
        f"{report['class_accuracy_sure']:.2f}, spurious {report['spurious']}"
    )
    return entry


def table() -> str:
    runs = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))]
    clips = sorted({c for r in runs for c in r["clips"]})
    header = ["run"] + [f"{c} {m}" for c in clips for m in ("F1", "class acc.", "spurious")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in runs:
        cells = [r["name"]]
        for c in clips:
            e = r["clips"].get(c)
            cells += (
                [f"{e['f1']:.3f}", f"{e['class_accuracy_sure']:.2f}", str(e["spurious"])]
                if e
                else ["-"] * 3
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--name")
    parser.add_argument("--note", default="")
    parser.add_argument("--table", action="store_true")
    args, extra = parser.parse_known_args()
    if args.table:
        print(table())
        return
    if not args.bundle or not args.name:
        parser.error("--bundle and --name are needed to run")
    run(args.bundle, args.name, args.note, extra)


if __name__ == "__main__":
    main()
