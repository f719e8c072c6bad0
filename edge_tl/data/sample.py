"""The small vehicle sample shipped inside the package (CC-BY 4.0, see sample/ATTRIBUTION.md)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["sample_dataset_dir", "sample_holdout_dir"]

_SAMPLE = Path(__file__).parent / "sample"


def sample_dataset_dir() -> Path:
    """Training pool: 6 vehicle classes, 50 images each."""
    return _SAMPLE / "vehicles"


def sample_holdout_dir() -> Path:
    """Held-out images of the same classes (10 each), never used for training; the demo clip."""
    return _SAMPLE / "vehicles-holdout"
