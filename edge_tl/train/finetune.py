"""Phase two of transfer learning: fine-tune the top blocks of the backbone with augmentation,
at a lower learning rate than the head. BatchNorm statistics of frozen parts stay frozen.

A plain loop (train_one_epoch, evaluate, fit), one checkpoint dict per epoch for --resume,
early stopping on validation top-1, the best epoch kept.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl._deps import require
from edge_tl.bundle import InputSpec
from edge_tl.progress import track
from edge_tl.runtime.preprocess import preprocess
from edge_tl.train.augment import AugmentConfig, augment

__all__ = ["FinetuneConfig", "finetune", "model_logits", "trainable_parameters"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 3
    blocks: int = 3  # top backbone stages to unfreeze (plus the head conv and classifier)
    head_lr: float = 1e-3
    backbone_lr: float = 1e-4
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    batch_size: int = 32
    patience: int = 2  # epochs without a better validation top-1 before stopping
    seed: int = 0


def trainable_parameters(model: Any, blocks: int) -> tuple[list[Any], list[Any], list[Any]]:
    """(head params, backbone params to fine-tune, modules kept frozen) for a timm EfficientNet."""
    if not all(hasattr(model, a) for a in ("blocks", "conv_head", "bn2", "conv_stem", "bn1")):
        from edge_tl.errors import EdgeTLError

        raise EdgeTLError(
            f"--finetune-epochs supports EfficientNet-family backbones; {type(model).__name__} has no "
            "blocks/conv_head to unfreeze (train its head only)"
        )
    head_modules = [model.get_classifier()]
    tuned_modules = [*list(model.blocks)[len(model.blocks) - blocks :], model.conv_head, model.bn2]
    for parameter in model.parameters():
        parameter.requires_grad = False
    for module in [*head_modules, *tuned_modules]:
        for parameter in module.parameters():
            parameter.requires_grad = True
    tuned_ids = {id(m) for m in tuned_modules + head_modules}
    frozen = [
        m for m in [model.conv_stem, model.bn1, *list(model.blocks)] if id(m) not in tuned_ids
    ]
    head = [p for m in head_modules for p in m.parameters()]
    backbone = [p for m in tuned_modules for p in m.parameters()]
    return head, backbone, frozen


def finetune(
    model: Any,
    spec: InputSpec,
    train_images: list[np.ndarray],
    train_labels: np.ndarray,
    val_images: list[np.ndarray],
    val_labels: np.ndarray,
    config: FinetuneConfig,
    checkpoint: Path | None = None,
    resume: bool = False,
    augmentation: AugmentConfig | None = None,
    class_weights: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """Fine-tune in place; the model ends with the weights of the best validation epoch."""
    torch = require("torch", "train")
    augmentation = augmentation or AugmentConfig()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(config.seed)
    model = model.to(device).to(memory_format=torch.channels_last)
    head, backbone, frozen = trainable_parameters(model, config.blocks)
    optimizer = torch.optim.AdamW(
        [{"params": head, "lr": config.head_lr}, {"params": backbone, "lr": config.backbone_lr}],
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = max(1, -(-len(train_images) // config.batch_size))
    steps = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[config.head_lr, config.backbone_lr], total_steps=steps, pct_start=0.15
    )
    weight = (
        torch.from_numpy(class_weights).float().to(device) if class_weights is not None else None
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
    history: list[dict[str, float]] = []
    start_epoch, best_top1, best_state, stale = 0, -1.0, None, 0
    if resume and checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state["config"]["epochs"] == config.epochs:
            scheduler.load_state_dict(state["scheduler"])
        else:  # resumed with more (or fewer) epochs: same schedule shape, advanced to this point
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # stepping a scheduler without optimizer steps
                for _ in range(min(state["epoch"] * steps_per_epoch, steps - 1)):
                    scheduler.step()
        start_epoch, history = state["epoch"], state["history"]
        best_top1, best_state, stale = state["best_top1"], state["best_model"], state["stale"]
        log.info("resumed fine-tuning from %s after epoch %d", checkpoint, start_epoch)
    rng = np.random.default_rng(config.seed + start_epoch)
    for epoch in range(start_epoch + 1, config.epochs + 1):
        t0 = time.perf_counter()
        loss = train_one_epoch(
            model,
            frozen,
            optimizer,
            scheduler,
            loss_fn,
            spec,
            train_images,
            train_labels,
            config.batch_size,
            rng,
            augmentation,
            device,
            f"fine-tune {epoch}/{config.epochs}",
        )
        val_top1 = evaluate(model, spec, val_images, val_labels, config.batch_size, device)
        history.append(
            {
                "epoch": epoch,
                "loss": loss,
                "val_top1": val_top1,
                "seconds": time.perf_counter() - t0,
            }
        )
        log.info("fine-tune epoch %d: loss %.4f, val top-1 %.4f", epoch, loss, val_top1)
        if val_top1 > best_top1:
            best_top1, stale = val_top1, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if checkpoint is not None:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                    "history": history,
                    "best_top1": best_top1,
                    "best_model": best_state,
                    "stale": stale,
                    "config": asdict(config),
                },
                checkpoint,
            )
        if stale >= config.patience:
            log.info("early stop: no better validation top-1 for %d epochs", stale)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.to("cpu").eval()
    return history


def train_one_epoch(
    model: Any,
    frozen: list[Any],
    optimizer: Any,
    scheduler: Any,
    loss_fn: Any,
    spec: InputSpec,
    images: list[np.ndarray],
    labels: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    augmentation: AugmentConfig,
    device: str,
    description: str,
) -> float:
    torch = require("torch", "train")
    model.train()
    for module in frozen:  # frozen BatchNorm keeps its ImageNet statistics
        module.eval()
    order = rng.permutation(len(images))
    total, seen = 0.0, 0
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for index in track(batches, description):
        batch = preprocess([augment(images[i], rng, augmentation) for i in index], spec)
        x = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(labels[index]).to(device)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=device == "cuda"):
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += float(loss.detach()) * len(index)
        seen += len(index)
    return total / max(seen, 1)


def model_logits(
    model: Any, spec: InputSpec, images: list[np.ndarray], batch_size: int, device: str = "cpu"
) -> np.ndarray:
    """Logits (N, C) of the whole model on decoded BGR images, in eval mode."""
    torch = require("torch", "train")
    model.eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = preprocess(images[start : start + batch_size], spec)
            x = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
            chunks.append(model(x).float().cpu().numpy())
    return np.concatenate(chunks)


def evaluate(
    model: Any,
    spec: InputSpec,
    images: list[np.ndarray],
    labels: np.ndarray,
    batch_size: int,
    device: str,
) -> float:
    if not len(labels):
        return float("nan")
    predicted = model_logits(model, spec, images, batch_size, device).argmax(axis=1)
    return float((predicted == labels).mean())
