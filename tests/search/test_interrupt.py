"""A Ctrl-C (or the SIGINT a worker gets from its parent) never leaves a trial RUNNING,
wherever it lands: while Optuna creates the trial, while the objective trains, or while
Optuna records the result. In-process, with the signal sent from a sampler hook at the
exact point, so each case is hit every time instead of by the luck of a test's timing."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

from model.config import TrainConfig
from model.data import MnistSplits
from search.objective import Objective
from search.runner import run_trials
from search.space import parse_space
from search.storage import open_storage


class _SignalAt(optuna.samplers.RandomSampler):
    """A random sampler that sends this process SIGINT at one hook of one trial.

    ``before_trial`` runs inside ``study.ask`` after the trial row exists; ``after_trial``
    runs inside ``tell`` before the trial's final state is written. ``sample_independent``
    runs inside the objective (``trial.suggest_*``), the one place a Ctrl-C may land at once.
    """

    def __init__(self, hook: str, trial_number: int) -> None:
        super().__init__(seed=0)
        self.hook, self.trial_number = hook, trial_number
        self.sent = False

    def _maybe_signal(self, hook: str, number: int) -> None:
        if hook == self.hook and number == self.trial_number and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)

    def before_trial(self, study: optuna.Study, trial: Any) -> None:
        self._maybe_signal("ask", trial.number)
        super().before_trial(study, trial)

    def sample_independent(self, study: optuna.Study, trial: Any, name: str, distribution: Any) -> Any:
        self._maybe_signal("objective", trial.number)
        return super().sample_independent(study, trial, name, distribution)

    def after_trial(self, study: optuna.Study, trial: Any, state: TrialState, values: Any) -> None:
        self._maybe_signal("tell", trial.number)
        super().after_trial(study, trial, state, values)


@pytest.fixture
def tiny_objective() -> Objective:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 28, 28, generator=gen), torch.randint(0, 10, (60,), generator=gen)
    data = MnistSplits(x[:40], y[:40], x[40:], y[40:])
    space = parse_space("[lr]\nlow = 1e-3\nhigh = 1e-2\nlog = true\n")
    return Objective(space, TrainConfig(hidden_size=8, batch_size=20, epochs=1), data, torch.device("cpu"))


@pytest.mark.parametrize(
    ("hook", "interrupted_state"),
    [
        ("ask", TrialState.FAIL),  # held until the objective starts, which fails the new trial
        ("objective", TrialState.FAIL),  # raised at once, recorded by Optuna
        ("tell", TrialState.COMPLETE),  # held until the result is written, then the run stops
    ],
)
def test_ctrl_c_anywhere_in_a_trial_leaves_nothing_running(
    tmp_path: Path, tiny_objective: Objective, hook: str, interrupted_state: TrialState
) -> None:
    sampler = _SignalAt(hook, trial_number=1)
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=storage, direction="maximize", sampler=sampler)
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN under nohup (CI)
    with pytest.raises(KeyboardInterrupt):
        run_trials(study, tiny_objective, 5, progress=False)
    assert sampler.sent
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE, interrupted_state], \
        "the run went on after Ctrl-C or left a trial unrecorded"
    if interrupted_state == TrialState.FAIL:
        assert "interrupted" in trials[1].user_attrs["fail_reason"]
    # The handler is restored: a later Ctrl-C in this process behaves as it did before.
    assert signal.getsignal(signal.SIGINT) is before
