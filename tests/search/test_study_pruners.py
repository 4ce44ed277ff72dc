"""Pruners judge no trial before epoch FIRST_RUNG (or the space's shortest trial)."""

from __future__ import annotations

import optuna
import pytest

from model.config import TrainConfig
from search.pruning import FIRST_RUNG, make_pruner
from search.space import load_space, parse_space


def _pruned_steps(pruner: optuna.pruners.BasePruner, epochs: int, n: int = 8) -> list[int]:
    """Run n good trials, then n hopeless ones; the epochs at which those were pruned.

    n trials of each kind so that every Hyperband bracket (chosen per trial by a hash of the
    study name and trial number) holds good trials to compare against.
    """
    study = optuna.create_study(study_name="pruning", direction="maximize", pruner=pruner)
    for _ in range(n):
        good = study.ask()
        for step in range(1, epochs + 1):
            good.report(0.9 + step / 1000, step)
            good.should_prune()
        study.tell(good, 0.95)
    pruned = []
    for _ in range(n):
        bad = study.ask()
        for step in range(1, epochs + 1):
            bad.report(0.1, step)
            if bad.should_prune():
                pruned.append(step)
                break
        study.tell(bad, state=optuna.trial.TrialState.PRUNED)
    return pruned


@pytest.mark.parametrize("name", ["hyperband", "sha", "median"])
def test_no_trial_is_judged_before_the_first_rung(name: str) -> None:
    steps = _pruned_steps(make_pruner(name, max_epochs=30, min_epochs=12), 30)
    assert steps and min(steps) == FIRST_RUNG, steps


@pytest.mark.parametrize("name", ["hyperband", "sha"])
def test_short_spaces_are_still_pruned_before_their_trials_end(name: str) -> None:
    # A space whose trials last 2 epochs cannot wait for epoch 3.
    steps = _pruned_steps(make_pruner(name, max_epochs=6, min_epochs=2), 6)
    assert steps and min(steps) == 2, steps


def test_none_never_prunes() -> None:
    assert _pruned_steps(make_pruner("none", max_epochs=30, min_epochs=12), 30) == []


def test_space_epoch_bounds() -> None:
    base = TrainConfig()
    default = load_space("default")
    assert (default.min_epochs(base), default.max_epochs(base)) == (12, 30)
    lr = "[lr]\nlow = 1e-3\nhigh = 1e-2\n"
    fixed = parse_space("epochs = 7\n" + lr)
    assert (fixed.min_epochs(base), fixed.max_epochs(base)) == (7, 7)
    chosen = parse_space("[epochs]\nchoices = [4, 9]\n" + lr)
    assert (chosen.min_epochs(base), chosen.max_epochs(base)) == (4, 9)
    assert parse_space(lr).min_epochs(base) == base.epochs


@pytest.mark.parametrize("name", ["hyperband", "sha", "median"])
def test_first_rung_can_be_moved(name: str) -> None:
    # benchmarks/replay.py compares first rungs through this argument.
    steps = _pruned_steps(make_pruner(name, max_epochs=30, min_epochs=12, first=9), 30)
    assert steps and min(steps) == 9, steps


@pytest.mark.parametrize(("first", "progress"), [(0, False), (0, True), (101, True)])
def test_first_rung_outside_the_trial_is_refused(first: int, progress: bool) -> None:
    with pytest.raises(ValueError, match="first rung"):
        make_pruner("hyperband", max_epochs=30, min_epochs=12, progress=progress, first=first)


def _prunes_among_first(pruner: optuna.pruners.BasePruner, n: int) -> list[int]:
    """Trials 0..n-1 report a rising curve, each worse than the one before at every step
    (the best first, as when V1 learns fastest); the numbers of those pruned."""
    study = optuna.create_study(study_name="startup", direction="maximize", pruner=pruner)
    pruned = []
    for k in range(n):
        trial = study.ask()
        for step in range(1, 31):
            trial.report(0.9 - k / 100 + step / 1000, step)
            if trial.should_prune():
                pruned.append(trial.number)
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, 0.9 - k / 100 + 0.03)
    return pruned


@pytest.mark.parametrize("name", ["hyperband", "sha"])
def test_startup_prunes_nothing_until_that_many_trials_finished(name: str) -> None:
    without = _prunes_among_first(make_pruner(name, max_epochs=30, min_epochs=12, startup=0), 12)
    assert without and min(without) < 6  # rungs of a few values prune at once
    guarded = _prunes_among_first(make_pruner(name, max_epochs=30, min_epochs=12, startup=6), 12)
    assert guarded and min(guarded) >= 6  # and from the 7th trial on, as before
    # The rung values of the startup trials were recorded: later trials compete with them.
    assert set(guarded) <= set(range(6, 12))


def test_startup_keeps_the_optuna_types_tpe_relies_on() -> None:
    # TPE samples from the trial's Hyperband bracket only when the pruner *is* one.
    assert isinstance(make_pruner("hyperband", 30, 12, startup=5), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner("sha", 30, 12, startup=5), optuna.pruners.SuccessiveHalvingPruner)
    with pytest.raises(ValueError, match="startup"):
        make_pruner("hyperband", 30, 12, startup=-1)
