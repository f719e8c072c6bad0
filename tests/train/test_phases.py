"""Each transfer-learning phase changes the weights it should, and only those."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_tl.data.folder import scan_image_folder  # noqa: E402
from edge_tl.models.registry import create_backbone, get_spec  # noqa: E402
from edge_tl.train.features import extract_features  # noqa: E402
from edge_tl.train.finetune import FinetuneConfig, finetune  # noqa: E402
from edge_tl.train.head import HeadConfig, fit_linear_head  # noqa: E402

pytestmark = pytest.mark.slow


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], model: torch.nn.Module) -> set[str]:
    return {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}


@pytest.fixture(scope="module")
def data(tiny_dataset: Path) -> tuple[list[Path], np.ndarray]:
    folder = scan_image_folder(tiny_dataset)
    return [folder.path(s) for s in folder.samples], np.array([s.label for s in folder.samples])


def test_feature_cache_phase_touches_only_the_head(data: tuple[list[Path], np.ndarray]) -> None:
    paths, labels = data
    model = create_backbone("efficientnet_lite0", 3, pretrained=True)
    spec = get_spec("efficientnet_lite0").input_spec(64)
    before = _snapshot(model)
    features = extract_features(model, paths, spec, batch_size=16)
    assert _changed(before, model) == set()  # extraction runs in eval mode: BN stats untouched
    result = fit_linear_head(features, labels, features[:0], labels[:0], 3, HeadConfig(epochs=30))
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(result.weight))
        model.classifier.bias.copy_(torch.from_numpy(result.bias))
    assert _changed(before, model) == {"classifier.weight", "classifier.bias"}
    assert result.history[-1]["train_top1"] > 0.9  # the head learned the three patterns


def test_finetune_changes_top_blocks_and_head_only(data: tuple[list[Path], np.ndarray]) -> None:
    paths, labels = data
    model = create_backbone("efficientnet_lite0", 3, pretrained=True)
    spec = get_spec("efficientnet_lite0").input_spec(64)
    images = paths  # fine-tuning decodes the files itself, per epoch
    before = _snapshot(model)
    sigchld = signal.getsignal(signal.SIGCHLD)
    history = finetune(
        model,
        spec,
        images,
        labels,
        images[:6],
        labels[:6],
        FinetuneConfig(epochs=1, blocks=2, batch_size=12),
    )
    assert len(history) == 1 and history[0]["loss"] > 0
    # torch's DataLoader handler for its workers is not left behind (a later subprocess's
    # exit crashed the test process with it: SIGSEGV, SI_KERNEL)
    assert signal.getsignal(signal.SIGCHLD) == sigchld
    changed = _changed(before, model)
    assert {k.split(".")[0] for k in changed} == {"blocks", "conv_head", "bn2", "classifier"}
    assert {k.split(".")[1] for k in changed if k.startswith("blocks.")} == {
        "5",
        "6",
    }  # the top 2 stages
    assert not any(k.startswith(("conv_stem", "bn1", "blocks.0.", "blocks.4.")) for k in changed)


def test_finetune_resumes_from_its_checkpoint(
    data: tuple[list[Path], np.ndarray], tmp_path: Path
) -> None:
    paths, labels = data
    spec = get_spec("efficientnet_lite0").input_spec(64)
    images = paths  # fine-tuning decodes the files itself, per epoch
    checkpoint = tmp_path / "ft.pt"

    def run(epochs: int, resume: bool) -> list[dict[str, float]]:
        config = FinetuneConfig(epochs=epochs, blocks=1, batch_size=12, patience=5)
        model = create_backbone("efficientnet_lite0", 3)
        return finetune(
            model, spec, images, labels, images[:6], labels[:6], config, checkpoint, resume
        )

    first = run(1, resume=False)
    assert checkpoint.is_file() and torch.load(checkpoint, weights_only=False)["epoch"] == 1
    resumed = run(2, resume=True)
    assert [h["epoch"] for h in resumed] == [1, 2]  # epoch 1 came from the checkpoint, not re-run
    assert resumed[0]["loss"] == first[0]["loss"]


def test_whole_backbone_finetune_with_ema_and_mixup(data: tuple[list[Path], np.ndarray]) -> None:
    paths, labels = data
    model = create_backbone("efficientnet_lite0", 3, pretrained=True)
    spec = get_spec("efficientnet_lite0").input_spec(64)
    images = paths  # fine-tuning decodes the files itself, per epoch
    before = _snapshot(model)
    config = FinetuneConfig(
        epochs=1, blocks=None, batch_size=12, augment="overhead", mixup=0.2, cutmix=1.0,
        drop_rate=0.2, ema_decay=0.9,
    )  # fmt: skip
    history = finetune(model, spec, images, labels, images[:6], labels[:6], config)
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    changed = {k.split(".")[0] for k in _changed(before, model)}
    assert {"conv_stem", "bn1", "blocks", "conv_head", "classifier"} <= changed  # stem too
    assert model.drop_rate == 0.0 and not model.training  # ready for export and serving
    assert all(p.requires_grad for p in model.parameters())


def test_finetune_config_refuses_unknown_augmentation_and_zero_blocks() -> None:
    from edge_tl.errors import EdgeTLError

    with pytest.raises(EdgeTLError, match="'heavy' is unknown"):
        FinetuneConfig(augment="heavy")
    with pytest.raises(EdgeTLError, match="blocks must be >= 1"):
        FinetuneConfig(blocks=0)


def test_feature_views_go_through_the_transform(data: tuple[list[Path], np.ndarray]) -> None:
    paths, _ = data
    model = create_backbone("efficientnet_lite0", 3, pretrained=True)
    spec = get_spec("efficientnet_lite0").input_spec(64)
    plain = extract_features(model, paths[:4], spec)
    blank = extract_features(model, paths[:4], spec, transform=lambda image: image * 0)
    assert np.abs(plain[0] - plain[1]).max() > 1e-3  # different images, different features
    np.testing.assert_allclose(blank[0], blank[1], atol=1e-5)  # all blanked: all the same
