"""The one Backend interface every inference engine implements.

The base class owns the lifecycle (open → infer → close, also as a context manager); a
backend fills in `_open`, `_infer` and `_close`. Inference before `open()` is a clear error,
a second `close()` does nothing, and an `_open` that fails half-way is followed by `_close`,
so nothing it allocated leaks (`_close` must cope with a partly opened backend).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from edge_tl.bundle import Bundle, InputSpec, Precision, RawInput
from edge_tl.errors import BackendError

__all__ = ["Backend"]

log = logging.getLogger(__name__)


class Backend(ABC):
    """Runs a bundle's model at one precision on NCHW float32 batches, returns logits."""

    name: ClassVar[str]
    requires: ClassVar[tuple[str, str]]  # (module to import, pip extra that provides it)
    runs_exported_graphs: ClassVar[bool] = True  # False: runs model.pt, never fused graphs
    auto_rank: ClassVar[int] = 50  # `auto` tries backends in ascending rank
    # True: the first batch of each new size prepares kernels for that shape (slow once); the
    # daemon runs every size up to its max_batch once before the first camera waits for one
    prepares_per_shape: ClassVar[bool] = False

    def __init__(
        self,
        bundle: Bundle,
        precision: Precision = Precision.FP32,
        threads: int | None = None,
        shared_host: bool = False,
    ) -> None:
        self.bundle = bundle
        self.precision = precision
        self.threads = threads
        # the daemon: decode and motion threads share the cores, so inference threads must not
        # spin-wait for work (a backend that has such a knob honours it)
        self.shared_host = shared_host
        self._opened = False
        self._closed = False

    @classmethod
    def cannot_serve(cls, bundle: Bundle, precision: Precision) -> str | None:
        """Why this backend cannot run `bundle` at `precision`, or None when it can."""
        return None

    @property
    def input_spec(self) -> InputSpec:
        return self.bundle.input_spec

    @property
    def raw_input(self) -> RawInput | None:
        """Set when this backend's graph takes raw uint8 NHWC pixels (fused preprocessing)."""
        return self.bundle.manifest.raw_input if self.runs_exported_graphs else None

    def example_batch(self, batch_size: int, seed: int = 0) -> np.ndarray:
        """A random batch in the format `infer` takes (for warm-up and timing)."""
        spec, rng = self.input_spec, np.random.default_rng(seed)
        if self.raw_input is not None:
            return rng.integers(0, 256, (batch_size, spec.height, spec.width, 3), dtype=np.uint8)
        return rng.standard_normal((batch_size, 3, spec.height, spec.width), dtype=np.float32)

    @property
    def is_open(self) -> bool:
        return self._opened and not self._closed

    def describe(self) -> str:
        """One line saying what actually runs (provider, device, precision)."""
        return f"{self.name} {self.precision.value}"

    @property
    def runs_on_cpu(self) -> bool:
        """True when inference runs on the host CPU (benchmarks compare such rows to the CPU's floor)."""
        return False

    def open(self) -> Backend:
        if self._opened:
            log.warning("%s: open() called twice; ignoring", self.describe())
            return self
        try:
            self._open()
        except BaseException:
            try:
                self._close()
            except Exception as exc:  # the open failure is the one to report
                log.debug("%s: cleanup after a failed open also failed: %s", self.name, exc)
            raise
        self._opened = True
        log.debug("opened %s for %s", self.describe(), self.bundle.path)
        return self

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """The head's logits, N x labels."""
        return self.infer_outputs(batch)[:, : len(self.bundle.labels)]

    def infer_with_prior(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The head's logits and, when the bundle has one, the ImageNet prior's
        log-probabilities (both N x labels), from one pass."""
        outputs = self.infer_outputs(batch)
        n = len(self.bundle.labels)
        return outputs[:, :n], outputs[:, n:] if self.bundle.manifest.prior is not None else None

    def infer_outputs(self, batch: np.ndarray) -> np.ndarray:
        """Everything the graph outputs: the logits, then the prior when there is one."""
        if not self.is_open:
            state = "closed" if self._closed else "not opened"
            raise BackendError(f"{self.name}: backend is {state}; call open() (or use `with`)")
        spec = self.input_spec
        raw = self.raw_input is not None
        expected = (spec.height, spec.width, 3) if raw else (3, spec.height, spec.width)
        dtype = np.uint8 if raw else np.float32
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected or batch.dtype != dtype:
            raise BackendError(
                f"{self.name}: input batch is {batch.dtype} {batch.shape}, expected "
                f"{np.dtype(dtype).name} (N, {', '.join(map(str, expected))})"
            )
        return self._infer(np.ascontiguousarray(batch))

    def warmup(self, iterations: int = 3, batch_size: int = 1) -> None:
        dummy = self.example_batch(batch_size)
        for _ in range(iterations):
            self.infer(dummy)

    def close(self) -> None:
        if self._opened and not self._closed:
            self._close()
        self._closed = True

    def __enter__(self) -> Backend:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray: ...

    def _close(self) -> None:  # noqa: B027  (optional hook)
        pass
