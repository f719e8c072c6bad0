"""Training-recipe experiments for new-footage accuracy (issue: accuracy that holds on new footage).

Each experiment is one `edge-tl train` command on ../shared/data/vehicles with the new-footage
folder as a --test set (scored after training, never used to choose anything). Every run's JSON
and wall time go to benchmarks/results/generalization/<name>.json; `--table` prints the
Markdown table of all recorded runs for training-generalization.md.

    .venv/bin/python benchmarks/generalization.py --run lite0-ft-camera-160
    .venv/bin/python benchmarks/generalization.py --table
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results" / "generalization"
TEST = "vehicles-newfootage"

# name → extra `edge-tl train` arguments (the dataset, -o, --test and --json are added)
EXPERIMENTS: dict[str, str] = {
    "preset-default": "",
    "preset-fast": "--preset fast",
    "lite0-frozen-224": "--preset frozen",
    "lite0-frozen-160": "--preset frozen --input-size 160",
    "lite1-frozen-240": "--preset frozen --backbone efficientnet_lite1",
    "lite2-frozen-260": "--preset frozen --backbone efficientnet_lite2",
    "lite2-frozen-260-squash": "--preset frozen --backbone efficientnet_lite2 --resize squash",
    "lite2-ft-top3-camera-260-3ep-ema": "--preset frozen --backbone efficientnet_lite2 "
    "--finetune-epochs 3 --finetune-blocks 3 --augment camera --head-lr 2e-4 --finetune-lr 1e-4 "
    "--ema 0.998 --patience 10",
    "lite0-frozen-160-views4-overhead": "--preset frozen --input-size 160 --head-views 4 "
    "--head-augment overhead",
    "lite0-ft-all-overhead-160-6ep-ema": "--preset frozen --input-size 160 --finetune-epochs 6 "
    "--finetune-blocks all --augment overhead --head-lr 5e-4 --finetune-lr 3e-4 --ema 0.998 "
    "--patience 10",
}


def run(name: str, extra: str) -> dict:
    work = Path(os.environ.get("GEN_WORK", tempfile.gettempdir())) / "edge-tl-generalization"
    # bundles stay in `work` for later evaluation (TTA, export)
    command = [
        str(ROOT / ".venv" / "bin" / "edge-tl"),
        "train",
        str(DATA / "vehicles"),
        "-o",
        str(work / name),
        "--overwrite",
        "--test",
        str(DATA / TEST),
        "--json",
        *shlex.split(extra),
    ]
    env = dict(os.environ, MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_="1073741824")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{name}: edge-tl train failed: {done.stderr.strip().splitlines()[-1]}")
    report = json.loads((work / name / "train_report.json").read_text())
    result = json.loads(done.stdout) | {
        "name": name,
        "command": "edge-tl train ../shared/data/vehicles -o OUT --test ../shared/data/"
        f"{TEST} {extra}",
        "wall_seconds": seconds,
        "finetune_history": report["finetune"]["history"],
        "seconds": report["seconds"],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def table() -> str:
    rows = [
        "| experiment | val top-1 | new-footage top-1 | new-footage car recall | lowest new-footage recall | wall time | command (after `edge-tl train vehicles -o OUT --test vehicles-newfootage`) |",
        "|---|---|---|---|---|---|---|",
    ]
    for file in sorted(OUT.glob("*.json"), key=lambda f: f.stat().st_mtime):
        r = json.loads(file.read_text())
        test = r["test_sets"][TEST]
        recall = test["per_class_recall"]
        low = min(recall, key=recall.get)
        extra = r["command"].split(TEST, 1)[1].strip()
        rows.append(
            f"| {r['name']} | {r['val']['top1']:.2%} | {test['top1']:.2%} | {recall['car']:.0%} | "
            f"{low} {recall[low]:.0%} | {r['wall_seconds'] / 60:.1f} min | "
            + (f"`{extra}` |" if extra else "(none: the default preset) |")
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", nargs="*", default=[], help=f"experiments (or all): {', '.join(EXPERIMENTS)}"
    )
    parser.add_argument("--table", action="store_true", help="print the Markdown table")
    args = parser.parse_args()
    for name in list(EXPERIMENTS) if args.run == ["all"] else args.run:
        result = run(name, EXPERIMENTS[name])
        test = result["test_sets"][TEST]
        print(
            f"{name}: val {result['val']['top1']:.2%}, {TEST} {test['top1']:.2%} "
            f"(car {test['per_class_recall']['car']:.0%}), {result['wall_seconds'] / 60:.1f} min",
            flush=True,
        )
    if args.table:
        print(table())


if __name__ == "__main__":
    main()
