"""Ten minutes at the capacity load (issue 18): N paced cameras of a clip through the daemon,
RSS sampled every second, per-camera fps and capture-to-result latency over the whole window.
Results to benchmarks/results/streams/<clip>-soak-<N>cams.json.

    .venv/bin/python benchmarks/streams_soak.py --bundle /tmp/veh-prior \\
        --clip ../shared/data/videos/highway-720p.mp4 --cameras 5 --seconds 600
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_tl.bench.streams import StreamBenchConfig, run_load  # noqa: E402
from edge_tl.bench.system import system_info  # noqa: E402


def bench_config(args: argparse.Namespace, **more: object) -> StreamBenchConfig:
    """The loads' settings from the options these scripts share."""
    return StreamBenchConfig(
        args.bundle,
        args.clip,
        backend=args.backend,
        precision=args.precision,
        threads=args.threads,
        workers=args.workers,
        seconds=args.seconds,
        **more,  # type: ignore[arg-type]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--cameras", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "streams")
    args = parser.parse_args()
    config = bench_config(args, warmup_s=10)
    load = run_load(config, args.cameras)
    result = {"config": {k: str(v) for k, v in vars(args).items()}, **load, "system": system_info()}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.clip.stem}-soak-{args.cameras}cams.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in load.items() if k != "per_camera_fps"}, indent=2))


if __name__ == "__main__":
    main()
