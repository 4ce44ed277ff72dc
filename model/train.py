"""Training and evaluation as plain functions.

``fit`` knows nothing of Optuna: after every epoch it calls ``on_epoch(stats)``, and a
caller that wants to stop (a pruner, a time budget) raises from that callback.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from model.augment import augment, random_shift
from model.classifier import LSTMClassifier, build_model
from model.config import TrainConfig
from model.data import iterate_minibatches
from model.precision import autocast, resolve_precision

__all__ = [
    "EpochStats",
    "FitResult",
    "NonFiniteLossError",
    "ema_update",
    "evaluate",
    "fit",
    "make_optimizer",
    "make_scheduler",
    "random_shift",
    "seed_everything",
    "train_one_epoch",
]

Log = Callable[[str], None]
EVAL_BATCH = 1000


class EpochStats(NamedTuple):
    epoch: int  # 1-based
    train_loss: float  # mean over the epoch's mini-batches
    val_loss: float
    val_acc: float  # fraction in [0, 1]
    lr: float  # learning rate at the end of the epoch
    seconds: float  # wall time of the epoch, training and evaluation


class FitResult(NamedTuple):
    model: LSTMClassifier
    history: list[EpochStats]
    precision: str = "fp32"  # what training ran in ("fp32" or "bf16"; "auto" resolved)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; carries where it happened."""

    def __init__(self, epoch: int, step: int, value: float) -> None:
        super().__init__(f"training loss became {value} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.value = epoch, step, value


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)  # also seeds CUDA generators


def make_optimizer(params: Iterable[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    kw = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, **kw)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, **kw)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, momentum=cfg.momentum, **kw)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=cfg.momentum, nesterov=cfg.momentum > 0, **kw)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")  # TrainConfig validates first


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Stepped once per mini-batch, so short runs still get the whole schedule."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if cfg.schedule == "onecycle":
        # One-cycle also cycles momentum (Adam's beta1); SGD/RMSprop without momentum have none.
        cycle_momentum = cfg.optimizer in ("adam", "adamw") or cfg.momentum > 0
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=total, cycle_momentum=cycle_momentum
        )
    return None


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    x: Tensor,
    y: Tensor,
    cfg: TrainConfig,
    generator: torch.Generator,
    epoch: int = 1,
    log: Log | None = None,
    log_every: int = 100,
    max_steps: int | None = None,
    ema: AveragedModel | None = None,
    precision: str = "fp32",
) -> float:
    """One pass over (x, y) in shuffled mini-batches; returns the mean training loss.

    ``ema``, if given, is updated after every optimizer step. precision "bf16" runs
    forward and loss under bf16 autocast; backward and the optimizer step stay outside it
    (float32 master weights and optimizer state).
    """
    model.train()
    steps = math.ceil(y.shape[0] / cfg.batch_size)
    if max_steps is not None:
        steps = min(steps, max_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    total = torch.zeros((), device=x.device)
    for step, (xb, yb) in enumerate(iterate_minibatches(x, y, cfg.batch_size, generator), 1):
        xb = augment(xb, cfg.shift, cfg.rotate, cfg.scale, generator)
        with autocast(precision, x.device):
            loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        if scheduler is not None:
            scheduler.step()
        total += loss.detach()
        # Checking finiteness syncs with the device, so only every log_every steps.
        if step % log_every == 0 or step == steps:
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteLossError(epoch, step, value)
            if log is not None:
                log(f"Epoch [{epoch}/{cfg.epochs}], Step [{step}/{steps}], Loss: {value:.4f}")
        if step == steps:
            break
    mean = total.item() / steps
    if not math.isfinite(mean):
        raise NonFiniteLossError(epoch, steps, mean)
    return mean


@torch.no_grad()
def evaluate(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int = EVAL_BATCH, precision: str = "fp32"
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (fraction) over (x, y), in ``precision`` ("fp32"
    or "bf16" autocast). fit scores in float32 whatever it trains in, so validation
    scores compare across precisions and match the report's float32 test evaluation."""
    model.eval()
    if y.shape[0] == 0:
        return float("nan"), float("nan")
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for xb, yb in iterate_minibatches(x, y, batch_size):
        with autocast(precision, x.device):
            logits = model(xb)
            loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(dim=1) == yb).sum()
    n = y.shape[0]
    return loss_sum.item() / n, correct.item() / n


def ema_update(decay: float) -> Callable[[list[Tensor], list[Tensor], Tensor], None]:
    """The ``multi_avg_fn`` of an exponential moving average whose decay warms up:
    ``min(decay, (1 + n) / (10 + n))`` at the n-th update (the schedule of TensorFlow's
    ExponentialMovingAverage with ``num_updates``).

    A fixed decay of 0.999 would still hold ~0.999^n of the random initial weights after n
    steps (half of them after 700), so an averaged trial would score far below its raw
    weights in its first epochs, exactly where the pruner compares it with the others.
    With the warm-up the average spans about the last n/9 steps until that reaches the
    decay's own horizon, 1 / (1 - decay) steps.
    """

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        n = int(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(averaged, current, 1.0 - d)

    return update


def fit(
    cfg: TrainConfig,
    train_x: Tensor,
    train_y: Tensor,
    eval_x: Tensor,
    eval_y: Tensor,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[EpochStats], None] | None = None,
    log: Log | None = None,
    log_every: int = 100,
    max_steps: int | None = None,
) -> FitResult:
    """Train a fresh model for cfg.epochs; evaluate on (eval_x, eval_y) after each epoch.

    ``max_steps`` caps the mini-batches per epoch (for --dry-run and cheap tests).
    ``cfg.precision`` "auto" is resolved here (``model.precision``, probed once per
    process; callers that record it call ``resolve_precision`` too and get the same
    answer); the result says what training used.
    """
    device = torch.device(device)
    precision = resolve_precision(cfg.precision, device)
    if log is not None and cfg.precision != precision:
        log(f"precision {cfg.precision}: training in {precision} on {device}")
    seed_everything(cfg.seed)
    model = build_model(cfg).to(device)
    train_x, train_y = train_x.to(device), train_y.to(device)
    eval_x, eval_y = eval_x.to(device), eval_y.to(device)
    optimizer = make_optimizer(model.parameters(), cfg)
    steps = math.ceil(train_y.shape[0] / cfg.batch_size)
    if max_steps is not None:
        steps = min(steps, max_steps)
    scheduler = make_scheduler(optimizer, cfg, steps)
    generator = torch.Generator().manual_seed(cfg.seed)
    # An exponential moving average of the weights is what gets evaluated and returned: a
    # cheap, well-known gain at the end of training (torch.optim.swa_utils).
    ema = AveragedModel(model, multi_avg_fn=ema_update(cfg.ema)) if cfg.ema > 0 else None
    scored = model if ema is None else ema.module
    history: list[EpochStats] = []
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        train_loss = train_one_epoch(
            model, optimizer, scheduler, train_x, train_y, cfg, generator,
            epoch=epoch, log=log, log_every=log_every, max_steps=max_steps, ema=ema,
            precision=precision,
        )
        val_loss, val_acc = evaluate(scored, eval_x, eval_y)
        stats = EpochStats(
            epoch=epoch,
            train_loss=train_loss,
            val_loss=val_loss,
            val_acc=val_acc,
            lr=optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - start,
        )
        history.append(stats)
        if log is not None:
            log(_epoch_line(stats, cfg.epochs, scored=len(eval_y) > 0))
        if on_epoch is not None:
            on_epoch(stats)
    return FitResult(scored, history, precision)


def _epoch_line(stats: EpochStats, epochs: int, scored: bool) -> str:
    """The lab-style log line of one epoch. With no evaluation images (`train --val-size 0`)
    the scores are NaN, so they are left out."""
    scores = f"eval loss {stats.val_loss:.4f}, eval acc {100 * stats.val_acc:.2f}%, " if scored else ""
    return (f"Epoch [{stats.epoch}/{epochs}] train loss {stats.train_loss:.4f}, {scores}"
            f"lr {stats.lr:.2e}, {stats.seconds:.1f}s")
