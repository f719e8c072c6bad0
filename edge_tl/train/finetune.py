"""Phase two of transfer learning: fine-tune the backbone (its top stages or all of it) with
augmentation, at a lower learning rate than the head. BatchNorm statistics of frozen parts stay
frozen.

The head starts from the linear probe of phase one (LP-FT: fine-tuning from a trained head
distorts the pretrained features less than from a random one, which is what holds up on new
footage). Optional regularisers: mixup/cutmix (timm), dropout before the classifier, and an
exponential moving average of the weights (timm's ModelEmaV3), which is what gets evaluated
and kept when enabled.

A plain loop (train_one_epoch, evaluate, fit), one checkpoint dict per epoch for --resume,
early stopping on validation top-1, the best epoch kept. Images are decoded and augmented per
epoch by DataLoader workers (`ImageDataset`), never all held in memory.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl._deps import require
from edge_tl.bundle import InputSpec
from edge_tl.errors import EdgeTLError
from edge_tl.images import load_image
from edge_tl.metrics import top1
from edge_tl.preprocess import preprocess
from edge_tl.progress import track
from edge_tl.train.augment import AugmentConfig, augment, augment_preset

__all__ = ["FinetuneConfig", "ImageDataset", "finetune", "model_logits", "trainable_parameters"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 3
    blocks: int | None = 3  # top backbone stages to unfreeze (+ head conv); None: all, stem too
    head_lr: float = 1e-3
    backbone_lr: float = 1e-4
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    batch_size: int = 32
    patience: int = 2  # epochs without a better validation top-1 before stopping
    seed: int = 0
    augment: str = "light"  # a name in edge_tl.train.augment.AUGMENT_PRESETS
    mixup: float = 0.0  # mixup alpha (0: off)
    cutmix: float = 0.0  # cutmix alpha (0: off)
    drop_rate: float = 0.0  # dropout on pooled features before the classifier
    ema_decay: float = 0.0  # weight EMA decay (0: off), with timm's warm-up
    warmup: float = 0.15  # share of the steps spent warming up (one-cycle schedule)
    workers: int = 2  # DataLoader processes that decode and augment while the model trains

    def __post_init__(self) -> None:
        augment_preset(self.augment)  # an unknown name fails here, before any work
        if self.blocks is not None and self.blocks < 1:
            raise EdgeTLError(f"fine-tune blocks must be >= 1 (or all), got {self.blocks}")


class ImageDataset:
    """Labelled image files as preprocessed (CHW float32, label) pairs, decoded on access and
    augmented with a generator seeded by (seed, epoch, index): the same epoch gives the same
    views whichever worker draws them. Map-style, which is all torch's DataLoader needs."""

    def __init__(
        self,
        paths: Sequence[Path],
        labels: np.ndarray,
        spec: InputSpec,
        augmentation: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.paths, self.labels, self.spec = list(paths), labels, spec
        self.augmentation, self.seed, self.epoch = augmentation, seed, 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        image = load_image(self.paths[index])
        if self.augmentation is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            image = augment(image, rng, self.augmentation)
        return preprocess([image], self.spec)[0], int(self.labels[index])


def _loader(dataset: ImageDataset, batches: Sequence[Sequence[int]], workers: int) -> Any:
    torch = require("torch", "train")
    workers = workers if len(batches) > 1 else 0
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        worker_init_fn=_quiet_worker if workers else None,
        # forked workers deadlocked in OpenCV's thread pool (inherited mid-use from the trainer);
        # spawned ones start clean, at ~2 s of start-up per epoch
        multiprocessing_context="spawn" if workers else None,
    )


@contextlib.contextmanager
def _sigchld_restored() -> Iterator[None]:
    """Leave SIGCHLD as it was. torch's DataLoader installs a SIGCHLD handler for its worker
    processes once and keeps it for the life of the process; in a process that went on to
    serve (the test suite: a daemon, then a subprocess ending) the kernel failed to deliver
    that handler on the main thread and killed the process with SIGSEGV (si_code SI_KERNEL).
    torch is told to install it again for its next loader."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGCHLD)
    try:
        yield
    finally:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL if previous is None else previous)
        from torch.utils.data._utils import signal_handling

        signal_handling._SIGCHLD_handler_set = False


def _quiet_worker(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # the worker is one of several processes on the same cores


def trainable_parameters(model: Any, blocks: int | None) -> tuple[list[Any], list[Any], list[Any]]:
    """(head params, backbone params to fine-tune, modules kept frozen) for a timm EfficientNet."""
    if not all(hasattr(model, a) for a in ("blocks", "conv_head", "bn2", "conv_stem", "bn1")):
        raise EdgeTLError(
            f"--finetune-epochs supports EfficientNet-family backbones; {type(model).__name__} has no "
            "blocks/conv_head to unfreeze (train its head only)"
        )
    stages = list(model.blocks)
    head_modules = [model.get_classifier()]
    if blocks is None:
        tuned_modules = [model.conv_stem, model.bn1, *stages, model.conv_head, model.bn2]
    else:
        tuned_modules = [*stages[max(0, len(stages) - blocks) :], model.conv_head, model.bn2]
    for parameter in model.parameters():
        parameter.requires_grad = False
    for module in [*head_modules, *tuned_modules]:
        for parameter in module.parameters():
            parameter.requires_grad = True
    tuned_ids = {id(m) for m in tuned_modules + head_modules}
    frozen = [m for m in [model.conv_stem, model.bn1, *stages] if id(m) not in tuned_ids]
    head = [p for m in head_modules for p in m.parameters()]
    backbone = [p for m in tuned_modules for p in m.parameters()]
    return head, backbone, frozen


@_sigchld_restored()
def finetune(
    model: Any,
    spec: InputSpec,
    train_images: Sequence[Path],
    train_labels: np.ndarray,
    val_images: Sequence[Path],
    val_labels: np.ndarray,
    config: FinetuneConfig,
    checkpoint: Path | None = None,
    resume: bool = False,
    augmentation: AugmentConfig | None = None,
    class_weights: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """Fine-tune in place on image files; the model ends with the weights of the best
    validation epoch (of the weight average, when `config.ema_decay` is set)."""
    torch = require("torch", "train")
    require("timm", "train")
    from timm.utils import ModelEmaV3

    augmentation = augmentation or augment_preset(config.augment)
    num_classes = int(model.get_classifier().out_features)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(config.seed)
    model = model.to(device).to(memory_format=torch.channels_last)
    model.drop_rate = config.drop_rate  # timm applies it to pooled features in forward_head
    head, backbone, frozen = trainable_parameters(model, config.blocks)
    optimizer = torch.optim.AdamW(
        [{"params": head, "lr": config.head_lr}, {"params": backbone, "lr": config.backbone_lr}],
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = max(1, -(-len(train_images) // config.batch_size))
    steps = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[config.head_lr, config.backbone_lr],
        total_steps=steps,
        pct_start=config.warmup,
    )
    mixer, loss_fn = _mixer_and_loss(config, num_classes, class_weights, device)
    ema = ModelEmaV3(model, decay=config.ema_decay, use_warmup=True) if config.ema_decay else None
    history: list[dict[str, float]] = []
    start_epoch, best_top1, best_state, stale = 0, -1.0, None, 0
    if resume and checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        _restore(state, model, optimizer, scheduler, ema, config, steps_per_epoch)
        start_epoch, history = state["epoch"], state["history"]
        best_top1, best_state, stale = state["best_top1"], state["best_model"], state["stale"]
        log.info("resumed fine-tuning from %s after epoch %d", checkpoint, start_epoch)
    rng = np.random.default_rng(config.seed + start_epoch)
    dataset = ImageDataset(train_images, train_labels, spec, augmentation, config.seed)
    for epoch in range(start_epoch + 1, config.epochs + 1):
        dataset.epoch = epoch
        t0 = time.perf_counter()
        loss = train_one_epoch(
            model,
            frozen,
            optimizer,
            scheduler,
            loss_fn,
            dataset,
            config.batch_size,
            rng,
            device,
            f"fine-tune {epoch}/{config.epochs}",
            mixer=mixer,
            ema=ema,
            step=(epoch - 1) * steps_per_epoch,
            workers=config.workers,
        )
        scored = ema.module if ema is not None else model
        val_top1 = evaluate(scored, spec, val_images, val_labels, config.batch_size, device)
        history.append(
            {
                "epoch": epoch,
                "loss": loss,
                "val_top1": val_top1,
                "seconds": time.perf_counter() - t0,
            }
        )
        log.info("fine-tune epoch %d: loss %.4f, val top-1 %.4f", epoch, loss, val_top1)
        # ties go to the later epoch: with no better score, more training is not worse
        if val_top1 >= best_top1 or np.isnan(val_top1):
            best_top1, stale = val_top1, 0
            best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
        else:
            stale += 1
        if checkpoint is not None:
            progress = {"epoch": epoch, "history": history, "best_top1": best_top1}
            progress |= {"best_model": best_state, "stale": stale}
            _save(checkpoint, model, optimizer, scheduler, ema, config, progress)
        if stale >= config.patience:
            log.info("early stop: no better validation top-1 for %d epochs", stale)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.drop_rate = 0.0
    for parameter in model.parameters():
        parameter.requires_grad = True
    model.to("cpu").eval()
    return history


def _mixer_and_loss(
    config: FinetuneConfig, num_classes: int, class_weights: np.ndarray | None, device: str
) -> tuple[Any, Any]:
    """timm's Mixup with its soft-target loss, or plain (optionally class-weighted) CE."""
    torch = require("torch", "train")
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy

    if config.mixup > 0 or config.cutmix > 0:
        if class_weights is not None:
            raise EdgeTLError("class weights (--balance) cannot be combined with mixup/cutmix")
        mixer = Mixup(
            mixup_alpha=config.mixup,
            cutmix_alpha=config.cutmix,
            label_smoothing=config.label_smoothing,
            num_classes=num_classes,
        )
        return mixer, SoftTargetCrossEntropy()
    weight = (
        torch.from_numpy(class_weights).float().to(device) if class_weights is not None else None
    )
    return None, torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)


def _save(
    path: Path,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    ema: Any,
    config: FinetuneConfig,
    progress: dict[str, Any],
) -> None:
    torch = require("torch", "train")
    state = {
        "model": model.state_dict(),
        "ema": ema.module.state_dict() if ema is not None else None,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "config": asdict(config),
    }
    torch.save(state | progress, path)


def _restore(
    state: dict[str, Any],
    model: Any,
    optimizer: Any,
    scheduler: Any,
    ema: Any,
    config: FinetuneConfig,
    steps_per_epoch: int,
) -> None:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if ema is not None and state.get("ema") is not None:
        ema.module.load_state_dict(state["ema"])
    if state["config"]["epochs"] == config.epochs:
        scheduler.load_state_dict(state["scheduler"])
        return
    # resumed with more (or fewer) epochs: same schedule shape, advanced to this point
    steps = config.epochs * steps_per_epoch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping a scheduler without optimizer steps
        for _ in range(min(state["epoch"] * steps_per_epoch, steps - 1)):
            scheduler.step()


def train_one_epoch(
    model: Any,
    frozen: list[Any],
    optimizer: Any,
    scheduler: Any,
    loss_fn: Any,
    dataset: ImageDataset,
    batch_size: int,
    rng: np.random.Generator,
    device: str,
    description: str,
    mixer: Any = None,
    ema: Any = None,
    step: int = 0,
    workers: int = 2,
) -> float:
    torch = require("torch", "train")
    model.train()
    for module in frozen:  # frozen BatchNorm keeps its ImageNet statistics
        module.eval()
    order = rng.permutation(len(dataset))
    total, seen = 0.0, 0
    # mixup pairs images within a batch, so an odd-sized last batch is dropped
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if mixer is not None and len(batches) > 1 and len(batches[-1]) % 2:
        batches = batches[:-1]
    batches = [[int(i) for i in b] for b in batches]
    for x, y in track(_loader(dataset, batches, workers), description, total=len(batches)):
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        y = y.to(device)
        if mixer is not None:
            x, y = mixer(x, y)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=device == "cuda"):
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        if ema is not None:
            ema.update(model, step=step)
        total += float(loss.detach()) * len(y)
        seen += len(y)
    return total / max(seen, 1)


@_sigchld_restored()
def model_logits(
    model: Any,
    spec: InputSpec,
    paths: Sequence[Path],
    batch_size: int,
    device: str = "cpu",
    workers: int = 0,
) -> np.ndarray:
    """Logits (N, C) of the whole model on image files, in eval mode."""
    torch = require("torch", "train")
    model.eval()
    dataset = ImageDataset(paths, np.zeros(len(paths), np.int64), spec)
    batches = [
        list(range(i, min(i + batch_size, len(paths)))) for i in range(0, len(paths), batch_size)
    ]
    chunks = []
    with torch.inference_mode():
        for x, _ in _loader(dataset, batches, workers):
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            chunks.append(model(x).float().cpu().numpy())
    if not chunks:
        return np.zeros((0, int(model.get_classifier().out_features)), np.float32)
    return np.concatenate(chunks)


def evaluate(
    model: Any,
    spec: InputSpec,
    paths: Sequence[Path],
    labels: np.ndarray,
    batch_size: int,
    device: str,
) -> float:
    if not len(labels):
        return float("nan")
    return top1(model_logits(model, spec, paths, batch_size, device), labels)
