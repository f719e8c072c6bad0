"""write_atomic and staged_folder: the old file or folder or the new one, never half of one,
and no leftovers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_tl.files import staged_folder, write_atomic


def test_write_atomic_replaces_whole_files(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    write_atomic(path, "id,class\n")
    write_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01" and os.listdir(tmp_path) == ["labels.csv"]


def test_a_failed_rename_keeps_the_old_file_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "manifest.json"
    write_atomic(path, "old")

    def refuse(*_: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk gone"):
        write_atomic(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["manifest.json"]


def test_staged_folder_replaces_the_folder_whole(tmp_path: Path) -> None:
    dest = tmp_path / "gallery"
    with staged_folder(dest) as staging:
        (staging / "a.jpg").write_text("first")
        assert not dest.exists()  # nothing there until the block ends
    with staged_folder(dest) as staging:
        (staging / "b.jpg").write_text("second")
    assert os.listdir(dest) == ["b.jpg"] and os.listdir(tmp_path) == ["gallery"]


def test_a_failed_staged_folder_keeps_the_old_one_and_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "server"
    with staged_folder(dest) as staging:
        (staging / "bin").write_text("old")
    with pytest.raises(RuntimeError, match="unpacking failed"), staged_folder(dest) as staging:
        (staging / "bin").write_text("half")
        raise RuntimeError("unpacking failed")
    assert (dest / "bin").read_text() == "old" and os.listdir(tmp_path) == ["server"]
