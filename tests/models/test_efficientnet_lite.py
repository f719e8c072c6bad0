"""The offline Lite0 weights are mapped correctly: proven by predictions on real photos."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
skimage_data = pytest.importorskip("skimage.data")

from edge_tl.bundle import ColorOrder  # noqa: E402
from edge_tl.models.registry import create_backbone, get_spec  # noqa: E402
from edge_tl.preprocess import preprocess  # noqa: E402

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


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_larger_offline_backbones_are_mapped_right(name: str) -> None:
    spec = get_spec(name)
    model = create_backbone(name, num_classes=1000, pretrained=False)
    model.load_state_dict(spec.load_pretrained(), strict=True)
    model.eval()
    with torch.inference_mode():
        coffee = torch.from_numpy(
            preprocess([skimage_data.coffee()], spec.input_spec(), source_order=ColorOrder.RGB)
        )
        chelsea = torch.from_numpy(
            preprocess([skimage_data.chelsea()], spec.input_spec(), source_order=ColorOrder.RGB)
        )
        assert int(model(coffee).argmax()) == ESPRESSO
        assert int(model(chelsea).argmax()) in CATS
    assert spec.input_size in (240, 260)


def test_hub_backbone_offline_lists_offline_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_tl.errors import EdgeTLError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as on a device without network
    spec = get_spec("timm:resnet18")
    assert spec.classifier == "fc" and spec.mean == (0.485, 0.456, 0.406)
    with pytest.raises(
        EdgeTLError,
        match=r"cannot download .*resnet18.*offline choices: efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, or --weights PATH",
    ):
        create_backbone("timm:resnet18", num_classes=3)
    with pytest.raises(EdgeTLError, match="timm has no model 'not_a_net'"):
        get_spec("timm:not_a_net")


def test_local_checkpoint_is_loaded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from edge_tl.errors import EdgeTLError

    source = create_backbone("efficientnet_lite0", num_classes=1000, pretrained=True)
    checkpoint = tmp_path / "mine.pth"
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, checkpoint
    )
    model = create_backbone("efficientnet_lite0", num_classes=4, weights_file=checkpoint)
    torch.testing.assert_close(model.conv_head.weight, source.conv_head.weight)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(EdgeTLError, match="junk.pth: not a readable PyTorch checkpoint"):
        create_backbone("efficientnet_lite0", num_classes=4, weights_file=tmp_path / "junk.pth")
    torch.save({"unrelated.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(EdgeTLError, match="do not fit tf_efficientnet_lite0"):
        create_backbone("efficientnet_lite0", num_classes=4, weights_file=tmp_path / "other.pth")


def test_unknown_backbone_lists_known_ones() -> None:
    from edge_tl.errors import EdgeTLError

    with pytest.raises(EdgeTLError, match="unknown backbone 'resnet9000'.*efficientnet_lite0"):
        get_spec("resnet9000")
