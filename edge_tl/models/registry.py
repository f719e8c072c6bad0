"""Backbone registry: each backbone is a frozen BackboneSpec (timm architecture, pretrained
weight source, the preprocessing those weights expect). `create_backbone` is the only
constructor. Needs the [train] extra (torch, timm) only when a model is created.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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


TIMM_PREFIX = "timm:"


def get_spec(name: str) -> BackboneSpec:
    """A registered backbone, or `timm:<model>` for any timm model (hub weights, needs network)."""
    if name.startswith(TIMM_PREFIX):
        return _timm_spec(name[len(TIMM_PREFIX) :])
    try:
        return _REGISTRY[name]
    except KeyError:
        raise EdgeTLError(
            f"unknown backbone '{name}'; known (offline weights): {', '.join(list_backbones())}; "
            f"or {TIMM_PREFIX}<timm model name> with hub weights"
        ) from None


def _timm_spec(model_name: str) -> BackboneSpec:
    timm = require("timm", "train")
    if not timm.is_model(model_name):
        raise EdgeTLError(
            f"timm has no model '{model_name}' (try timm.list_models('*{model_name[:6]}*'))"
        )
    config = timm.create_model(model_name, pretrained=False).pretrained_cfg

    def download() -> dict[str, Any]:
        offline_choices = f"offline choices: {', '.join(list_backbones())}, or --weights PATH to a local checkpoint"
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
            # timm would still try its legacy URLs (a long wait on a closed network): don't
            raise EdgeTLError(
                f"cannot download pretrained weights for '{model_name}' (HF_HUB_OFFLINE is set); {offline_choices}"
            )
        try:
            return timm.create_model(model_name, pretrained=True).state_dict()
        except Exception as exc:  # no network, hub down, gated weights
            raise EdgeTLError(
                f"cannot download pretrained weights for '{model_name}' ({type(exc).__name__}); {offline_choices}"
            ) from exc

    size = config.get("input_size", (3, 224, 224))[-1]
    interpolation = config.get("interpolation", "bicubic")
    return BackboneSpec(
        name=TIMM_PREFIX + model_name,
        architecture=model_name,
        weights=f"timm hub: {config.get('hf_hub_id') or model_name}",
        load_pretrained=download,
        input_size=size,
        mean=tuple(config.get("mean", (0.485, 0.456, 0.406))),  # type: ignore[arg-type]
        std=tuple(config.get("std", (0.229, 0.224, 0.225))),  # type: ignore[arg-type]
        interpolation=Interpolation(interpolation)
        if interpolation in Interpolation._value2member_map_
        else Interpolation.BICUBIC,
        crop_pct=float(config.get("crop_pct", 0.875)),
        classifier=config.get("classifier", "classifier"),
        license=config.get("license", "unknown"),
    )


def load_weights_file(path: Path) -> dict[str, Any]:
    """A local checkpoint: a state dict, or a dict holding one under 'state_dict' or 'model'."""
    torch = require("torch", "train")
    if not path.is_file():
        raise EdgeTLError(f"{path}: no such weights file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EdgeTLError(
            f"{path}: not a readable PyTorch checkpoint ({str(exc).splitlines()[0]})"
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
    if not isinstance(payload, dict) or not payload:
        raise EdgeTLError(f"{path}: expected a state dict (or one under 'state_dict'/'model')")
    return {k.removeprefix("module."): v for k, v in payload.items()}


def create_backbone(
    name: str, num_classes: int, pretrained: bool = True, weights_file: Path | None = None
) -> torch.nn.Module:
    """Build `name` with a fresh `num_classes` head; with `pretrained`, load every other weight.

    Transfer learning as a loading rule (as timm's builder does): the pretrained classifier is
    dropped because its shape is for ImageNet, everything else must load exactly.
    """
    spec = get_spec(name)
    timm = require("timm", "train")
    model = timm.create_model(spec.architecture, pretrained=False, num_classes=num_classes)
    if pretrained or weights_file is not None:
        state = (
            load_weights_file(weights_file) if weights_file is not None else spec.load_pretrained()
        )
        state = {k: v for k, v in state.items() if not k.startswith(spec.classifier + ".")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        head_keys = {k for k in model.state_dict() if k.startswith(spec.classifier + ".")}
        if unexpected or set(missing) - head_keys:
            raise EdgeTLError(
                f"pretrained weights for '{name}' ({weights_file or spec.weights}) do not fit "
                f"{spec.architecture}: missing {sorted(set(missing) - head_keys)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}"
            )
        log.info(
            "loaded %s weights from %s; new %d-class head",
            name,
            weights_file or spec.weights,
            num_classes,
        )
    return model
