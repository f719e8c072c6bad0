"""Backend registry: name → Backend class, and `auto` selection with the reason logged.

Built-in device backends (TensorRT, ONNX Runtime) register here; others, such as the PyTorch
backend on the torch side, are found through the `edge_tl.backends` entry point group, so the
runtime depends on none of them. No if/elif over formats elsewhere: callers ask for a backend by
name (or "auto").
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from edge_tl._deps import is_available
from edge_tl.bundle import Bundle, Precision
from edge_tl.errors import BackendError
from edge_tl.runtime.backends.base import Backend
from edge_tl.runtime.backends.kserve import KServeBackend, parse_remote
from edge_tl.runtime.backends.openvino import OpenVINOBackend, OpenVINOBf16Backend
from edge_tl.runtime.backends.ort import OnnxRuntimeBackend
from edge_tl.runtime.backends.tensorrt import TensorRTBackend

__all__ = [
    "Backend",
    "ENTRY_POINT_GROUP",
    "register_backend",
    "backend_classes",
    "available_backends",
    "create_backend",
    "select_backend",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "edge_tl.backends"
_REGISTRY: dict[str, type[Backend]] = {}
_plugins_loaded = False


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Make `cls` available by its `name` (usable as a class decorator)."""
    known = _REGISTRY.get(cls.name)
    if known is not None and known is not cls:
        raise ValueError(f"backend '{cls.name}' is registered twice ({known} and {cls})")
    _REGISTRY[cls.name] = cls
    return cls


def backend_classes() -> dict[str, type[Backend]]:
    """Every registered backend by name, in the order `auto` tries them."""
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                register_backend(entry.load())
            except Exception as exc:  # a broken plugin must not take the built-in backends down
                log.warning("backend plugin '%s' (%s) not loaded: %s", entry.name, entry.value, exc)
    return dict(sorted(_REGISTRY.items(), key=lambda item: item[1].auto_rank))


def available_backends() -> list[str]:
    """Backends whose library is installed (not whether the bundle has what they need)."""
    return [name for name, cls in backend_classes().items() if is_available(cls.requires[0])]


def select_backend(bundle: Bundle, precision: Precision) -> str:
    """The first installed backend that can serve `bundle` at `precision`, with the reason logged."""
    reasons = []
    for name, cls in backend_classes().items():
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
    shared_host: bool = False,
) -> Backend:
    """An unopened backend; use it as `with create_backend(...) as backend:`. `shared_host`:
    other busy threads share the cores (the daemon), see Backend.shared_host. A URL such as
    kserve://HOST:PORT/MODEL names a remote server (KServeBackend)."""
    target = parse_remote(name)
    if target is not None:
        return KServeBackend(bundle, precision, threads, shared_host, target=target)
    if name == "auto":
        name = select_backend(bundle, precision)
    classes = backend_classes()
    try:
        cls = classes[name]
    except KeyError:
        raise BackendError(
            f"unknown backend '{name}'; choose one of: auto, {', '.join(classes)}, "
            "kserve://HOST:PORT/MODEL"
        ) from None
    problem = cls.cannot_serve(bundle, precision)
    if problem:
        raise BackendError(f"backend {name}: {problem}")
    return cls(bundle, precision, threads=threads, shared_host=shared_host)


register_backend(TensorRTBackend)
register_backend(OpenVINOBackend)
register_backend(OnnxRuntimeBackend)
register_backend(OpenVINOBf16Backend)
register_backend(KServeBackend)
