"""Bundle round trip and the clear errors for every kind of damage."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from edge_tl.bundle import (
    SCHEMA_VERSION,
    ArtifactKind,
    Bundle,
    InputSpec,
    Manifest,
    ModelInfo,
    Precision,
    new_provenance,
    stage_bundle,
)
from edge_tl.errors import BundleError
from tests.conftest import snapshot


def _manifest() -> Manifest:
    return Manifest(
        schema_version=SCHEMA_VERSION,
        name="toy",
        labels=["bike", "car", "truck"],
        input=InputSpec(height=32, width=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        model=ModelInfo(backbone="toy", architecture="toy", num_classes=3, weights="none"),
        provenance=new_provenance(),
    )


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    with stage_bundle(target) as stage:
        stage.manifest = _manifest()
        stage.new_file("fp32.onnx").write_bytes(b"graph bytes" * 100)
        stage.add_artifact("fp32.onnx", ArtifactKind.ONNX, Precision.FP32, {"opset": 20})
    return target


def test_round_trip_keeps_everything(bundle_dir: Path) -> None:
    bundle = Bundle.load(bundle_dir)
    assert bundle.labels == ["bike", "car", "truck"]
    assert bundle.input_spec.height == 32
    artifact = bundle.find(ArtifactKind.ONNX, Precision.FP32)
    assert artifact is not None and artifact.details == {"opset": 20}
    assert bundle.artifact_path(ArtifactKind.ONNX, Precision.FP32) == bundle_dir / "fp32.onnx"
    assert bundle.manifest.provenance.versions.get("numpy")
    again = json.loads((bundle_dir / "manifest.json").read_text())
    assert Manifest.model_validate(again) == bundle.manifest


def test_missing_precision_names_what_exists(bundle_dir: Path) -> None:
    with pytest.raises(BundleError, match=r"no onnx int8 artifact.*it has fp32\.onnx"):
        Bundle.load(bundle_dir).artifact_path(ArtifactKind.ONNX, Precision.INT8)


def test_corrupted_json_names_file_and_position(bundle_dir: Path) -> None:
    manifest = bundle_dir / "manifest.json"
    manifest.write_text(manifest.read_text()[:-20])
    with pytest.raises(BundleError, match=r"manifest\.json: not valid JSON \(line \d+, column \d+"):
        Bundle.load(bundle_dir)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda m: m["input"].update(std=[0.5, 0, 0.5]), "input.std"),
        (lambda m: m["input"].pop("height"), "input.height"),
        (lambda m: m.update(labels=["a", "a", "b"]), "labels"),
        (lambda m: m["model"].update(num_classes=7), "(top level)"),
        (lambda m: m.update(schema_version=SCHEMA_VERSION + 1), "schema_version"),
        (lambda m: m["input"].update(colour="RGB"), "input.colour"),
        (lambda m: m["metrics"].update(fp32={"precision": "fp64"}), "metrics.fp32.precision"),
        (lambda m: m["artifacts"]["fp32.onnx"].update(engine=_ENGINE), "artifacts.fp32.onnx"),
    ],
)
def test_invalid_field_is_named(bundle_dir: Path, edit, field: str) -> None:  # type: ignore[no-untyped-def]
    path = bundle_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=re.escape(f"manifest.json: field '{field}'")) as info:
        Bundle.load(bundle_dir)
    assert "\n" not in str(info.value)


_ENGINE = {
    "flavour": "tensorrt_rtx",
    "tensorrt_version": "1.2.0",
    "target": "sm86",
    "source": "fp16.onnx",
    "input_profile": {"min": 1, "opt": 8, "max": 32},
}


def test_schema_1_manifest_is_upgraded_on_load_and_written_as_2(bundle_dir: Path) -> None:
    """A bundle from before the typed records: engine facts in `details`, `path` in metrics."""
    path = bundle_dir / "manifest.json"
    old = json.loads(path.read_text())
    old["schema_version"] = 1
    (bundle_dir / "fp16.engine").write_bytes(b"plan")
    artifact = Bundle.load(bundle_dir).manifest.artifacts["fp32.onnx"].model_dump(mode="json")
    old["artifacts"]["fp16.engine"] = artifact | {
        "file": "fp16.engine",
        "kind": "engine",
        "precision": "fp16",
        "sha256": hashlib.sha256(b"plan").hexdigest(),
        "bytes": 4,
        "details": _ENGINE | {"note": "kept"},
    }
    old["metrics"] = {
        "torch": {
            "precision": "fp32",
            "split": "val",
            "num_images": 10,
            "top1": 0.9,
            "top3": 1.0,
            "per_class_recall": {"bike": 1.0},
            "path": "torch fp32 on cpu",
            "test_sets": {"other": {"num_images": 4, "top1": 0.5, "path": "torch fp32 on cpu"}},
        }
    }
    path.write_text(json.dumps(old))

    bundle = Bundle.load(bundle_dir)
    engine = bundle.manifest.artifacts["fp16.engine"]
    assert engine.engine is not None and engine.engine.target == "sm86"
    assert engine.engine.input_profile.max == 32 and engine.details == {"note": "kept"}
    torch_metrics = bundle.manifest.metrics["torch"]
    assert torch_metrics.top1 == 0.9 and torch_metrics.measured_on == "torch fp32 on cpu"
    assert torch_metrics.test_sets["other"].measured_on == "torch fp32 on cpu"
    assert bundle.manifest.schema_version == SCHEMA_VERSION == 2

    with stage_bundle(bundle_dir, base=bundle):
        pass  # any write stores the upgraded form
    written = json.loads(path.read_text())
    assert written["schema_version"] == 2 and "path" not in written["metrics"]["torch"]
    assert written["artifacts"]["fp16.engine"]["engine"]["flavour"] == "tensorrt_rtx"


def test_wrong_hash_is_refused(bundle_dir: Path) -> None:
    data = (bundle_dir / "fp32.onnx").read_bytes()
    (bundle_dir / "fp32.onnx").write_bytes(data[:-1] + b"X")  # same size, other content
    with pytest.raises(
        BundleError, match=r"fp32\.onnx: sha256 differs .*artifacts\.fp32\.onnx\.sha256"
    ):
        Bundle.load(bundle_dir)
    Bundle.load(bundle_dir, verify=False)  # opt-out still checks presence and size only


def test_truncated_and_missing_files_are_refused(bundle_dir: Path) -> None:
    (bundle_dir / "fp32.onnx").write_bytes(b"short")
    with pytest.raises(BundleError, match=r"fp32\.onnx: size 5 differs"):
        Bundle.load(bundle_dir)
    (bundle_dir / "fp32.onnx").unlink()
    with pytest.raises(BundleError, match=r"fp32\.onnx: listed in manifest\.json .* missing"):
        Bundle.load(bundle_dir)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such bundle folder"):
        Bundle.load(tmp_path / "nope")
    with pytest.raises(BundleError, match=r"manifest\.json: not found"):
        Bundle.load(tmp_path)


def test_failed_update_leaves_bundle_untouched(bundle_dir: Path) -> None:
    before = snapshot(bundle_dir)
    base = Bundle.load(bundle_dir)
    with pytest.raises(RuntimeError), stage_bundle(bundle_dir, base=base) as stage:
        stage.new_file("fp32.onnx").write_bytes(b"new graph")  # must not reach the original
        stage.add_artifact("fp32.onnx", ArtifactKind.ONNX, Precision.FP32)
        raise RuntimeError("killed half-way")
    assert snapshot(bundle_dir) == before
    assert not [p for p in bundle_dir.parent.iterdir() if p.name.startswith(".edge-tl-staging-")]


def test_update_replaces_atomically_and_keeps_other_artifacts(bundle_dir: Path) -> None:
    base = Bundle.load(bundle_dir)
    with stage_bundle(bundle_dir, base=base) as stage:
        stage.new_file("model.pt").write_bytes(b"weights")
        stage.add_artifact("model.pt", ArtifactKind.TORCH, Precision.FP32)
    bundle = Bundle.load(bundle_dir)
    assert set(bundle.manifest.artifacts) == {"fp32.onnx", "model.pt"}


def test_existing_target_needs_overwrite(bundle_dir: Path) -> None:
    with pytest.raises(BundleError, match="already exists; pass --overwrite"):
        with stage_bundle(bundle_dir):
            pass


def test_abandoned_staging_of_dead_process_is_removed(bundle_dir: Path) -> None:
    stale = bundle_dir.parent / ".edge-tl-staging-999999999-abc"
    shutil.copytree(bundle_dir, stale)
    with stage_bundle(bundle_dir, base=Bundle.load(bundle_dir)):
        pass
    assert not stale.exists()


def test_output_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(BundleError, match="not-a-folder: cannot create the folder"):
        with stage_bundle(blocker / "bundle"):
            pass
