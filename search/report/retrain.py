"""The final evaluation: retrain a config with one seed on the training images, score it
on the 10,000 test images, and cache the result in the study.

This module is the only place in the search package that reads the test set. Each run
is stored as one study user attr (``final_run:<key>``, about 11 kB of JSON: the
per-epoch rows and the predicted digit of every test image as a 10,000-character
string), keyed by the config and the training data, so a second report costs seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import optuna
import torch
from torch import Tensor

from model.config import TrainConfig
from model.data import MNIST_TRAIN_IMAGES, load_splits, load_test
from model.train import fit

__all__ = [
    "CACHE_PREFIX",
    "FinalData",
    "FinalRun",
    "cache_key",
    "cached_run",
    "final_run",
    "load_final_data",
    "predict",
    "run_final",
    "store_run",
]

CACHE_PREFIX = "final_run:"
FULL_TRAIN = MNIST_TRAIN_IMAGES


class FinalData(NamedTuple):
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    subset: int | None  # None: all 60,000 training images


class FinalRun(NamedTuple):
    config: dict[str, Any]
    epochs: list[dict[str, float]]  # epoch, train_loss, test_loss, test_acc, lr, seconds
    test_acc: float
    predictions: str  # predicted digit of test image i at position i
    train_images: int
    seconds: float

    def predicted(self) -> list[int]:
        return [int(c) for c in self.predictions]


def load_final_data(root: str | None, subset: int | None = None) -> FinalData:
    """All 60,000 training images (no validation split: the search already chose) and
    the test set; ``subset`` keeps a stratified sample of training images for quick runs."""
    splits = load_splits(root, val_size=0, subset=subset, seed=0)
    test_x, test_y = load_test(root)
    return FinalData(splits.train_x, splits.train_y, test_x, test_y, subset)


def cache_key(cfg: TrainConfig, subset: int | None) -> str:
    """Same config and same training images -> same key; anything else retrains."""
    blob = json.dumps(
        {"config": cfg.to_dict(), "train_images": subset or FULL_TRAIN, "subset": subset}, sort_keys=True
    )
    return CACHE_PREFIX + hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_run(study: optuna.Study, key: str) -> FinalRun | None:
    stored = study.user_attrs.get(key)
    if not isinstance(stored, dict):
        return None
    try:
        return FinalRun(**stored)
    except TypeError:  # written by an older layout: retrain rather than guess
        return None


def store_run(study: optuna.Study, key: str, run: FinalRun) -> None:
    study.set_user_attr(key, run._asdict())


@torch.no_grad()
def predict(model: torch.nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    model.eval()
    return torch.cat([model(x[i : i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)])


def run_final(
    cfg: TrainConfig,
    data: FinalData,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] | None = None,
) -> FinalRun:
    """Train ``cfg`` with its seed on the training images, scoring the test set each epoch."""
    start = time.perf_counter()
    device = torch.device(device)
    test_x, test_y = data.test_x.to(device), data.test_y.to(device)
    result = fit(cfg, data.train_x, data.train_y, test_x, test_y, device=device, log=log, log_every=10**9)
    preds = predict(result.model, test_x).cpu()
    epochs = [
        {"epoch": s.epoch, "train_loss": s.train_loss, "test_loss": s.val_loss,
         "test_acc": s.val_acc, "lr": s.lr, "seconds": s.seconds}
        for s in result.history
    ]
    return FinalRun(
        config=cfg.to_dict(),
        epochs=epochs,
        test_acc=float((preds == data.test_y).float().mean()),
        predictions="".join(str(int(p)) for p in preds.tolist()),
        train_images=int(data.train_y.numel()),
        seconds=time.perf_counter() - start,
    )


def final_run(
    study: optuna.Study,
    cfg: TrainConfig,
    data: Callable[[], FinalData],
    subset: int | None = None,
    device: torch.device | str = "cpu",
    retrain: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[FinalRun, bool]:
    """The cached run of ``cfg`` or a fresh one (stored). Returns (run, trained_now).

    ``data`` is called only when training is needed: a cached report loads no images.
    """
    key = cache_key(cfg, subset)
    if not retrain:
        run = cached_run(study, key)
        if run is not None:
            return run, False
    run = run_final(cfg, data(), device=device, log=log)
    store_run(study, key, run)
    return run, True

