from __future__ import annotations

from pathlib import Path

import pytest

from edge_tl.data.folder import scan_image_folder, stratified_split
from edge_tl.errors import DataError
from tests.conftest import make_image_folder


def test_scan_and_stratified_split(tmp_path: Path) -> None:
    folder = scan_image_folder(make_image_folder(tmp_path / "d", per_class=10))
    assert folder.classes == ["checker", "disc", "stripes"]
    train, val = stratified_split(folder.samples, 0.2, seed=3)
    assert len(val) == 6 and len(train) == 24
    assert {s.label for s in val} == {0, 1, 2}
    assert not {s.relpath for s in train} & {s.relpath for s in val}
    assert stratified_split(folder.samples, 0.2, seed=3) == (train, val)
    assert stratified_split(folder.samples, 0.2, seed=4)[1] != val


def test_fingerprint_changes_with_content(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "d", per_class=2)
    before = scan_image_folder(root).fingerprint()
    victim = next((root / "disc").iterdir())
    victim.write_bytes(victim.read_bytes() + b"\0")
    assert scan_image_folder(root).fingerprint() != before


def test_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such folder"):
        scan_image_folder(tmp_path / "missing")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError, match="need at least 2 class folders.*empty: empty_class"):
        scan_image_folder(tmp_path)
