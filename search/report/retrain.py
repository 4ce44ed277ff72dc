"""The final evaluation: retrain a config with several seeds on the training images,
score each run on the 10,000 test images, and cache every run in the study.

The search never reads the test set; final runs do, and they train here (``run_final``:
the report's runs, compare-cells' runs and benchmarks/paired_runs.py's), as does
``lstm-search train``; the report also reads its images and labels for the figures.
``FinalRunSpec`` holds how one report's runs train, fixed before the first one starts.

Each run is stored as one study user attr (``final_run:<key>``, about 11 kB of JSON: the
per-epoch rows, the predicted digit of every test image as a 10,000-character string
and, for an LSTM run asked for them, its gate statistics), keyed by the config (seed
included) and the training data, so a second report costs seconds and asking for more
seeds trains only the new ones.

A run with seed s trains on the images in the order ``load_splits(val_size=0, seed=s)``
gives them, which is what ``lstm-search train --seed s --val-size 0`` does: the report's
reproduce command rebuilds the run itself, not only its config.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import optuna
import torch
from torch import Tensor

from model.config import TrainConfig
from model.data import MNIST_TRAIN_IMAGES, load_splits, load_test
from model.gates import forced_accuracy, gate_means
from model.train import fit

__all__ = [
    "CACHE_PREFIX",
    "DEFAULT_SEEDS",
    "FORCED_GATES",
    "FinalData",
    "FinalJob",
    "FinalRun",
    "FinalRunSpec",
    "cache_key",
    "cached_run",
    "gate_report",
    "load_final_data",
    "plan_final_runs",
    "predict",
    "run_final",
    "seeds_of",
    "store_run",
]

CACHE_PREFIX = "final_run:"
FULL_TRAIN = MNIST_TRAIN_IMAGES
DEFAULT_SEEDS = 3  # final runs per configuration: enough to see the spread between seeds
# The gate ablations of the report's gates section: each forces one gate to a constant at inference.
FORCED_GATES: tuple[tuple[str, float], ...] = (("f", 1.0), ("f", 0.0), ("i", 1.0), ("o", 1.0))


class FinalJob(NamedTuple):
    """A final run to train: its log prefix ("V2 seed 1"), config (seed included), cache key."""

    label: str
    cfg: TrainConfig
    key: str
    gates: bool  # measure the LSTM's gates (the report's gates section)


@dataclass(frozen=True)
class FinalRunSpec:
    """How one report's final runs train, as ``LaunchSettings`` is for a launch: fixed
    before the first run starts and handed down to planning, the processes and each child.

    ``seeds``: runs per configuration, seeded from the config's own seed up (``seeds_of``);
    ``data_root`` and ``subset``: the training images (``subset`` None: all 60,000);
    ``device``: where they train (``str(torch.device)``: a child process receives it);
    ``precision``: the precision every configuration retrains in (None: each one's own);
    ``retrain``: train even the runs cached in the study;
    ``threads``: CPU threads for all the runs together (None: torch's current count).
    """

    seeds: int = DEFAULT_SEEDS
    data_root: str | None = None
    subset: int | None = None
    device: str = "cpu"
    precision: str | None = None
    retrain: bool = False
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1 (got {self.seeds})")

    def config(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` as its final runs train it: in this spec's precision, if it sets one."""
        return cfg.with_overrides(precision=self.precision)


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
    # LSTM runs asked for them: {"means": {i, f, o, abs_c: [T floats]}, "forced":
    # {"none": acc, "f=1": acc, ...}}; None otherwise (and in runs cached before gates).
    gates: dict[str, Any] | None = None

    def predicted(self) -> list[int]:
        return [int(c) for c in self.predictions]


def load_final_data(root: str | None, subset: int | None = None, seed: int = 0) -> FinalData:
    """All 60,000 training images (no validation split: the search already chose) in the
    order of ``seed``, and the test set; ``subset`` keeps a stratified sample of training
    images for quick runs."""
    splits = load_splits(root, val_size=0, subset=subset, seed=seed)
    test_x, test_y = load_test(root)
    return FinalData(splits.train_x, splits.train_y, test_x, test_y, subset)


# The fields TrainConfig had when runs were first cached. A field added since enters the
# key only when it differs from its default, which by construction reproduces the older
# behaviour (steps = 28 is the row-by-row reading every earlier run used), so adding a
# field does not throw away every cached run of every study.
_KEYED_ALWAYS = frozenset((
    "cell", "hidden_size", "lr", "batch_size", "epochs", "optimizer", "momentum", "weight_decay",
    "dropout", "schedule", "grad_clip", "forget_bias", "recurrent_init", "shift", "seed",
))


def cache_key(cfg: TrainConfig, subset: int | None) -> str:
    """Same config and same training images -> same key; anything else retrains."""
    config = {f.name: getattr(cfg, f.name) for f in fields(cfg)
              if f.name in _KEYED_ALWAYS or getattr(cfg, f.name) != f.default}
    blob = json.dumps(
        {"config": config, "train_images": subset or FULL_TRAIN, "subset": subset}, sort_keys=True
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


def seeds_of(cfg: TrainConfig, count: int) -> list[int]:
    """The seeds of ``count`` final runs: the config's own seed first (so the run a
    one-seed report cached stays the first), then the next ones."""
    return [cfg.seed + k for k in range(count)]


def gate_report(model: torch.nn.Module, test_x: Tensor, test_y: Tensor) -> dict[str, Any]:
    """The gates section's numbers for one trained LSTM: per-step gate means over the test
    images and the test accuracy with each gate of FORCED_GATES held constant."""
    means = gate_means(model, test_x)
    forced = {"none": forced_accuracy(model, test_x, test_y)}
    for gate, value in FORCED_GATES:
        forced[f"{gate}={value:g}"] = forced_accuracy(model, test_x, test_y, {gate: value})
    return {"means": means._asdict(), "forced": forced}


def run_final(
    cfg: TrainConfig,
    data: FinalData,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] | None = None,
    gates: bool = False,
) -> FinalRun:
    """Train ``cfg`` with its seed on the training images, scoring the test set each
    epoch; with ``gates`` (LSTM only) also measure what its gates do on the test set."""
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
        gates=gate_report(result.model, test_x, test_y) if gates and cfg.cell == "lstm" else None,
    )


def plan_final_runs(
    study: optuna.Study,
    label: str,
    cfg: TrainConfig,
    spec: FinalRunSpec,
    gates: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[list[FinalRun | None], list[FinalJob]]:
    """The cached run of each of ``spec.seeds`` seeds (None where it must train) and the
    runs to train, labelled ``"{label} seed {s}"``; nothing is loaded or trained here (the
    runs train in ``search.report.parallel``), so a cached report loads no images. With
    ``gates``, every LSTM run trained measures its gates, and if all of its runs are cached
    from before gates were measured, the first seed is retrained."""
    cached: list[FinalRun | None] = []
    jobs: list[FinalJob] = []
    measure = gates and cfg.cell == "lstm"
    seeds = seeds_of(cfg, spec.seeds)
    for seed in seeds:
        run_cfg = cfg.with_overrides(seed=seed)
        key = cache_key(run_cfg, spec.subset)
        run = None if spec.retrain else cached_run(study, key)
        cached.append(run)
        if run is None:
            jobs.append(FinalJob(f"{label} seed {seed}", run_cfg, key, measure))
    if measure and not jobs and all(r is not None and r.gates is None for r in cached):
        run_cfg = cfg.with_overrides(seed=seeds[0])
        cached[0] = None
        if log is not None:
            log(f"{label} seed {seeds[0]}: retraining to measure its gates (its cached run predates them)")
        jobs.append(FinalJob(f"{label} seed {seeds[0]}", run_cfg, cache_key(run_cfg, spec.subset), True))
    return cached, jobs
