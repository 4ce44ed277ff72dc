"""The one line a launch prints per finished trial (search/progress.py, describe_trial)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search.progress import describe_trial


@pytest.mark.parametrize(("steps", "expected"), [
    ([1, 2, 3], "pruned after epoch 3 of 10"),  # --prune-by epoch: steps are epochs
    ([10, 20, 30, 40], "pruned after epoch 4 of 10"),  # --prune-by progress: steps are % done
])
def test_a_pruned_trial_names_the_epochs_it_trained(steps: list[int], expected: str) -> None:
    trial = optuna.trial.create_trial(
        state=TrialState.PRUNED, params={"lr": 0.001},
        distributions={"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)},
        intermediate_values=dict.fromkeys(steps, 0.9),
        user_attrs={"config": {"epochs": 10}, "trial_seconds": 12.0},
    )
    line = describe_trial(trial)
    assert expected in line and "in 12s" in line and "lr=0.001" in line


def test_a_complete_baseline_trial_shows_its_accuracy() -> None:
    trial = optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.9876, params={},
                                      distributions={}, user_attrs={"baseline": "v1"})
    assert ": val acc 98.76%" in describe_trial(trial) and "[V1 baseline]" in describe_trial(trial)


def test_a_failed_trial_says_why() -> None:
    trial = optuna.trial.create_trial(state=TrialState.FAIL, params={}, distributions={},
                                      user_attrs={"fail_reason": "time budget (--timeout) reached"})
    assert describe_trial(trial) == f"trial {trial.number}: failed (time budget (--timeout) reached)"
