"""Train a linear classifier on cached features (seconds on CPU), keep the best epoch."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_tl._deps import require
from edge_tl.metrics import top1

__all__ = ["HeadConfig", "HeadResult", "fit_linear_head"]


@dataclass(frozen=True)
class HeadConfig:
    epochs: int = 60
    lr: float = 3e-3
    weight_decay: float = 1e-3
    label_smoothing: float = 0.1
    batch_size: int = 64
    seed: int = 0
    # augmented copies of each training image whose features the head also trains on (0: none);
    # each costs one more pass of the backbone over the training set
    views: int = 0
    augment: str = "camera"  # a name in edge_tl.train.augment.AUGMENT_PRESETS

    def __post_init__(self) -> None:
        if self.views:
            from edge_tl.train.augment import augment_preset

            augment_preset(self.augment)  # an unknown name fails here, before any work


@dataclass
class HeadResult:
    weight: np.ndarray  # (classes, features)
    bias: np.ndarray  # (classes,)
    best_epoch: int
    best_val_top1: float | None
    history: list[dict[str, float]] = field(default_factory=list)


def fit_linear_head(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    num_classes: int,
    config: HeadConfig = HeadConfig(),
    class_weights: np.ndarray | None = None,
) -> HeadResult:
    """AdamW + cosine schedule + label smoothing on features; best validation epoch wins
    (the last epoch when there is no validation set)."""
    if config.epochs < 1:
        raise ValueError(f"head epochs must be >= 1, got {config.epochs}")
    torch = require("torch", "train")
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    x = torch.from_numpy(train_x).float()
    y = torch.from_numpy(train_y).long()
    vx = torch.from_numpy(val_x).float()
    head = torch.nn.Linear(x.shape[1], num_classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, -(-len(x) // config.batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.epochs * steps_per_epoch
    )
    weight = torch.from_numpy(class_weights).float() if class_weights is not None else None
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
    best: HeadResult | None = None
    history = []
    for epoch in range(1, config.epochs + 1):
        head.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), config.batch_size):
            idx = order[start : start + config.batch_size]
            loss = loss_fn(head(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
        head.eval()
        with torch.no_grad():
            train_top1 = top1(head(x).numpy(), train_y)
            val_top1 = top1(head(vx).numpy(), val_y) if len(val_y) else None
        history.append(
            {"epoch": epoch, "loss": total / len(x), "train_top1": train_top1}
            | ({"val_top1": val_top1} if val_top1 is not None else {})
        )
        if best is None or val_top1 is None or val_top1 > (best.best_val_top1 or 0.0):
            best = HeadResult(
                weight=head.weight.detach().numpy().copy(),
                bias=head.bias.detach().numpy().copy(),
                best_epoch=epoch,
                best_val_top1=val_top1,
            )
    best.history = history
    return best
