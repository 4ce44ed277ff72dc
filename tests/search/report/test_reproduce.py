"""The report's reproduce commands parse back, with the real CLI parser, to the stored config."""

from __future__ import annotations

import shlex
from pathlib import Path

import optuna
import pytest

from model.config import TrainConfig
from search.cli import build_parser
from search.commands._common import config_from_args
from search.commands.train import stored_trial_config
from search.report.reproduce import train_command, trial_command
from tests.search.report.conftest import BEST, make_study

ODD = TrainConfig(cell="gru", hidden_size=77, lr=0.0012345678901234567, batch_size=33, epochs=3,
                  optimizer="rmsprop", momentum=0.37, weight_decay=3.3e-07, dropout=0.125,
                  schedule="cosine", grad_clip=0.7, forget_bias=-1.5, recurrent_init="orthogonal",
                  shift=2, seed=11)


def _parse(command: str):
    argv = shlex.split(command)
    assert argv[:2] == ["lstm-search", "train"]
    return build_parser().parse_args(argv[1:])


@pytest.mark.parametrize("cfg", [BEST, ODD, TrainConfig()], ids=["v2", "odd-values", "defaults"])
def test_train_command_round_trips_to_the_same_config(cfg: TrainConfig) -> None:
    args = _parse(train_command(cfg))
    assert config_from_args(args) == cfg  # every field, floats to the last bit
    assert args.val_size == 0 and args.subset is None  # the final runs' data: all training images
    # Whatever preset a reader adds, every field is spelled out, so the config is the same.
    assert config_from_args(_parse(train_command(cfg) + " --preset template")) == cfg
    assert _parse(train_command(cfg, subset=400)).subset == 400


def test_train_study_trial_retrains_the_stored_config(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hand.db'}"
    optuna.copy_study(from_study_name="hand", from_storage=make_study()._storage, to_storage=url)
    args = _parse(trial_command("hand", 4, url))
    stored = optuna.load_study(study_name="hand", storage=url).trials[4].user_attrs["config"]
    assert config_from_args(args, base=stored_trial_config(args)) == TrainConfig.from_dict(stored) == BEST
    # Flags still override the stored trial (e.g. a shorter retrain).
    args = _parse(trial_command("hand", 4, url) + " --epochs 1")
    assert config_from_args(args, base=stored_trial_config(args)) == BEST.with_overrides(epochs=1)


def test_cache_keys_of_runs_cached_before_a_field_was_added_still_match() -> None:
    from search.report.retrain import cache_key

    # The key of the default config as computed before ``steps`` existed (recorded from that
    # version): the existing study's cached V1/V2 runs stay valid.
    assert cache_key(TrainConfig(), None) == "final_run:fe4836208442b6ca"
    assert cache_key(TrainConfig(steps=14), None) != cache_key(TrainConfig(), None)


def test_a_storage_password_never_reaches_the_report() -> None:
    from search.commands.report import public_url

    assert public_url("postgresql://lab:s3cret@db.example/optuna") == "postgresql://lab:***@db.example/optuna"
    assert public_url("sqlite:///studies/mnist.db") == "sqlite:///studies/mnist.db"
