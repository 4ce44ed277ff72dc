from __future__ import annotations

import pytest

from model.config import PRESETS, TrainConfig
from model.errors import ConfigError


def test_presets_match_the_lab() -> None:
    t, v1 = PRESETS["template"], PRESETS["v1"]
    assert (t.hidden_size, t.lr, t.batch_size, t.epochs, t.optimizer) == (32, 6e-5, 128, 2, "adam")
    assert (v1.hidden_size, v1.lr, v1.batch_size, v1.epochs, v1.optimizer) == (128, 1e-3, 128, 10, "adam")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"lr": float("nan")}, "lr must be finite"),
        ({"optimizer": "adagrad"}, "optimizer must be one of"),
        ({"dropout": 1.0}, "dropout must be < 1.0"),
        ({"hidden_size": 12.5}, "hidden_size must be an integer"),
        ({"epochs": True}, "epochs must be an integer"),
    ],
)
def test_invalid_values_name_the_field(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**change)


def test_dict_round_trip_and_unknown_keys() -> None:
    cfg = PRESETS["v1"].with_overrides(dropout=0.1, lr=None)
    assert cfg.dropout == 0.1 and cfg.lr == 1e-3
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown config key"):
        TrainConfig.from_dict({**cfg.to_dict(), "hiden_size": 3})
