"""Which TensorRT is installed, a logger that keeps messages for error reports, and the rule
that decides whether a plan may be loaded here. One code path for `tensorrt` (10.x/11.x,
datacenter and Jetson) and `tensorrt_rtx` (RTX GPUs, ahead-of-time builds on any machine).

Imports TensorRT only inside functions.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from edge_tl.errors import MissingDependencyError

__all__ = ["FLAVOURS", "import_tensorrt", "make_logger", "EngineTarget", "engine_mismatch"]

# flavour → (module, pip extra)
FLAVOURS: dict[str, tuple[str, str]] = {
    "tensorrt": ("tensorrt", "trt"),
    "tensorrt_rtx": ("tensorrt_rtx", "trt-rtx"),
}


def import_tensorrt(flavour: str = "auto") -> tuple[str, ModuleType]:
    """(flavour, module); `auto` prefers datacenter/Jetson TensorRT, then TensorRT-RTX."""
    if flavour != "auto" and flavour not in FLAVOURS:
        raise MissingDependencyError(
            f"unknown TensorRT flavour '{flavour}'; choose auto, {', '.join(FLAVOURS)}"
        )
    candidates = list(FLAVOURS) if flavour == "auto" else [flavour]
    failures = []
    for name in candidates:
        module, extra = FLAVOURS[name]
        try:
            return name, importlib.import_module(module)
        except ImportError as exc:
            failures.append(f"{module} ({exc}; pip install 'edge-tl[{extra}]')")
    raise MissingDependencyError("no TensorRT is importable: " + "; ".join(failures))


def make_logger(trt: ModuleType, min_severity: Any = None) -> Any:
    """An ILogger that keeps warnings and errors, so a failed build can say why in one line."""

    class _KeepingLogger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[tuple[Any, str]] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity <= (
                min_severity if min_severity is not None else trt.ILogger.Severity.WARNING
            ):
                self.messages.append((severity, msg))

        def errors(self) -> list[str]:
            worst = (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR)
            return [msg for severity, msg in self.messages if severity in worst]

    return _KeepingLogger()


@dataclass(frozen=True)
class EngineTarget:
    """What a plan is tied to: TensorRT flavour and exact version, and a GPU architecture."""

    flavour: str
    version: str
    sm: str  # e.g. "sm86"
    gpu_name: str | None = None
    hardware_compatible: bool = False  # built with HardwareCompatibilityLevel.AMPERE_PLUS
    version_compatible: bool = False  # built with BuilderFlag.VERSION_COMPATIBLE


def engine_mismatch(built_for: EngineTarget, here: EngineTarget) -> str | None:
    """Why a plan built for `built_for` must not be loaded `here`, or None when it may."""
    problems = []
    same_major = built_for.version.split(".")[0] == here.version.split(".")[0]
    if built_for.flavour != here.flavour:
        problems.append(f"it was built with {built_for.flavour}, this runtime is {here.flavour}")
    elif built_for.version != here.version and not (built_for.version_compatible and same_major):
        problems.append(
            f"it was built with {built_for.flavour} {built_for.version}, this is {here.version}"
        )
    ampere_plus = built_for.hardware_compatible and _sm_number(here.sm) >= 80
    if built_for.sm != here.sm and not ampere_plus:
        gpu = f" ({here.gpu_name})" if here.gpu_name else ""
        problems.append(f"it targets {built_for.sm}, this GPU is {here.sm}{gpu}")
    return "; ".join(problems) or None


def _sm_number(sm: str) -> int:
    digits = "".join(ch for ch in sm if ch.isdigit())
    return int(digits) if digits else 0
