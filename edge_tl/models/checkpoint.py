"""model.pt: the fine-tuned weights plus what is needed to rebuild the model (for re-export)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_tl._deps import require
from edge_tl.errors import BundleError

if TYPE_CHECKING:
    import torch

__all__ = ["save_model", "load_model", "load_prior_state", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "edge-tl/model-v1"


def save_model(
    model: torch.nn.Module,
    path: Path,
    backbone: str,
    num_classes: int,
    prior: torch.nn.Module | dict[str, Any] | None = None,
) -> None:
    """The weights, what rebuilds the model, and the ImageNet prior head when there is one
    (a module, or the state `load_prior_state` read from another model.pt)."""
    torch = require("torch", "train")
    from edge_tl.models.prior import prior_state

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "backbone": backbone,
        "num_classes": num_classes,
        "state_dict": state,
        "prior": prior if isinstance(prior, dict) or prior is None else prior_state(prior),  # type: ignore[arg-type]
    }
    torch.save(payload, path)


def load_prior_state(path: Path) -> dict[str, Any] | None:
    """The ImageNet prior head's state stored in a model.pt, if any."""
    return _payload(path).get("prior")


def _payload(path: Path) -> dict[str, Any]:
    torch = require("torch", "train")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors of a damaged file
        raise BundleError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise BundleError(f"{path}: not an edge-tl model checkpoint (field 'format' missing)")
    return payload


def load_model(path: Path, with_prior: bool = False) -> torch.nn.Module:
    """Rebuild the model saved by `save_model` (no pretrained download: weights come from the
    file). With `with_prior` and a prior in the file, the model outputs its logits followed by
    the prior's log-probabilities, as the exported graphs do."""
    from edge_tl.models.registry import create_backbone

    payload = _payload(path)
    model = create_backbone(payload["backbone"], payload["num_classes"], pretrained=False)
    model.load_state_dict(payload["state_dict"], strict=True)
    if with_prior and payload.get("prior") is not None:
        from edge_tl.models.prior import WithPrior, prior_from_state

        return WithPrior(model, prior_from_state(payload["prior"]))
    return model
