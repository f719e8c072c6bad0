"""PNG reports a person can trust at a glance: confusion matrix, training curves, the worst
misclassified images. Needs matplotlib (the [train] extra); writes files, returns nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl._deps import require

__all__ = ["plot_confusion", "plot_curves", "plot_worst"]


def _pyplot() -> Any:
    matplotlib = require("matplotlib", "train")
    matplotlib.use("Agg")  # headless servers
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str, out: Path
) -> None:
    plt = _pyplot()
    data = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.1 * len(labels) + 1.5))
    ax.imshow(data, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (i, j), value in np.ndenumerate(data):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > data.max() / 2 else "black",
        )
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_curves(
    history: Sequence[dict[str, float]], title: str, out: Path, kept_epoch: int | None = None
) -> None:
    plt = _pyplot()
    fig = curves_figure(history, title, kept_epoch)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def curves_figure(
    history: Sequence[dict[str, float]], title: str, kept_epoch: int | None = None
) -> Any:
    """Loss and top-1 per epoch, with the epoch whose weights were kept marked."""
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.5))
    steps = list(range(1, len(history) + 1))
    loss_ax.plot(steps, [h["loss"] for h in history], label="train loss")
    loss_ax.set_ylabel("loss")
    for key, name in (("train_top1", "train top-1"), ("val_top1", "validation top-1")):
        if any(key in h for h in history):
            acc_ax.plot(steps, [h.get(key, np.nan) for h in history], label=name)
    acc_ax.set_ylabel("top-1 accuracy")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        if kept_epoch is not None:
            ax.axvline(kept_epoch, color="grey", linestyle="--", label=f"kept (epoch {kept_epoch})")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_worst(
    images_bgr: Sequence[np.ndarray],
    captions: Sequence[str],
    title: str,
    out: Path,
    columns: int = 6,
) -> None:
    plt = _pyplot()
    count = max(1, len(images_bgr))
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images_bgr, captions, strict=False):
        ax.imshow(image[..., ::-1])
        ax.set_title(caption, fontsize=7)
    fig.suptitle(f"{title}; captions: true → predicted (its probability)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
