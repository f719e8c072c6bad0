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
SPLITS = {"train": 16, "val": 5, "test": 5}  # per class: 6 x 26 = 156 images

pytestmark = [
    pytest.mark.slow,
    pytest.mark.data,
    pytest.mark.skipif(not VEHICLES.is_dir(), reason="needs ../shared/data/vehicles"),
]


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

    result = run_cli("train", str(data), "-o", str(bundle_dir), "--json")
    assert result.returncode == 0, result.stderr
    trained = json.loads(result.stdout)
    assert trained["val"]["num_images"] == 6 * SPLITS["val"]  # the given val/, not a new split
    assert trained["test_sets"]["test"]["num_images"] == 6 * SPLITS["test"]  # test/ scored

    result = run_cli("export", str(bundle_dir), "--json")  # fp32, fp16, int8 by default
    assert result.returncode == 0, result.stderr
    assert "INT8 calibration on all 96 training images" in result.stderr  # test/ never drawn
    bundle = Bundle.load(bundle_dir)
    assert {
        a.precision for a in bundle.manifest.artifacts.values() if a.kind == ArtifactKind.ONNX
    } == set(Precision)
    assert bundle.manifest.metrics["int8"].num_images == 6 * SPLITS["val"]

    result = run_cli("eval", str(bundle_dir), "--json")
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["sets"]) == {"val", "test"}

    result = run_cli("predict", str(bundle_dir), str(data / "test" / "car"), "--json")
    assert result.returncode == 0, result.stderr
