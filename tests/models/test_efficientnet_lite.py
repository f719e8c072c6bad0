"""The offline Lite0 weights are mapped correctly: proven by predictions on real photos."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
skimage_data = pytest.importorskip("skimage.data")

from edge_tl.bundle import ColorOrder  # noqa: E402
from edge_tl.models.registry import create_backbone, get_spec  # noqa: E402
from edge_tl.runtime.preprocess import preprocess  # noqa: E402

ESPRESSO = 967
CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat


@pytest.fixture(scope="module")
def imagenet_model() -> torch.nn.Module:
    model = create_backbone("efficientnet_lite0", num_classes=1000, pretrained=False)
    model.load_state_dict(get_spec("efficientnet_lite0").load_pretrained(), strict=True)
    return model.eval()


def _probabilities(model: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    spec = get_spec("efficientnet_lite0").input_spec()
    batch = preprocess([rgb], spec, source_order=ColorOrder.RGB)
    with torch.inference_mode():
        return torch.softmax(model(torch.from_numpy(batch)), dim=1)[0].numpy()


def test_coffee_is_espresso(imagenet_model: torch.nn.Module) -> None:
    probabilities = _probabilities(imagenet_model, skimage_data.coffee())
    assert int(probabilities.argmax()) == ESPRESSO
    assert probabilities[ESPRESSO] > 0.5


def test_chelsea_is_a_cat(imagenet_model: torch.nn.Module) -> None:
    probabilities = _probabilities(imagenet_model, skimage_data.chelsea())
    assert int(probabilities.argmax()) in CATS


def test_transfer_learning_keeps_backbone_and_replaces_head(
    imagenet_model: torch.nn.Module,
) -> None:
    model = create_backbone("efficientnet_lite0", num_classes=6, pretrained=True)
    assert model.classifier.out_features == 6
    torch.testing.assert_close(model.conv_stem.weight, imagenet_model.conv_stem.weight)
    torch.testing.assert_close(
        model.blocks[6][0].conv_pwl.weight, imagenet_model.blocks[6][0].conv_pwl.weight
    )


def test_unknown_backbone_lists_known_ones() -> None:
    from edge_tl.errors import EdgeTLError

    with pytest.raises(EdgeTLError, match="unknown backbone 'resnet9000'.*efficientnet_lite0"):
        get_spec("resnet9000")
