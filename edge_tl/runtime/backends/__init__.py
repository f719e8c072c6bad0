"""Backend registry: name → Backend class, and `auto` selection with the reason logged.

No if/elif over formats elsewhere: callers ask for a backend by name (or "auto").
"""

from __future__ import annotations

import logging

from edge_tl._deps import is_available
from edge_tl.bundle import Bundle, Precision
from edge_tl.errors import BackendError
from edge_tl.runtime.backends.base import Backend
from edge_tl.runtime.backends.ort import OnnxRuntimeBackend
from edge_tl.runtime.backends.pytorch import TorchBackend
from edge_tl.runtime.backends.tensorrt import TensorRTBackend

__all__ = ["Backend", "BACKENDS", "available_backends", "create_backend", "select_backend"]

log = logging.getLogger(__name__)

# In order of preference for `auto`.
BACKENDS: dict[str, type[Backend]] = {
    TensorRTBackend.name: TensorRTBackend,
    OnnxRuntimeBackend.name: OnnxRuntimeBackend,
    TorchBackend.name: TorchBackend,
}


def available_backends() -> list[str]:
    """Backends whose library is installed (not whether the bundle has what they need)."""
    return [name for name, cls in BACKENDS.items() if is_available(cls.requires[0])]


def select_backend(bundle: Bundle, precision: Precision) -> str:
    """The first installed backend that can serve `bundle` at `precision`, with the reason logged."""
    reasons = []
    for name, cls in BACKENDS.items():
        module, extra = cls.requires
        if not is_available(module):
            reasons.append(f"{name}: '{module}' not installed (edge-tl[{extra}])")
            continue
        problem = cls.cannot_serve(bundle, precision)
        if problem:
            reasons.append(f"{name}: {problem}")
            continue
        log.info("backend auto → %s (%s)", name, "; ".join(reasons) or "first choice")
        return name
    raise BackendError(
        f"no backend can serve {bundle.path} at {precision.value}: {'; '.join(reasons)}"
    )


def create_backend(
    bundle: Bundle,
    name: str = "auto",
    precision: Precision = Precision.FP32,
    threads: int | None = None,
) -> Backend:
    """An unopened backend; use it as `with create_backend(...) as backend:`."""
    if name == "auto":
        name = select_backend(bundle, precision)
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise BackendError(
            f"unknown backend '{name}'; choose one of: auto, {', '.join(BACKENDS)}"
        ) from None
    problem = cls.cannot_serve(bundle, precision)
    if problem:
        raise BackendError(f"backend {name}: {problem}")
    return cls(bundle, precision, threads=threads)
