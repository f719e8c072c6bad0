"""The naive PyTorch baseline, run in a fresh process as a user would first try it: eager mode,
NCHW, `torch.no_grad()`, default glibc malloc, default threads. Prints JSON samples.

    python -m edge_tl.bench.naive BUNDLE --batch 1 --warmup 10 --iters 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["run_naive_torch"]


def run_naive_torch(
    bundle: Path, batch: int, warmup: int, iterations: int, threads: int | None
) -> dict[str, Any]:
    """Samples (ms) from a fresh interpreter without edge-tl's malloc tuning."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    command = [
        sys.executable,
        "-m",
        "edge_tl.bench.naive",
        str(bundle),
        "--batch",
        str(batch),
        "--warmup",
        str(warmup),
        "--iters",
        str(iterations),
    ]
    if threads:
        command += ["--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode != 0:
        from edge_tl.errors import EdgeTLError

        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise EdgeTLError(f"naive PyTorch baseline failed: {last}")
    return json.loads(result.stdout)


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    import torch

    from edge_tl.bundle import ArtifactKind, Bundle
    from edge_tl.models.checkpoint import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = Bundle.load(args.bundle)
    t0 = time.perf_counter()
    model = load_model(bundle.artifact_path(ArtifactKind.TORCH)).eval()
    load_seconds = time.perf_counter() - t0
    spec = bundle.input_spec
    x = torch.randn(args.batch, 3, spec.height, spec.width)
    samples = []
    with torch.no_grad():
        for i in range(args.warmup + args.iters):
            start = time.perf_counter_ns()
            model(x)
            if i >= args.warmup:
                samples.append((time.perf_counter_ns() - start) / 1e6)
    print(
        json.dumps(
            {
                "samples_ms": samples,
                "load_seconds": load_seconds,
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    _main()
