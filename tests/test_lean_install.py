"""The device install has no torch: the runtime and the CLI must work without it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

BLOCK = "import sys\nfor n in ['torch', 'torchvision', 'timm', 'tensorrt', 'tensorrt_rtx']: sys.modules[n] = None\n"


def test_runtime_and_cli_import_without_torch() -> None:
    code = BLOCK + (
        "import edge_tl.runtime, edge_tl.cli, edge_tl.bundle, edge_tl.bench, edge_tl.evaluate\n"
        "import json\n"
        "from edge_tl.runtime.backends import available_backends\n"
        "print(json.dumps(available_backends()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    backends = json.loads(result.stdout)
    assert "onnxruntime" in backends and "torch" not in backends


def test_train_without_torch_names_the_extra(tiny_dataset: Path, tmp_path: Path) -> None:
    result = run_cli("train", str(tiny_dataset), "-o", str(tmp_path / "b"), block_torch=True)
    assert result.returncode == 1
    assert "pip install 'edge-tl[train]'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_predict_and_info_without_torch(exported_bundle: Path, tiny_dataset: Path) -> None:
    image = next((tiny_dataset / "disc").iterdir())
    result = run_cli("predict", str(exported_bundle), str(image), "--json", block_torch=True)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["backend"].split()[0] in {"openvino", "onnxruntime"}  # device backends only
    assert payload["predictions"][0]["label"] in {"checker", "disc", "stripes"}
    info = run_cli("info", str(exported_bundle), "--json", block_torch=True)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["labels"] == ["checker", "disc", "stripes"]
