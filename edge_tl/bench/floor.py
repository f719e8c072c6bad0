"""The physical floor of a CPU for a model: the multiply-accumulates of its ONNX graph divided
by the rate at which the cores can do fp32 multiply-accumulates. No backend can beat it at fp32;
a row's "x of floor" says how much of the machine a backend leaves on the table.

The rate is measured, not read from a spec sheet: a large fp32 GEMM through NumPy's BLAS is the
best sustained FMA rate a program gets on these cores (turbo, thermal limits and the vector
units actually present included). Depthwise convolutions cannot reach it (too little reuse), so
a real network's floor is optimistic by design."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl._deps import is_available
from edge_tl.errors import EdgeTLError

__all__ = ["CpuFloor", "graph_macs", "measure_fp32_mac_rate", "cpu_floor"]


@dataclass(frozen=True)
class CpuFloor:
    macs_per_image: int
    fp32_gmacs_per_s: float  # sustained, measured with a GEMM on the same threads
    method: str

    def floor_ms(self, batch: int) -> float:
        return self.macs_per_image * batch / (self.fp32_gmacs_per_s * 1e9) * 1e3

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"floor_ms_b1": round(self.floor_ms(1), 3)}


def graph_macs(onnx_path: Path) -> int:
    """Multiply-accumulates per image of the Conv, Gemm and MatMul nodes of an ONNX graph
    (everything else — activations, pooling, adds — is memory traffic, not FMAs)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    graph = model.graph
    shapes = {
        v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim]  # batch → 1
        for v in (*graph.value_info, *graph.input, *graph.output)
    }
    shapes |= {t.name: list(t.dims) for t in graph.initializer}
    macs = 0
    for node in graph.node:
        if node.op_type == "Conv":
            weight, out = shapes.get(node.input[1]), shapes.get(node.output[0])
            if weight is None or out is None:
                raise EdgeTLError(f"{onnx_path}: no shape for Conv node '{node.name}'")
            # out elements × (input channels per group × kernel area)
            macs += int(np.prod(out)) * int(np.prod(weight[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
            if a is None or out is None:
                raise EdgeTLError(f"{onnx_path}: no shape for {node.op_type} node '{node.name}'")
            macs += int(np.prod(out)) * a[-1]
    return macs


def measure_fp32_mac_rate(size: int = 1024, repeats: int = 8) -> float:
    """Best sustained fp32 GEMM rate of NumPy's BLAS on this process's threads, in GMAC/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm the BLAS threads and caches
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return size**3 / best / 1e9


def cpu_floor(onnx_path: Path) -> CpuFloor:
    if not is_available("onnx"):
        raise EdgeTLError(
            "the CPU floor counts the graph's MACs with the `onnx` package: pip install 'edge-tl[train]'"
        )
    return CpuFloor(
        macs_per_image=graph_macs(onnx_path),
        fp32_gmacs_per_s=round(measure_fp32_mac_rate(), 2),
        method="Conv/Gemm/MatMul MACs of fp32.onnx ÷ best fp32 GEMM rate of NumPy's BLAS (1024³)",
    )
