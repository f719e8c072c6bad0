"""cuda-python helpers: real calls. Without a GPU they must fail with one clear line."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "cuda.bindings", reason="cuda-python not installed (pip install 'edge-tl[gpu]')"
)

from edge_tl.errors import BackendError  # noqa: E402
from edge_tl.runtime import cuda  # noqa: E402


def _gpu_present() -> bool:
    count = cuda.cudart().cudaGetDeviceCount()
    return int(count[0]) == 0 and count[1] > 0


def test_no_gpu_is_a_clear_error() -> None:
    if _gpu_present():
        pytest.skip("this machine has a GPU")
    with pytest.raises(
        BackendError, match=r"^CUDA device count failed: cudaError\w+ \(no NVIDIA GPU or driver"
    ):
        cuda.gpu_info()
    with pytest.raises(BackendError, match="cudaMalloc"):
        cuda.DeviceBuffer(1024)


@pytest.mark.gpu
def test_buffers_round_trip_on_a_gpu() -> None:
    if not _gpu_present():
        pytest.skip("needs an NVIDIA GPU: pinned/device buffers and streams cannot run on CPU")
    import numpy as np

    info = cuda.gpu_info()
    assert info.sm.startswith("sm") and info.total_memory_bytes > 0
    stream = cuda.Stream()
    host_in, host_out = cuda.PinnedBuffer((4, 8), np.float32), cuda.PinnedBuffer((4, 8), np.float32)
    device = cuda.DeviceBuffer(host_in.nbytes)
    try:
        host_in.array[:] = np.arange(32, dtype=np.float32).reshape(4, 8)
        cuda.copy_async(device.ptr, host_in.ptr, host_in.nbytes, True, stream)
        cuda.copy_async(host_out.ptr, device.ptr, host_in.nbytes, False, stream)
        stream.synchronize()
        np.testing.assert_array_equal(host_out.array, host_in.array)
    finally:
        for item in (device, host_in, host_out, stream):
            item.close()
