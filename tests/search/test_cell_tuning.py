"""compare-cells' per-cell tuning studies prune as launch does, and keep one step meaning."""

from __future__ import annotations

import optuna

from model.config import TrainConfig
from search.cell_tuning import tuning_study
from search.pruning import DEFAULT_PRUNE_BY
from search.space import load_space


def test_a_new_tuning_study_prunes_like_launch_and_an_old_one_keeps_epochs() -> None:
    storage = optuna.storages.InMemoryStorage()
    space, base = load_space("quick"), TrainConfig()
    new = tuning_study(storage, "s.cells.gru", "gru", space, base, seed=0)
    assert new.user_attrs["prune_by"] == DEFAULT_PRUNE_BY
    assert isinstance(new.pruner, optuna.pruners.HyperbandPruner)
    top = 100 if DEFAULT_PRUNE_BY == "progress" else space.max_epochs(base)
    assert new.pruner._max_resource == top

    # A study from before the attribute was stored already holds trials reported by epoch.
    old = optuna.create_study(storage=storage, study_name="s.cells.rnn", direction="maximize")
    trial = old.ask()
    trial.report(0.5, 1)
    old.tell(trial, 0.5)
    resumed = tuning_study(storage, "s.cells.rnn", "rnn", space, base, seed=0)
    assert resumed.user_attrs["prune_by"] == "epoch"
    assert resumed.pruner._max_resource == space.max_epochs(base)
    # ... and on the next resume too, whatever the default.
    assert tuning_study(storage, "s.cells.rnn", "rnn", space, base, seed=0).user_attrs["prune_by"] == "epoch"
