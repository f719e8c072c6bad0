"""Backbone registry: each backbone is a frozen BackboneSpec (timm architecture, pretrained
weight source, the preprocessing those weights expect). `create_backbone` is the only
constructor. Needs the [train] extra (torch, timm) only when a model is created.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge_tl._deps import require
from edge_tl.bundle import InputSpec, Interpolation, ResizePolicy
from edge_tl.errors import EdgeTLError

if TYPE_CHECKING:
    import torch

__all__ = ["BackboneSpec", "register", "get_spec", "list_backbones", "create_backbone"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone and the weights it starts from; the preprocessing travels with the weights."""

    name: str
    architecture: str  # timm model name
    weights: str  # human-readable source of the pretrained weights
    load_pretrained: Callable[[], dict[str, Any]]  # returns a timm-keyed state dict
    input_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: Interpolation = Interpolation.BICUBIC
    crop_pct: float = 0.875
    classifier: str = "classifier"
    license: str = "apache-2.0"

    def input_spec(
        self, input_size: int | None = None, resize: ResizePolicy | None = None
    ) -> InputSpec:
        size = input_size or self.input_size
        return InputSpec(
            height=size,
            width=size,
            mean=self.mean,
            std=self.std,
            interpolation=self.interpolation,
            crop_pct=self.crop_pct,
            resize=resize or ResizePolicy.CENTER_CROP,
        )


_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone '{spec.name}' is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones(pattern: str = "*") -> list[str]:
    return sorted(name for name in _REGISTRY if fnmatch.fnmatch(name, pattern))


def get_spec(name: str) -> BackboneSpec:
    _ensure_builtin_specs()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise EdgeTLError(
            f"unknown backbone '{name}'; known (offline weights): {', '.join(list_backbones())}"
        ) from None


def create_backbone(name: str, num_classes: int, pretrained: bool = True) -> torch.nn.Module:
    """Build `name` with a fresh `num_classes` head; with `pretrained`, load every other weight.

    Transfer learning as a loading rule (as timm's builder does): the pretrained classifier is
    dropped because its shape is for ImageNet, everything else must load exactly.
    """
    spec = get_spec(name)
    timm = require("timm", "train")
    model = timm.create_model(spec.architecture, pretrained=False, num_classes=num_classes)
    if pretrained:
        state = spec.load_pretrained()
        state = {k: v for k, v in state.items() if not k.startswith(spec.classifier + ".")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        head_keys = {k for k in model.state_dict() if k.startswith(spec.classifier + ".")}
        if unexpected or set(missing) - head_keys:
            raise EdgeTLError(
                f"pretrained weights for '{name}' ({spec.weights}) do not fit "
                f"{spec.architecture}: missing {sorted(set(missing) - head_keys)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}"
            )
        log.info("loaded %s weights from %s; new %d-class head", name, spec.weights, num_classes)
    return model


def _ensure_builtin_specs() -> None:
    if not _REGISTRY:
        import edge_tl.models.efficientnet_lite  # noqa: F401  (registers on import)
