"""The ImageNet prior: labels matched by name, its arithmetic, and a bundle that carries it from
training through ONNX export to the runtime's fused scores."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from edge_tl.bundle import Bundle  # noqa: E402
from edge_tl.data.sample import sample_dataset_dir  # noqa: E402
from edge_tl.images import find_images, load_image  # noqa: E402
from edge_tl.models.prior import PRIOR_FLOOR, build_prior, match_labels  # noqa: E402
from edge_tl.runtime.backends import create_backend  # noqa: E402
from edge_tl.runtime.classify import Classifier, fuse  # noqa: E402

NAMES = [timm.data.ImageNetInfo().index_to_description(i) for i in range(1000)]


def _first(indices: list[int]) -> set[str]:
    return {NAMES[i].split(",")[0] for i in indices}


def test_labels_match_by_their_words_and_the_most_specific_label_wins() -> None:
    matched = match_labels(
        ["Cars", "fire_trucks", "buses", "minibus", "juggernaut", "truck", "person"], NAMES
    )
    assert "person" not in matched
    assert {"sports car", "cab", "minivan"} <= _first(matched["Cars"])
    assert _first(matched["minibus"]) == {"minibus"}  # claimed from `buses`
    assert "minibus" not in _first(matched["buses"])
    assert _first(matched["juggernaut"]) == {"trailer truck"}  # claimed from `truck`
    assert "trailer truck" not in _first(matched["truck"])
    assert _first(matched["fire_trucks"]) == {"fire engine"}  # both words narrow it down
    assert _first(matched["truck"]) == {"tow truck", "garbage truck", "moving van"}


def test_prior_is_the_share_of_matched_imagenet_probability() -> None:
    labels = ["car", "bike", "person"]
    weight, bias = torch.randn(1000, 16), torch.randn(1000)
    head, names = build_prior(labels, weight, bias, NAMES)
    assert set(names) == {"car", "bike"}
    features = torch.randn(4, 16)
    p = torch.softmax(features @ weight.T + bias, dim=1)
    matched = match_labels(labels, NAMES)
    car, bike = p[:, matched["car"]].sum(1), p[:, matched["bike"]].sum(1)
    share = torch.stack([car, bike, torch.zeros_like(car)], 1) / (car + bike).unsqueeze(1)
    expected = share * (1 - PRIOR_FLOOR) + PRIOR_FLOOR / 3
    got = head(features).exp()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got.sum(1), torch.ones(4))
    assert build_prior(["person", "car"], weight, bias, NAMES) is None  # one label: no prior


def test_fusing_is_a_weighted_geometric_mean() -> None:
    head = np.array([[0.7, 0.2, 0.1]])
    prior = np.array([[0.1, 0.8, 0.1]])
    fused = fuse(head, prior, 0.5)
    expected = np.sqrt(head * prior) / np.sqrt(head * prior).sum()
    np.testing.assert_allclose(fused, expected)
    np.testing.assert_allclose(fuse(head, prior, 1e-9), head, atol=1e-6)


@pytest.mark.slow
def test_a_bundle_carries_the_prior_to_the_runtime(tmp_path: Path) -> None:
    """Trained on the shipped vehicle photos (three classes), exported to ONNX: one pass gives
    the head's logits and the prior, and the prior alone names real cars and trucks."""
    from edge_tl.export import ExportOptions, export_bundle
    from edge_tl.train.head import HeadConfig
    from edge_tl.train.pipeline import TrainConfig, train_bundle

    data = tmp_path / "data"
    for label in ("bike", "car", "truck"):
        shutil.copytree(sample_dataset_dir() / label, data / label)
    out = tmp_path / "bundle"
    train_bundle(
        TrainConfig(
            data_dir=data, output=out, input_size=128, val_fraction=0.3, head=HeadConfig(epochs=20)
        )
    )
    export_bundle(out, ExportOptions(precisions=("fp32",), latency_iterations=2))
    bundle = Bundle.load(out)
    assert bundle.manifest.prior is not None
    assert set(bundle.manifest.prior.imagenet_classes) == {"bike", "car", "truck"}
    images = [load_image(p) for p in find_images([sample_dataset_dir() / "car"])[:8]]
    with create_backend(bundle, "onnxruntime") as backend:
        batch = backend.example_batch(2)
        assert backend.infer(batch).shape == (2, 3)
        logits, prior = backend.infer_with_prior(batch)
        assert prior is not None and prior.shape == (2, 3)
        np.testing.assert_allclose(np.exp(prior).sum(axis=1), 1.0, rtol=1e-4)
        predictions = Classifier(backend, bundle.labels).classify(images)
    assert all(p.prior is not None for p in predictions)
    assert np.mean([p.prior.argmax() == bundle.labels.index("car") for p in predictions]) >= 0.5
    with create_backend(bundle, "torch") as torch_backend:  # model.pt gives the same outputs
        torch_logits, torch_prior = torch_backend.infer_with_prior(batch)
    np.testing.assert_allclose(torch_prior, prior, atol=1e-3)
