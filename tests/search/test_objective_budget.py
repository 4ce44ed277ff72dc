"""`launch --timeout` is a hard budget: the objective stops a trial at the deadline."""

from __future__ import annotations

import time

import optuna
import pytest
import torch

from model.config import TrainConfig
from model.data import MnistSplits
from search.confirm import SearchEnd
from search.objective import Objective
from search.space import parse_space


def _data(n: int = 64) -> MnistSplits:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return MnistSplits(x, y, x[:32], y[:32])


def _objective(epochs: int, deadline: float | None, search_deadline: float | None = None) -> Objective:
    space = parse_space(f"epochs = {epochs}\n[hidden_size]\nlow = 8\nhigh = 16\n")
    return Objective(space=space, base=TrainConfig(batch_size=32, seed=0), data=_data(),
                     device=torch.device("cpu"), max_steps=1, deadline=deadline,
                     search_end=None if search_deadline is None or deadline is None
                     else SearchEnd.fixed(deadline, search_deadline))


def test_trial_past_the_deadline_stops_after_one_epoch_as_pruned() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    study.optimize(_objective(epochs=5, deadline=time.time() - 1), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [1]  # one epoch trained and reported, not five
    assert "time budget" in trial.user_attrs["fail_reason"]
    assert len(trial.user_attrs["train_loss"]) == 1


def test_last_epoch_completes_even_past_the_deadline() -> None:
    # Stopping at the final epoch would throw away a finished result for no saving.
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    study.optimize(_objective(epochs=1, deadline=time.time() - 1), n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE


def test_deadline_in_the_future_changes_nothing() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    study.optimize(_objective(epochs=3, deadline=time.time() + 3600), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert list(trial.intermediate_values) == [1, 2, 3]
    assert "fail_reason" not in trial.user_attrs


@pytest.mark.parametrize(("epochs", "state", "reported"), [
    (3, optuna.trial.TrialState.PRUNED, [1]),  # 1 of 3 done: the repeats need the time
    (2, optuna.trial.TrialState.COMPLETE, [1, 2]),  # half done, and the rest fits the budget
])
def test_past_the_search_share_only_a_trial_at_least_half_done_goes_on(
    epochs: int, state: optuna.trial.TrialState, reported: list[int],
) -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    now = time.time()
    study.optimize(_objective(epochs=epochs, deadline=now + 3600, search_deadline=now - 1), n_trials=1)
    trial = study.trials[0]
    assert trial.state == state
    assert list(trial.intermediate_values) == reported
    assert ("time budget" in trial.user_attrs.get("fail_reason", "")) == (state == optuna.trial.TrialState.PRUNED)


def test_past_the_search_share_a_half_done_trial_stops_when_its_rest_would_overrun_the_budget() -> None:
    now = time.time()
    objective = _objective(epochs=10, deadline=now + 100, search_deadline=now - 1)
    trial = optuna.create_study(direction="maximize").ask()
    # 5 of 10 epochs done: 5 more at 30 s end after the budget, at 10 s before it
    assert objective._cut_by_budget(trial, False, 5, 10, [30.0] * 5)
    assert not objective._cut_by_budget(trial, False, 5, 10, [10.0] * 5)
    assert not objective._cut_by_budget(trial, True, 1, 10, [30.0])  # a repeat runs on to the deadline
    assert not objective._cut_by_budget(trial, False, 10, 10, [30.0] * 10)  # the last epoch is never cut
    past = _objective(epochs=10, deadline=now - 1, search_deadline=now - 2)
    assert past._cut_by_budget(trial, False, 9, 10, [1.0] * 9) and past._cut_by_budget(trial, True, 9, 10, [1.0] * 9)


def test_a_trial_stops_one_epoch_early_when_its_next_epoch_would_end_past_the_deadline() -> None:
    now = time.time()
    objective = _objective(epochs=10, deadline=now + 100)
    trial = optuna.create_study(direction="maximize").ask()
    # The next epoch takes at least 120 s (its fastest so far) and is not the last: it would
    # end past the deadline and be stopped there, so the trial stops now.
    assert objective._cut_by_budget(trial, False, 3, 10, [130.0, 120.0, 125.0])
    assert objective._cut_by_budget(trial, True, 3, 10, [130.0, 120.0, 125.0])  # a repeat too
    # Its fastest epoch fits before the deadline: it goes on (a slow first epoch does not count).
    assert not objective._cut_by_budget(trial, False, 3, 10, [130.0, 90.0, 125.0])
    # The next epoch is the last one: a trial that can complete is never cut for running over.
    assert not objective._cut_by_budget(trial, False, 9, 10, [130.0] * 9)
