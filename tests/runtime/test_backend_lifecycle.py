"""The Backend base class owns the lifecycle: a half-done open is cleaned up, not leaked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_tl.bundle import Bundle
from edge_tl.errors import BackendError
from edge_tl.runtime.backends.base import Backend


class _HalfOpening(Backend):
    """Allocates two resources in `_open`, then fails like a TensorRT call returning None."""

    name = "half-opening"
    requires = ("numpy", "cpu")

    def __init__(self, bundle: Bundle, fail: bool) -> None:
        super().__init__(bundle)
        self.fail, self.held, self.freed = fail, [], []

    def _open(self) -> None:
        self.held.append("pinned buffer")
        self.held.append("device buffer")
        if self.fail:
            raise BackendError("set_tensor_address failed")

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return np.zeros((len(batch), 2), np.float32)

    def _close(self) -> None:
        self.freed += self.held
        self.held.clear()


@pytest.mark.slow
def test_failed_open_frees_what_it_allocated(exported_bundle: Path) -> None:
    bundle = Bundle.load(exported_bundle)
    backend = _HalfOpening(bundle, fail=True)
    with pytest.raises(BackendError, match="set_tensor_address"):
        backend.open()
    assert backend.freed == ["pinned buffer", "device buffer"] and not backend.held
    assert not backend.is_open
    with pytest.raises(BackendError, match="not opened"):
        backend.infer(backend.example_batch(1))

    working = _HalfOpening(bundle, fail=False)
    with working:
        assert working.held and not working.freed
    assert working.freed == ["pinned buffer", "device buffer"]


@pytest.mark.slow
def test_the_daemon_asks_onnxruntime_not_to_spin(exported_bundle: Path) -> None:
    """Spinning threads steal the decoder's core (benchmarks/results/ort-spinning.json): the
    daemon's sessions (shared_host) turn it off; a backend on its own keeps ORT's default."""
    from edge_tl.bundle import Bundle
    from edge_tl.runtime.backends.ort import OnnxRuntimeBackend

    def spinning(backend: OnnxRuntimeBackend) -> str | None:
        try:
            return backend._session.get_session_options().get_session_config_entry(
                "session.intra_op.allow_spinning"
            )
        except RuntimeError:  # not set: ORT's default, which spins
            return None

    bundle = Bundle.load(exported_bundle)
    with (
        OnnxRuntimeBackend(bundle, shared_host=True) as shared,
        OnnxRuntimeBackend(bundle) as alone,
    ):
        assert spinning(shared) == "0" and spinning(alone) is None
