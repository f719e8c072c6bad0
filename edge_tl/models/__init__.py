"""The torch side's models: backbones by name (timm), their offline pretrained weights and
preprocessing, checkpoints, and the PyTorch inference backend (registered with the runtime by
name through the `edge_tl.backends` entry point, so the runtime never imports this package)."""

from edge_tl.models import efficientnet_lite  # noqa: F401  (registers the offline backbones)
from edge_tl.models.registry import BackboneSpec, create_backbone, get_spec, list_backbones

__all__ = ["BackboneSpec", "create_backbone", "get_spec", "list_backbones"]
