"""Remote inference through a real Triton server vs local ONNX Runtime (issue 19): the bundle
exported with `edge-tl export-triton --flavour python`, served by the tritonserver of the
nvidia-pytriton wheel on 127.0.0.1, classified through the kserve backend over gRPC and HTTP;
batch 1 and batch 8, same images, same process. Also the top-1 agreement with local ORT on the
bundle's validation split. Results to benchmarks/results/remote-triton.{json,md}.

    .venv/bin/python benchmarks/remote.py --bundle /tmp/veh-prior
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_tl.bench.system import free_port, system_info  # noqa: E402
from edge_tl.bench.triton_server import start_tritonserver  # noqa: E402
from edge_tl.bundle import Bundle  # noqa: E402
from edge_tl.evaluate import validation_images  # noqa: E402
from edge_tl.images import load_image  # noqa: E402
from edge_tl.preprocess import preprocess  # noqa: E402
from edge_tl.runtime.backends import create_backend  # noqa: E402
from edge_tl.timing import LatencyStats, time_calls  # noqa: E402


def measure(bundle: Bundle, spec: str, batch: np.ndarray, iterations: int) -> dict:
    with create_backend(bundle, spec) as backend:
        stats = LatencyStats.from_samples(time_calls(backend.infer, batch, 5, iterations))
        return {
            "backend": backend.describe(),
            "batch": len(batch),
            "p50_ms": round(stats.p50_ms, 3),
            "p90_ms": round(stats.p90_ms, 3),
            "images_per_s": round(len(batch) * 1e3 / stats.mean_ms, 1),
        }


def top1(bundle: Bundle, spec: str, images: np.ndarray) -> np.ndarray:
    with create_backend(bundle, spec) as backend:
        return np.concatenate(
            [backend.infer(images[i : i + 32]).argmax(1) for i in range(0, len(images), 32)]
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    bundle = Bundle.load(args.bundle)
    val = validation_images(bundle)
    images = preprocess([load_image(p) for p in val.paths], bundle.input_spec)
    rows, agreement = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "models"
        for delay in (0, 2000):  # dynamic batching's queue delay: none, and the default 2 ms
            subprocess.run(
                [sys.executable, "-m", "edge_tl.cli", "export-triton", str(args.bundle),
                 str(repo), "--flavour", "python", "--name", f"delay{delay}",
                 "--queue-delay-us", str(delay), "--threads", "2"],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        # the same model answering zeros: what the protocol and Triton's python backend cost alone
        subprocess.run(
            [sys.executable, "-m", "edge_tl.cli", "export-triton", str(args.bundle), str(repo),
             "--flavour", "python", "--name", "transport", "--queue-delay-us", "0"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        model_py = repo / "transport_fp32" / "1" / "model.py"
        code = model_py.read_text()
        run = "self.session.run([self.output_name], {self.input_name: np.concatenate(arrays)})[0]"
        assert run in code, "the generated model.py changed: update this benchmark"
        width = len(bundle.labels) * (2 if bundle.manifest.prior is not None else 1)
        zeros = f"np.zeros((sum(map(len, arrays)), {width}), np.float32)"
        model_py.write_text(code.replace(run, zeros))
        http, grpc = free_port(), free_port()
        server = start_tritonserver(repo, http, grpc)
        try:
            for batch_size in (1, 8):
                batch = images[:batch_size]
                rows.append(measure(bundle, "onnxruntime", batch, args.iters))
                for model in ("delay0", "delay2000", "transport"):
                    for scheme, port in (("kserve", grpc), ("kserve+http", http)):
                        spec = f"{scheme}://127.0.0.1:{port}/{model}_fp32"
                        row = measure(bundle, spec, batch, args.iters)
                        rows.append(row | {"model": model})
            local = top1(bundle, "onnxruntime", images)
            for scheme, port in (("kserve", grpc), ("kserve+http", http)):
                remote = top1(bundle, f"{scheme}://127.0.0.1:{port}/delay0_fp32", images)
                agreement[scheme] = float((remote == local).mean())
            truth = np.asarray(val.labels)
            accuracy = {
                "local": float((local == truth).mean()),
                "remote": float((remote == truth).mean()),
            }
        finally:
            server.terminate()
            server.wait()
    local_b1 = next(r["p50_ms"] for r in rows if r["batch"] == 1 and "kserve" not in r["backend"])
    for row in rows:
        if row["batch"] == 1 and row.get("model", "transport") != "transport":
            row["overhead_ms_vs_local"] = round(row["p50_ms"] - local_b1, 3)
    result = {
        "bundle": str(args.bundle),
        "images": len(images),
        "rows": rows,
        "top1_agreement_with_local": agreement,
        "top1": accuracy,
        "system": system_info(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "remote-triton.json").write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(row)
    print(agreement, accuracy)


if __name__ == "__main__":
    main()
