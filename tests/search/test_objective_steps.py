"""What step the objective reports each epoch at, and that a finished trial is never pruned."""

from __future__ import annotations

import optuna
import torch

from model.config import TrainConfig
from search.objective import Objective
from search.space import parse_space
from tests.search.test_objective_budget import _data


class _PruneFrom(optuna.pruners.BasePruner):
    """Prunes every trial once it has reported a step >= ``step``; records the steps asked."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.asked: list[int] = []

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        last = trial.last_step
        self.asked.append(last)
        return last is not None and last >= self.step


def _run(epochs: int, pruner: optuna.pruners.BasePruner, progress: bool) -> optuna.trial.FrozenTrial:
    space = parse_space(f"epochs = {epochs}\n[hidden_size]\nlow = 8\nhigh = 16\n")
    objective = Objective(space=space, base=TrainConfig(batch_size=32, seed=0), data=_data(),
                          device=torch.device("cpu"), max_steps=1, progress_steps=progress)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(objective, n_trials=1)
    return study.trials[0]


def test_steps_are_epochs_by_default() -> None:
    trial = _run(4, optuna.pruners.NopPruner(), progress=False)
    assert list(trial.intermediate_values) == [1, 2, 3, 4]


def test_progress_steps_are_percent_of_the_trials_own_epochs() -> None:
    trial = _run(4, optuna.pruners.NopPruner(), progress=True)
    assert list(trial.intermediate_values) == [25, 50, 75, 100]


def test_a_trial_that_did_all_its_epochs_completes_even_if_the_pruner_says_prune() -> None:
    pruner = _PruneFrom(step=3)  # says "prune" only at the last epoch of a 3-epoch trial
    trial = _run(3, pruner, progress=False)
    assert pruner.asked == [1, 2, 3]  # still asked at the end: SHA records rungs when asked
    assert trial.state == optuna.trial.TrialState.COMPLETE
    pruned = _run(4, _PruneFrom(step=3), progress=False)  # the same verdict one epoch early
    assert pruned.state == optuna.trial.TrialState.PRUNED
