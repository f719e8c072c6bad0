"""Named training recipes (`edge-tl train --preset NAME`); single flags override their fields.

Each recipe was chosen on the validation split and on principles, then scored once on footage
it never saw; benchmarks/results/training-generalization.md has every experiment's command and
numbers, and the measured accuracy and wall time of each preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_tl.bundle import ResizePolicy
from edge_tl.errors import EdgeTLError
from edge_tl.train.finetune import FinetuneConfig
from edge_tl.train.head import HeadConfig

__all__ = ["Recipe", "PRESETS", "DEFAULT_PRESET", "get_preset"]


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    input_size: int | None = None  # None: the backbone's own
    resize: ResizePolicy = ResizePolicy.CENTER_CROP
    head: HeadConfig = field(default_factory=HeadConfig)
    finetune: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(epochs=0))


def get_preset(name: str) -> Recipe:
    try:
        return PRESETS[name]
    except KeyError:
        raise EdgeTLError(f"unknown preset '{name}'; choose from {', '.join(PRESETS)}") from None


PRESETS: dict[str, Recipe] = {
    "frozen": Recipe(
        name="frozen",
        summary="frozen pretrained backbone + linear head on cached features (about a minute)",
    ),
}
DEFAULT_PRESET = "frozen"
