"""ONNX Runtime's spinning threads in the daemon (issue 17): the same 720p clip, whole-frame
classification, decode sharing the 2 cores with inference, with `allow_spinning` on (ORT's
default) and off (what the daemon now asks for). Alternating runs; results to
benchmarks/results/ort-spinning.json.

    .venv/bin/python benchmarks/spinning.py --bundle /tmp/veh-prior --clip ../shared/data/videos/highway-720p.mp4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_tl.runtime import daemon  # noqa: E402
from edge_tl.runtime.backends import create_backend  # noqa: E402
from edge_tl.runtime.config import StreamConfig  # noqa: E402
from edge_tl.runtime.sinks import Sink  # noqa: E402


class _Latency(Sink):
    def __init__(self) -> None:
        self.total_ms: list[float] = []

    def emit(self, event: dict) -> None:
        if event["kind"] == "class":
            self.total_ms.append(event["latency_ms"]["total"])


def run(bundle: Path, clip: Path, spinning: bool, threads: int) -> dict:
    def backend(*args, **kwargs):  # type: ignore[no-untyped-def]
        return create_backend(*args, **(kwargs | {"shared_host": not spinning}))

    daemon.create_backend = backend  # the daemon's one call site
    sink = _Latency()
    started = time.perf_counter()
    _, state = daemon.run_one_stream(
        bundle, StreamConfig(name="clip", source=str(clip), mode="frame"), [sink], "onnxruntime",
        threads=threads,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    return {
        "fps": round(state["frames"] / seconds, 1),
        "p50_total_ms": round(float(np.median(sink.total_ms)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list] = {"spinning on (ORT default)": [], "spinning off (daemon)": []}
    for _ in range(args.repeats):
        for name, spinning in (
            ("spinning on (ORT default)", True),
            ("spinning off (daemon)", False),
        ):
            runs[name].append(run(args.bundle, args.clip, spinning, args.threads))
            print(name, runs[name][-1])
    result = {
        "clip": str(args.clip), "bundle": str(args.bundle), "threads": args.threads, "runs": runs,
        "median_fps": {k: float(np.median([r["fps"] for r in v])) for k, v in runs.items()},
    }  # fmt: skip
    out = ROOT / "benchmarks" / "results" / "ort-spinning.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(result["median_fps"])


if __name__ == "__main__":
    main()
