"""Backbones by name (timm), their offline pretrained weights and preprocessing."""

from edge_tl.models.registry import BackboneSpec, create_backbone, get_spec, list_backbones

__all__ = ["BackboneSpec", "create_backbone", "get_spec", "list_backbones"]
