"""The confirmation share of a --timeout stretches so the best trial's repeats can finish
(search/confirm.py SearchEnd): where it starts, who reads it, and the flags that fix it."""

from __future__ import annotations

import datetime
import time

import optuna
import pytest
import torch

from model.config import TrainConfig
from model.data import MnistSplits
from search.best import REPEAT_OF, REPEAT_SEED
from search.cli import build_parser
from search.confirm import MAX_CONFIRM_SHARE, RUN_MARGIN, SearchEnd
from search.objective import Objective
from search.runner import run_trials
from search.settings import LaunchSettings
from search.space import parse_space

_DIST = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}


def _study(*trials: tuple[float, float] | tuple[float, float, float], baseline: bool = False) -> optuna.Study:
    """A study of complete search trials, (value, seconds its run took[, when it finished:
    time.time(), default 100]) each."""
    study = optuna.create_study(direction="maximize")
    for value, seconds, *finished in trials:
        done = datetime.datetime.fromtimestamp(finished[0] if finished else 100.0)
        trial = optuna.trial.create_trial(
            params={"lr": 1e-3}, distributions=_DIST, value=value,
            user_attrs={"config": TrainConfig(seed=0).to_dict(), "trial_seconds": seconds,
                        **({"baseline": True} if baseline else {})})
        trial.datetime_start = trial.datetime_complete = done  # create_trial stamps "now"
        study.add_trial(trial)
    return study


END = SearchEnd(deadline=1000.0, latest=800.0, earliest=500.0)  # a 1000 s budget


@pytest.mark.parametrize(("trials", "starts"), [
    ((), 800.0),  # nothing to repeat yet: the default share
    (((0.99, 100.0),), 800.0),  # #1's run fits the last 200 s
    (((0.99, 300.0), (0.98, 10.0)), 1000.0 - RUN_MARGIN * 300.0),  # #1 needs 330 s: starts earlier
    (((0.98, 10.0), (0.99, 300.0)), 1000.0 - RUN_MARGIN * 300.0),  # #1 by value, not by number
    (((0.99, 10.0), (0.98, 300.0)), 800.0),  # only #1 counts: nothing below it is repeated over it
    # #1's repeats cannot fit: within half the budget, or after #1 finished (at 700 s > 670 s).
    # A phase would repeat nothing, so the search goes on to the deadline.
    (((0.99, 900.0),), 1000.0),
    (((0.99, 300.0, 700.0),), 1000.0),
])
def test_the_phase_starts_when_the_time_left_fits_the_best_trials_run(
    trials: tuple[tuple[float, ...], ...], starts: float,
) -> None:
    assert END.at(_study(*trials).get_trials()) == pytest.approx(starts)


def test_the_baseline_and_a_best_already_being_confirmed_do_not_move_the_start() -> None:
    assert END.at(_study((0.99, 900.0), baseline=True).get_trials()) == 800.0  # V1 is never repeated
    confirming = _study((0.99, 300.0))
    confirming.enqueue_trial({"lr": 1e-3}, user_attrs={REPEAT_OF: 0, REPEAT_SEED: 1})
    assert END.at(confirming.get_trials()) == 800.0  # #1's repeats are under way: nothing to size


@pytest.mark.parametrize(("repeat_started", "starts"), [
    (600.0, 600.0),  # an early phase began with #1's first repeat: the other workers join it
    (900.0, 800.0),  # a phase that began at its default time stays there
    (100.0, 800.0),  # a repeat from an earlier launch (before half the budget) sizes nothing
])
def test_once_the_bests_repeats_began_in_this_launch_the_phase_began_with_them(
    repeat_started: float, starts: float,
) -> None:
    study = _study((0.99, 300.0))  # #1's repeats need 330 s: the phase would start at 670 s
    repeat = optuna.trial.create_trial(
        params={"lr": 1e-3}, distributions=_DIST, value=0.985,
        user_attrs={"config": TrainConfig(seed=1).to_dict(), REPEAT_OF: 0, REPEAT_SEED: 1})
    repeat.datetime_start = datetime.datetime.fromtimestamp(repeat_started)
    study.add_trial(repeat)
    assert END.at(study.get_trials()) == pytest.approx(starts)


@pytest.mark.parametrize(("run", "starts"), [
    (100.0, 800.0),  # fits the given share: there
    (300.0, 1000.0),  # does not: never stretched, and a phase would repeat nothing, so search on
])
def test_a_given_share_is_not_stretched(run: float, starts: float) -> None:
    assert SearchEnd.fixed(1000.0, 800.0).at(_study((0.99, run)).get_trials()) == starts


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


def _running_end(now: float) -> SearchEnd:
    """A budget ending in 1050 s whose default share starts in 1000 s; stretched at most to 500 s ago."""
    return SearchEnd(deadline=now + 1050, latest=now + 1000, earliest=now - 500)


@pytest.mark.parametrize(("best", "trials"), [
    # #1 took 1000 s and finished 100 s ago: its repeats need the last 1100 s, so the phase
    # began 50 s ago and the search ends after the trial that is running.
    ((0.99, 1000.0, -100.0), 2),
    ((0.99, 1.0, -100.0), 20),  # a short #1: the search runs on to N
    ((0.99, 1000.0, 0.0), 20),  # #1 finished after that start: it cannot be repeated, so search on
])
def test_a_search_stops_starting_trials_once_the_stretched_share_begins(
    best: tuple[float, float, float], trials: int,
) -> None:
    now = time.time()
    study = _study((best[0], best[1], now + best[2]))
    run_trials(study, lambda trial: 0.5, n_trials=20, timeout=1050.0, progress=False, search_end=_running_end(now))
    assert len(study.trials) == trials


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
    study = _study((0.99, best_seconds, now - 100))
    objective = Objective(space=parse_space("epochs = 3\n[hidden_size]\nlow = 8\nhigh = 16\n"),
                          base=TrainConfig(batch_size=32, seed=0), data=_data(), device=torch.device("cpu"),
                          max_steps=1, deadline=now + 1050, search_end=_running_end(now))
    study.optimize(objective, n_trials=1)
    assert study.trials[-1].state == state
