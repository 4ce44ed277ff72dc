"""`export --format json` writes valid JSON (null, never a bare NaN) for NaN scores and curves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna

from search.cli import main


def _refuse(name: str) -> object:
    raise AssertionError(f"bare {name} in the JSON")


def test_nan_scores_and_curves_are_written_as_null(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="nan", storage=url, direction="maximize")
    # What `launch --val-size 0` used to leave: epochs scored NaN, the trial pruned.
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED, intermediate_values={1: math.nan},
        user_attrs={"val_loss": [math.nan, math.inf], "lr": [1e-3, 5e-4]},
    ))
    study.add_trial(optuna.trial.create_trial(value=0.5, intermediate_values={1: 0.5}))
    out = tmp_path / "t.json"
    assert main(["export", "--study", "nan", "--storage", url, "--format", "json", "--out", str(out)]) == 0
    rows = json.loads(out.read_text(), parse_constant=_refuse)
    assert rows[0]["val_acc_epoch_1"] is None
    assert rows[0]["user_attrs_val_loss"] == [None, None]
    assert rows[1]["value"] == 0.5 and rows[0]["user_attrs_lr"] == [1e-3, 5e-4]
