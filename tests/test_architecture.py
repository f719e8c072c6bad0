"""The layering of docs/architecture.md holds: import-linter's contracts in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint_imports = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(lint_imports).exists():
        pytest.skip("import-linter not installed (pip install 'edge-tl[dev]')")
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_runtime_finds_the_torch_backend_by_name_without_importing_it() -> None:
    code = (
        "import sys\n"
        "from edge_tl.runtime.backends import backend_classes\n"
        "names = list(backend_classes())\n"
        "assert names == ['tensorrt', 'openvino', 'onnxruntime', 'torch', 'openvino-bf16', 'kserve'], names\n"
        "assert 'torch' not in sys.modules, 'registering the torch backend imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
