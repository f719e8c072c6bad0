"""Shared fixtures: a generated tiny ImageFolder and a bundle trained and exported on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINY_INPUT = 64  # Lite0 accepts any size; 64 px keeps the end-to-end tests fast


def _pattern(kind: str, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """Visually distinct classes with per-image variation (colour, phase, noise)."""
    image = np.zeros((size, size, 3), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    phase = rng.integers(0, 8)
    if kind == "stripes":
        mask = ((xx + phase) // 4) % 2 == 0
        image[mask] = (rng.integers(180, 255), rng.integers(0, 60), rng.integers(0, 60))
    elif kind == "checker":
        mask = (((xx + phase) // 6) + ((yy + phase) // 6)) % 2 == 0
        image[mask] = (rng.integers(0, 60), rng.integers(180, 255), rng.integers(0, 60))
    else:  # disc
        radius = rng.integers(size // 4, size // 2 - 2)
        cv2.circle(
            image, (size // 2, size // 2), int(radius), (0, 0, int(rng.integers(180, 255))), -1
        )
    noise = rng.normal(0, 12, image.shape)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def make_image_folder(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for kind in ("checker", "disc", "stripes"):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cv2.imwrite(str(root / kind / f"{kind}_{i:03d}.png"), _pattern(kind, rng))
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("data") / "shapes")


@pytest.fixture(scope="session")
def exported_bundle(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Lite0 bundle trained on the tiny dataset, exported to fp32, fp16 and int8 ONNX."""
    pytest.importorskip("torch")
    from edge_tl.export import ExportOptions, export_bundle
    from edge_tl.train.head import HeadConfig
    from edge_tl.train.pipeline import TrainConfig, train_bundle

    out = tmp_path_factory.mktemp("bundles") / "shapes"
    train_bundle(
        TrainConfig(
            data_dir=tiny_dataset,
            output=out,
            input_size=TINY_INPUT,
            val_fraction=0.25,
            head=HeadConfig(epochs=40),
        )
    )
    export_bundle(out, ExportOptions(calib_images=16, latency_iterations=3))
    return out


def run_cli(
    *args: str, block_torch: bool = False, block: tuple[str, ...] = (), timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `edge-tl ARGS` in a fresh interpreter; with block_torch, torch & co cannot be
    imported, nor can the modules in `block` (an optional library that is not installed)."""
    blocked = ["torch", "torchvision", "timm", "tensorrt", "tensorrt_rtx"] if block_torch else []
    blocked += list(block)
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "from edge_tl.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path → bytes), to prove nothing changed."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
