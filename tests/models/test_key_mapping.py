from __future__ import annotations

import pytest

from edge_tl.models.efficientnet_lite import LITE0_STAGE_DEPTHS, map_lukemelas_keys


def test_block_names_follow_stage_layout() -> None:
    state = {
        "_conv_stem.weight": 0,
        "_blocks.0._depthwise_conv.weight": 1,
        "_blocks.0._project_conv.weight": 2,
        "_blocks.1._expand_conv.weight": 3,
        "_blocks.3._project_conv.weight": 4,
        "_blocks.15._bn2.bias": 5,
        "_fc.bias": 6,
    }
    mapped = map_lukemelas_keys(state, LITE0_STAGE_DEPTHS)
    assert mapped == {
        "conv_stem.weight": 0,
        "blocks.0.0.conv_dw.weight": 1,
        "blocks.0.0.conv_pw.weight": 2,
        "blocks.1.0.conv_pw.weight": 3,
        "blocks.2.0.conv_pwl.weight": 4,
        "blocks.6.0.bn3.bias": 5,
        "classifier.bias": 6,
    }


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(KeyError, match="_mystery"):
        map_lukemelas_keys({"_mystery.weight": 0}, LITE0_STAGE_DEPTHS)
    with pytest.raises(KeyError, match="block 16"):
        map_lukemelas_keys({"_blocks.16._bn0.weight": 0}, LITE0_STAGE_DEPTHS)
