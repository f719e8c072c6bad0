"""What machine a benchmark ran on: CPU model and the flags that decide int8/fp16 speed,
cores, memory, GPU, library versions, thread settings. Reports without this are not comparable."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any

from edge_tl import __version__
from edge_tl.bundle import library_versions

__all__ = ["system_info", "peak_rss_mb", "current_rss_mb", "free_port"]

_INTERESTING_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
    "asimd",
    "asimddp",
)


def system_info(threads: int | None = None) -> dict[str, Any]:
    cpu_model, flags = _cpu()
    info: dict[str, Any] = {
        "cpu": cpu_model,
        "cpu_flags": [f for f in _INTERESTING_FLAGS if f in flags],
        "cores_logical": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "memory_gb": _memory_gb(),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "edge_tl": __version__,
        "versions": library_versions(
            ("torch", "onnxruntime", "numpy", "cv2", "tensorrt", "tensorrt_rtx")
        ),
        "threads_requested": threads,
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "gpu": _gpu(),
    }
    return info


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def current_rss_mb(pid: int | str = "self") -> float:
    """Resident memory of this process (or of `pid`); NaN when it cannot be read (gone)."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a local server a test or benchmark starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model") and model in (
                "",
                platform.machine(),
                platform.processor(),
            ):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return model, flags


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _gpu() -> dict[str, Any] | None:
    try:
        from edge_tl.runtime.cuda import gpu_info

        gpu = gpu_info()
    except Exception:  # no cuda-python, no driver, no GPU: the report says "none"
        return None
    return {
        "name": gpu.name,
        "compute_capability": gpu.sm,
        "memory_gb": round(gpu.total_memory_bytes / 2**30, 1),
        "driver_version": gpu.driver_version,
        "cuda_runtime_version": gpu.runtime_version,
    }
