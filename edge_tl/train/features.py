"""Backbone features for the frozen-backbone phase, computed once and cached in memory.

Images go through `edge_tl.preprocess`, the exact code the runtime serves with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_tl._deps import require
from edge_tl.bundle import InputSpec
from edge_tl.images import load_image
from edge_tl.preprocess import preprocess
from edge_tl.progress import track

if TYPE_CHECKING:
    import torch

__all__ = ["extract_features", "iter_batches"]


def iter_batches(items: Sequence[Path], batch_size: int) -> list[Sequence[Path]]:
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def extract_features(
    model: torch.nn.Module,
    paths: Sequence[Path],
    spec: InputSpec,
    batch_size: int = 32,
    description: str = "features",
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Pooled pre-logit features (N, D) of `model` (timm) for the images at `paths`, each
    passed through `transform` (an augmentation, say) after decoding when one is given."""
    torch = require("torch", "train")
    model = model.eval().to(memory_format=torch.channels_last)
    chunks = []
    with torch.inference_mode():
        for batch_paths in track(iter_batches(paths, batch_size), description):
            images = [load_image(p) for p in batch_paths]
            batch = preprocess([transform(i) for i in images] if transform else images, spec)
            x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
            features = model.forward_head(model.forward_features(x), pre_logits=True)
            chunks.append(features.float().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, model.num_features), np.float32)
