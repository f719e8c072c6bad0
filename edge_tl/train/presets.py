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
    backbone: str | None = None  # None: whatever --backbone says (efficientnet_lite0 by default)
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
    # Lite2's ImageNet features hold up on new footage far better than Lite0's (95.8 % vs
    # 92.4 % top-1, car recall 94 % vs 79 %) at 2 points lower validation accuracy
    "default": Recipe(
        name="default",
        summary="frozen EfficientNet-Lite2 at 260 px + linear head (about 4 minutes on 2 cores)",
        backbone="efficientnet_lite2",
    ),
    "fast": Recipe(
        name="fast",
        summary="frozen EfficientNet-Lite0 at 224 px + linear head (about 2 minutes on 2 cores)",
        backbone="efficientnet_lite0",
    ),
    "frozen": Recipe(
        name="frozen",
        summary="the chosen backbone frozen + linear head on cached features",
    ),
}
DEFAULT_PRESET = "default"
