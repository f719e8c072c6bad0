"""The README's quickstart, as written, on a DATA/train, DATA/val, DATA/test dataset of under
256 images cut from ../shared/data/vehicles (issue 16, items 1 and 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge_tl.bundle import ArtifactKind, Bundle, Precision
from edge_tl.images import find_images
from tests.conftest import SHARED_DATA, run_cli

VEHICLES = SHARED_DATA / "vehicles"
NEW_FOOTAGE = SHARED_DATA / "vehicles-newfootage"
SPLITS = {"train": 16, "val": 5, "test": 5}  # per class: 6 x 26 = 156 images

pytestmark = [
    pytest.mark.slow,
    pytest.mark.data,
    pytest.mark.skipif(not VEHICLES.is_dir(), reason="needs ../shared/data/vehicles"),
]


def _footage(root: Path, per_class: int = 3) -> Path:
    for label in sorted(p.name for p in NEW_FOOTAGE.iterdir() if p.is_dir()):
        (root / label).mkdir(parents=True)
        for f in find_images([NEW_FOOTAGE / label])[:per_class]:
            shutil.copy(f, root / label / f.name)
    return root


def _split_dataset(root: Path) -> Path:
    for label in sorted(p.name for p in VEHICLES.iterdir() if p.is_dir()):
        files = find_images([VEHICLES / label])
        start = 0
        for split, count in SPLITS.items():
            (root / split / label).mkdir(parents=True)
            for f in files[start : start + count]:
                shutil.copy(f, root / split / label / f.name)
            start += count
    return root


def test_quickstart_runs_as_written_on_a_small_split_dataset(tmp_path: Path) -> None:
    data = _split_dataset(tmp_path / "DATA")
    bundle_dir = tmp_path / "my-bundle"

    result = run_cli("data-check", str(data), "--json")
    assert result.returncode == 0, result.stderr
    checked = json.loads(result.stdout)
    assert set(checked) == {"train and val", "test"}  # test/ is checked, and named

    footage = _footage(tmp_path / "NEW-FOOTAGE")
    result = run_cli("train", str(data), "-o", str(bundle_dir), "--test", str(footage), "--json")
    assert result.returncode == 0, result.stderr
    trained = json.loads(result.stdout)
    assert trained["val"]["num_images"] == 6 * SPLITS["val"]  # the given val/, not a new split
    assert trained["test_sets"]["test"]["num_images"] == 6 * SPLITS["test"]  # test/ scored
    assert trained["test_sets"]["NEW-FOOTAGE"]["num_images"] == 18  # and --test beside it

    result = run_cli("export", str(bundle_dir), "--json")  # fp32, fp16, int8 by default
    assert result.returncode == 0, result.stderr
    assert "INT8 calibration on all 96 training images" in result.stderr  # test/ never drawn
    bundle = Bundle.load(bundle_dir)
    assert {
        a.precision for a in bundle.manifest.artifacts.values() if a.kind == ArtifactKind.ONNX
    } == set(Precision)
    assert bundle.manifest.metrics["int8"].num_images == 6 * SPLITS["val"]

    result = run_cli("eval", str(bundle_dir), "--test", str(footage), "--json")
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["sets"]) == {"val", "NEW-FOOTAGE", "test"}

    result = run_cli("predict", str(bundle_dir), str(data / "test" / "car"), "--json")
    assert result.returncode == 0, result.stderr

    # `stream` on a clip of the test images; `build`, `serve` and `bench` have their own tests
    from edge_tl.demo import DemoConfig, compose_clip

    clip = tmp_path / "clip.mp4"
    compose_clip(find_images([data / "test"]), ["?"] * 30, clip, DemoConfig(frames_per_image=2))
    events = tmp_path / "events.jsonl"
    result = run_cli("stream", str(bundle_dir), "--source", str(clip), "--out", str(events))
    assert result.returncode == 0, result.stderr
    assert sum('"kind": "class"' in line for line in events.read_text().splitlines()) == 60
