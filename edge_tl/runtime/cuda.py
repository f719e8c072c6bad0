"""CUDA through cuda-python (`cuda.bindings.runtime`), the way NVIDIA's TensorRT samples do it
since 10.14: checked calls, pinned host buffers, device buffers, one non-default stream.

Imported lazily by GPU code only; needs the [gpu] or [trt] extra. Every call returns
`(cudaError_t, *results)`; `check` turns a failure into a one-line BackendError.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_tl._deps import require
from edge_tl.errors import BackendError

__all__ = ["GpuInfo", "cudart", "check", "gpu_info", "DeviceBuffer", "PinnedBuffer", "Stream"]


def cudart() -> Any:
    """The cuda-python runtime module (`from cuda.bindings import runtime`), or a clear error."""
    try:
        from cuda.bindings import runtime  # cuda-python >= 12.6 layout
    except ImportError:
        module = require("cuda.cudart", "gpu")  # older cuda-python
        return module
    return runtime


def check(result: Any, what: str) -> Any:
    """Raise BackendError when a cuda-python call failed; return its value(s) otherwise."""
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if int(err) != 0:
        rt = cudart()
        name = rt.cudaGetErrorName(err)[1]
        name = name.decode() if isinstance(name, bytes) else str(name)
        hint = " (no NVIDIA GPU or driver on this machine)" if name in _NO_GPU_ERRORS else ""
        raise BackendError(f"CUDA {what} failed: {name}{hint}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


_NO_GPU_ERRORS = {"cudaErrorInsufficientDriver", "cudaErrorNoDevice"}


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: tuple[int, int]
    total_memory_bytes: int
    driver_version: int
    runtime_version: int

    @property
    def sm(self) -> str:
        return f"sm{self.compute_capability[0]}{self.compute_capability[1]}"


def gpu_info(index: int = 0) -> GpuInfo:
    """Name and compute capability of GPU `index`; BackendError when there is none."""
    rt = cudart()
    count = check(rt.cudaGetDeviceCount(), "device count")
    if not count or index >= count:
        raise BackendError(f"no CUDA GPU {index} on this machine ({count or 0} found)")
    props = check(rt.cudaGetDeviceProperties(index), "device properties")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return GpuInfo(
        index=index,
        name=name.rstrip("\x00"),
        compute_capability=(int(props.major), int(props.minor)),
        total_memory_bytes=int(props.totalGlobalMem),
        driver_version=int(check(rt.cudaDriverGetVersion(), "driver version")),
        runtime_version=int(check(rt.cudaRuntimeGetVersion(), "runtime version")),
    )


class Stream:
    """A non-default CUDA stream (the default one adds device-wide synchronization)."""

    def __init__(self) -> None:
        self._rt = cudart()
        self.handle = check(self._rt.cudaStreamCreate(), "stream create")

    def synchronize(self) -> None:
        check(self._rt.cudaStreamSynchronize(self.handle), "stream synchronize")

    def close(self) -> None:
        if self.handle is not None:
            check(self._rt.cudaStreamDestroy(self.handle), "stream destroy")
            self.handle = None


class DeviceBuffer:
    def __init__(self, nbytes: int) -> None:
        self._rt = cudart()
        self.nbytes = nbytes
        self.ptr: int | None = int(check(self._rt.cudaMalloc(nbytes), f"cudaMalloc({nbytes})"))

    def close(self) -> None:
        if self.ptr is not None:
            check(self._rt.cudaFree(self.ptr), "cudaFree")
            self.ptr = None


class PinnedBuffer:
    """Page-locked host memory viewed as a numpy array, so H2D/D2H copies can be asynchronous."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self._rt = cudart()
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * self.dtype.itemsize
        self.ptr: int | None = int(
            check(self._rt.cudaMallocHost(self.nbytes), f"cudaMallocHost({self.nbytes})")
        )
        raw = (ctypes.c_byte * self.nbytes).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=self.dtype).reshape(shape)

    def close(self) -> None:
        if self.ptr is not None:
            self.array = np.empty(0, self.dtype)
            check(self._rt.cudaFreeHost(self.ptr), "cudaFreeHost")
            self.ptr = None


def copy_async(dst: int, src: int, nbytes: int, to_device: bool, stream: Stream) -> None:
    rt = cudart()
    kind = (
        rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        if to_device
        else rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
    )
    check(rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream.handle), "cudaMemcpyAsync")
