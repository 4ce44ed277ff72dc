from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from model.config import PRESETS, TrainConfig
from search.space import BUILTIN_SPACES, Categorical, FloatRange, IntRange, SpaceError, load_space, parse_space


@pytest.mark.parametrize("name", BUILTIN_SPACES)
def test_builtin_spaces_load_and_hold_valid_configs(name: str) -> None:
    space = load_space(name)
    assert {"hidden_size", "lr", "batch_size", "optimizer"} <= set(space.params)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        cfg = space.suggest(trial, TrainConfig())
        assert isinstance(cfg, TrainConfig)
        lr = space.params["lr"]
        assert lr.low <= cfg.lr <= lr.high
        # quick trains every trial for V1's epochs (its V2 is compared with V1 at the same budget).
        assert (cfg.epochs == PRESETS["v1"].epochs) if name == "quick" else 12 <= cfg.epochs <= 30


def test_parse_kinds_and_fixed_values() -> None:
    space = parse_space(
        """
        cell = "gru"
        dropout = 0          # an int where a float is expected is fine
        [hidden_size]
        low = 16
        high = 64
        step = 16
        [lr]
        low = 1e-4
        high = 1e-2
        log = true
        [optimizer]
        choices = ["adam", "sgd"]
        """
    )
    assert space.fixed == {"cell": "gru", "dropout": 0.0}
    assert space.params["hidden_size"] == IntRange(16, 64, False, 16)
    assert space.params["lr"] == FloatRange(1e-4, 1e-2, True, None)
    assert space.params["optimizer"] == Categorical(("adam", "sgd"))
    cfg = space.suggest(optuna.trial.FixedTrial({"hidden_size": 48, "lr": 1e-3, "optimizer": "sgd"}), TrainConfig())
    assert (cfg.cell, cfg.hidden_size, cfg.lr, cfg.optimizer, cfg.dropout) == ("gru", 48, 1e-3, "sgd", 0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[hiden_size]\nlow = 1\nhigh = 2", "unknown parameter 'hiden_size'"),
        ("[lr]\nlow = 1e-2\nhigh = 1e-4", "range is inverted"),
        ("[lr]\nlow = 0.0\nhigh = 1e-2", "lr must be > 0"),
        ("[lr]\nlow = -1.0\nhigh = 1e-2\nlog = true", "lr must be > 0"),
        ("[weight_decay]\nlow = 0.0\nhigh = 1e-2\nlog = true", "log range needs low > 0"),
        ("[batch_size]\nchoices = [0, 64]", "batch_size must be >= 1"),
        ("[batch_size]\nchoices = []", "non-empty list"),
        ("[optimizer]\nchoices = [\"adam\", \"lion\"]", "optimizer must be one of"),
        ("[hidden_size]\nlow = 8.5\nhigh = 64", "must be an integer"),
        ("[hidden_size]\nlow = 8\nhigh = 64\nlgo = true", "unknown key 'lgo'"),
        ("[hidden_size]\nlow = 8", "needs both low and high"),
        ("[optimizer]\nlow = 1\nhigh = 2", "string parameter"),
        ("lr = \"fast\"\n[hidden_size]\nlow = 8\nhigh = 9", "lr must be a number"),
        ("cell = \"lstm\"", "searches nothing"),
        ("[lr\nlow = 1", "not valid TOML"),
    ],
)
def test_invalid_spaces_give_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(SpaceError, match=message) as info:
        parse_space(text, source="space.toml")
    assert "\n" not in str(info.value)


def test_missing_space_file(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="does not exist"):
        load_space(tmp_path / "nope.toml")


def test_baseline_params_keep_only_values_inside_the_space() -> None:
    space = load_space("default")
    params = space.params_of(PRESETS["v1"])
    assert params["hidden_size"] == 128 and params["optimizer"] == "adam"
    assert "weight_decay" not in params  # V1 has none; a log range cannot hold 0
    assert "epochs" not in params  # V1's 10 epochs lie below the default range (12-30)
    assert "grad_clip" in params and params["shift"] == 0


def test_fixed_values_apply_to_sampled_trials_but_never_change_the_baseline() -> None:
    space = parse_space("ema = 0.999\nhidden_size = 64\n[lr]\nlow = 1e-4\nhigh = 1e-2\nlog = true")
    v1 = PRESETS["v1"]
    baseline = space.suggest(optuna.trial.FixedTrial({"lr": v1.lr}), v1, only=space.params_of(v1))
    assert baseline == v1  # the objective enqueues it as V1, so it must train as V1
    sampled = space.suggest(optuna.trial.FixedTrial({"lr": 1e-3}), v1)
    assert (sampled.ema, sampled.hidden_size, sampled.lr) == (0.999, 64, 1e-3)


def test_max_epochs_follows_the_space() -> None:
    assert load_space("default").max_epochs(TrainConfig()) == 30
    fixed = parse_space("epochs = 4\n[lr]\nlow = 1e-3\nhigh = 1e-2")
    assert fixed.max_epochs(TrainConfig()) == 4
