"""A hand-made study with known trials, and a tiny idx-format data root for end-to-end runs."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from model.config import PRESETS, TrainConfig
from tests.fakes import write_fake_mnist

DISTRIBUTIONS = {
    "lr": FloatDistribution(1e-4, 1e-2, log=True),
    "hidden_size": IntDistribution(4, 256, log=True),
    "optimizer": CategoricalDistribution(["adam", "rmsprop"]),
    "weight_decay": FloatDistribution(1e-7, 1e-2, log=True),
}
# (lr, hidden, optimizer, weight_decay, validation accuracy) of trials 1-8, all complete.
# The best quarter (2 trials) used lr 3e-3 and 4e-3; the worst quarter 1.5e-4 and 2e-4.
SAMPLED = [
    (3e-3, 64, "adam", 1e-5, 0.97),
    (2e-4, 16, "rmsprop", 1e-3, 0.80),
    (1e-3, 32, "adam", 1e-6, 0.93),
    (4e-3, 128, "adam", 1e-4, 0.98),
    (1.5e-4, 8, "rmsprop", 1e-2, 0.75),
    (8e-4, 32, "rmsprop", 1e-5, 0.90),
    (6e-4, 16, "adam", 1e-7, 0.88),
    (2e-3, 64, "adam", 1e-3, 0.95),
]
BEST = TrainConfig(hidden_size=128, lr=4e-3, batch_size=64, epochs=8, optimizer="adamw", weight_decay=1e-4,
                   dropout=0.2, schedule="onecycle", grad_clip=1.0, forget_bias=1.0)


def tiny(cfg: TrainConfig) -> TrainConfig:
    """The same config shrunk to train in well under a second on the tiny data."""
    return cfg.with_overrides(hidden_size=8, epochs=2, batch_size=64)


def make_study(shrink: bool = False) -> optuna.Study:
    """Trial 0 = V1 (weight decay 0 lies outside the log range, so it is not a param),
    trials 1-8 complete as in SAMPLED (trial 4 best), then 2 pruned and 1 failed."""
    fit = tiny if shrink else (lambda c: c)
    study = optuna.create_study(study_name="hand", direction="maximize",
                                storage=optuna.storages.InMemoryStorage())
    for key, value in {"sampler": "tpe", "pruner": "hyperband", "space": "hand-made", "subset": 10_000,
                       "val_size": 5_000, "baseline_config": fit(PRESETS["v1"]).to_dict()}.items():
        study.set_user_attr(key, value)
    v1 = fit(PRESETS["v1"])
    study.add_trial(create_trial(
        params={"lr": v1.lr, "hidden_size": v1.hidden_size, "optimizer": v1.optimizer},
        distributions={k: DISTRIBUTIONS[k] for k in ("lr", "hidden_size", "optimizer")},
        value=0.96, user_attrs={"baseline": "v1", "config": v1.to_dict()},
        intermediate_values={1: 0.9, 2: 0.96},
    ))
    for lr, hidden, opt, wd, value in SAMPLED:
        cfg = BEST if value == 0.98 else TrainConfig(lr=lr, hidden_size=hidden, optimizer=opt, weight_decay=wd)
        study.add_trial(create_trial(
            params={"lr": lr, "hidden_size": hidden, "optimizer": opt, "weight_decay": wd},
            distributions=DISTRIBUTIONS, value=value, user_attrs={"config": fit(cfg).to_dict()},
            intermediate_values={1: value - 0.05, 2: value},
        ))
    for lr in (1e-4, 9e-3):
        study.add_trial(create_trial(
            params={"lr": lr, "hidden_size": 8, "optimizer": "adam", "weight_decay": 1e-6},
            distributions=DISTRIBUTIONS, state=TrialState.PRUNED, intermediate_values={1: 0.3},
        ))
    study.add_trial(create_trial(state=TrialState.FAIL))
    return study


@pytest.fixture
def hand_study() -> optuna.Study:
    return make_study()


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with 400 training and 100 test images in torchvision's layout."""
    return write_fake_mnist(tmp_path_factory.mktemp("tiny_mnist"), n_train=400, n_test=100, seed=7)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # 2 shared cores: tests must not fight over them
