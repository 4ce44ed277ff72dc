"""The confirmation share of a --timeout stretches so the best trial's repeats can finish
(search/confirm.py SearchEnd): where it starts, who reads it, and the flags that fix it."""

from __future__ import annotations

import time

import optuna
import pytest
import torch

from model.config import TrainConfig
from model.data import MnistSplits
from search.cli import build_parser
from search.confirm import MAX_CONFIRM_SHARE, RUN_MARGIN, SearchEnd
from search.objective import Objective
from search.runner import run_trials
from search.settings import LaunchSettings
from search.space import parse_space

_DIST = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}


def _study(*trials: tuple[float, float], baseline: bool = False) -> optuna.Study:
    """A study of complete search trials, (value, seconds its run took) each."""
    study = optuna.create_study(direction="maximize")
    for value, seconds in trials:
        study.add_trial(optuna.trial.create_trial(
            params={"lr": 1e-3}, distributions=_DIST, value=value,
            user_attrs={"config": TrainConfig(seed=0).to_dict(), "trial_seconds": seconds,
                        **({"baseline": True} if baseline else {})}))
    return study


END = SearchEnd(deadline=1000.0, latest=800.0, earliest=500.0)  # a 1000 s budget


@pytest.mark.parametrize(("trials", "starts"), [
    ((), 800.0),  # nothing to repeat yet: the default share
    (((0.99, 100.0),), 800.0),  # #1's run fits the last 200 s
    (((0.99, 300.0), (0.98, 10.0)), 1000.0 - RUN_MARGIN * 300.0),  # #1 needs 330 s: starts earlier
    (((0.98, 10.0), (0.99, 300.0)), 1000.0 - RUN_MARGIN * 300.0),  # #1 by value, not by number
    (((0.99, 10.0), (0.98, 300.0)), 800.0),  # only #1 counts: nothing below it is repeated over it
    (((0.99, 900.0),), 500.0),  # never more than half the budget
])
def test_the_phase_starts_when_the_time_left_fits_the_best_trials_run(
    trials: tuple[tuple[float, float], ...], starts: float,
) -> None:
    assert END.at(_study(*trials).get_trials()) == pytest.approx(starts)


def test_the_baseline_and_a_fixed_share_never_move_the_start() -> None:
    assert END.at(_study((0.99, 900.0), baseline=True).get_trials()) == 800.0  # V1 is never repeated
    assert SearchEnd.fixed(1000.0, 800.0).at(_study((0.99, 900.0)).get_trials()) == 800.0


def _settings(*flags: str) -> LaunchSettings:
    argv = ["launch", "--study", "s", "--n-trials", "5", *flags]
    return LaunchSettings.from_args(build_parser().parse_args(argv))


def test_the_default_share_stretches_a_given_one_is_fixed_and_no_confirm_searches_to_the_end() -> None:
    end = _settings("--timeout", "1000").search_end
    assert end is not None and end.latest == pytest.approx(end.deadline - 200.0)
    assert end.earliest == pytest.approx(end.deadline - MAX_CONFIRM_SHARE * 1000.0)
    fixed = _settings("--timeout", "1000", "--confirm-share", "0.1").search_end
    assert fixed is not None and fixed.earliest == fixed.latest == pytest.approx(fixed.deadline - 100.0)
    off = _settings("--timeout", "1000", "--no-confirm").search_end
    assert off is not None and off.earliest == off.latest == off.deadline
    assert _settings().search_end is None  # no --timeout: the repeats follow the N search trials


def test_a_search_stops_starting_trials_once_the_stretched_share_begins() -> None:
    now = time.time()
    # #1 took 1000 s: its repeats need the last 1100 s of a budget ending in 1050 s, so the
    # phase has begun (at its earliest, 10 s ago) and the search ends after the running trial.
    study = _study((0.99, 1000.0))
    run_trials(study, lambda trial: 0.5, n_trials=20, timeout=1000.0, progress=False,
               search_end=SearchEnd(deadline=now + 1050, latest=now + 1000, earliest=now - 10))
    assert len(study.trials) == 2
    # The same study with a short #1 searches on to N.
    short = _study((0.99, 1.0))
    run_trials(short, lambda trial: 0.5, n_trials=20, timeout=1000.0, progress=False,
               search_end=SearchEnd(deadline=now + 1050, latest=now + 1000, earliest=now - 10))
    assert len(short.trials) == 20


def _data(n: int = 64) -> MnistSplits:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 28, 28, generator=g)
    return MnistSplits(x, torch.randint(0, 10, (n,), generator=g), x[:32], torch.randint(0, 10, (32,), generator=g))


@pytest.mark.parametrize(("best_seconds", "state"), [
    (1000.0, optuna.trial.TrialState.PRUNED),  # the phase has begun: a trial 1 epoch of 3 in stops
    (1.0, optuna.trial.TrialState.COMPLETE),  # #1 is short: the search share still runs
])
def test_a_running_search_trial_is_cut_where_the_stretched_share_begins(
    best_seconds: float, state: optuna.trial.TrialState,
) -> None:
    now = time.time()
    study = _study((0.99, best_seconds))
    objective = Objective(space=parse_space("epochs = 3\n[hidden_size]\nlow = 8\nhigh = 16\n"),
                          base=TrainConfig(batch_size=32, seed=0), data=_data(), device=torch.device("cpu"),
                          max_steps=1, deadline=now + 1050,
                          search_end=SearchEnd(deadline=now + 1050, latest=now + 1000, earliest=now - 10))
    study.optimize(objective, n_trials=1)
    assert study.trials[-1].state == state
