"""Two stream settings back to back at one camera count: loads of A and B alternate (A B A B
...), so a box that speeds up or slows down over the hour moves both alike. A capacity search
per setting takes ~12 minutes each and read 9 vs 11 highway cameras for KNN vs MOG2 on an
hour when decoding alone had slowed by a fifth: this separates the setting from the box.
Results to benchmarks/results/streams/<name>.json.

    .venv/bin/python benchmarks/streams_ab.py --bundle /tmp/veh \\
        --clip ../shared/data/videos/highway-720p.mp4 --cameras 10 \\
        --field motion_method --values mog2,knn --rounds 2 --name highway-ab-knn
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams_soak import bench_config  # noqa: E402  (this folder is on sys.path when run)

from edge_tl.bench.streams import StreamBenchConfig, run_load  # noqa: E402
from edge_tl.bench.system import system_info  # noqa: E402

# what each load keeps in the summary (the whole load is in the JSON)
SUMMARY = ("worst_fps", "worst_share", "cpu_cores_used", "realtime")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--cameras", type=int, required=True)
    parser.add_argument(
        "--field", required=True, help="a StreamBenchConfig field, e.g. motion_method"
    )
    parser.add_argument("--values", required=True, help="two values, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--precision", default="int8", choices=["fp32", "fp16", "int8"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "streams")
    args = parser.parse_args()
    values = args.values.split(",")
    if len(values) != 2:
        parser.error("--values takes exactly two values")
    if args.field not in {f.name for f in dataclasses.fields(StreamBenchConfig)}:
        parser.error(f"--field {args.field}: not a StreamBenchConfig field")
    base = bench_config(args)
    loads: list[dict] = []
    for round_index in range(args.rounds):
        for value in values:
            load = run_load(dataclasses.replace(base, **{args.field: value}), args.cameras)
            loads.append({"round": round_index, args.field: value, **load})
            print(
                f"round {round_index} {args.field}={value}: "
                + ", ".join(f"{k} {load[k]}" for k in SUMMARY),
                flush=True,
            )
    summary = {
        value: {key: [load[key] for load in loads if load[args.field] == value] for key in SUMMARY}
        for value in values
    }
    result = {
        "config": {k: str(v) for k, v in vars(args).items()},
        "summary": summary,
        "loads": loads,
        "system": system_info(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
