"""The confirmation phase (search/confirm.py): repeats of the top configurations as trials
of the same study, never pruned, enqueued once across workers, kills and resumes."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from model.config import TrainConfig
from model.data import load_splits
from search.best import REPEAT_OF, REPEAT_SEED, best_config, val_size_of
from search.cli import main
from search.confirm import ConfirmPlan, candidates, enqueue_repeats, phase_counts
from search.objective import Objective
from search.runner import run_trials
from search.space import parse_space
from search.trials import finished_trials
from tests.search.conftest import launch_args, start_cli, wait_for

SPACE = parse_space("[hidden_size]\nlow = 8\nhigh = 16\n[lr]\nlow = 1e-3\nhigh = 1e-2\nlog = true\n")
TINY = TrainConfig(hidden_size=8, batch_size=32, epochs=2)


def _repeats(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if REPEAT_OF in t.user_attrs]


def _keys(trials: list[optuna.trial.FrozenTrial], state: TrialState = TrialState.COMPLETE) -> Counter:
    return Counter((t.user_attrs[REPEAT_OF], t.user_attrs[REPEAT_SEED]) for t in trials if t.state == state)


def test_a_launch_ends_with_repeats_of_its_top_configurations_and_resumes_without_doubles(
    tmp_path: Path, tiny_space: Path, fake_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    args = launch_args("c", 4, storage, tiny_space, fake_root, "--workers", "1", "--confirm-top", "2",
                       "--confirm-seeds", "2", confirm=True)
    assert main(args) == 0
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="c", storage=storage)
    assert finished_trials(study) == 4  # N counts search trials; the repeats come on top
    top = [t.number for t in candidates(study.get_trials(), 2, val_size_of(study))]
    assert _keys(_repeats(study)) == Counter({(n, s): 1 for n in top for s in (1, 2)})
    by_number = {t.number: t for t in study.get_trials()}
    for r in _repeats(study):
        original = by_number[r.user_attrs[REPEAT_OF]]
        assert r.params == original.params
        assert r.user_attrs["config"] == {**original.user_attrs["config"], "seed": r.user_attrs[REPEAT_SEED]}
    assert "[repeat of trial" in out and "val acc" in out and "±" in out
    best = best_config(study)
    assert best.v2.n == 3 and best.number in top
    assert f"best (V2): trial {best.number}, val acc {best.v2.text()}" in out

    assert main(args) == 0  # the same command again: search and confirmation are both done
    assert len(optuna.load_study(study_name="c", storage=storage).trials) == len(study.trials)

    assert main(launch_args("c", 6, storage, tiny_space, fake_root, "--workers", "1", "--confirm-top", "2",
                            "--confirm-seeds", "2", confirm=True)) == 0
    study = optuna.load_study(study_name="c", storage=storage)
    assert finished_trials(study) == 6
    counts = _keys(_repeats(study))
    top = [t.number for t in candidates(study.get_trials(), 2, val_size_of(study))]
    assert all(counts[(n, s)] == 1 for n in top for s in (1, 2)) and max(counts.values()) == 1


def test_no_confirm_runs_no_repeats(tmp_path: Path, tiny_space: Path, fake_root: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    args = launch_args("n", 3, storage, tiny_space, fake_root, "--workers", "1", "--no-confirm", confirm=True)
    assert main(args) == 0
    assert not _repeats(optuna.load_study(study_name="n", storage=storage))


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def _study_with_one_trial(fake_root: Path) -> tuple[optuna.Study, Objective]:
    study = optuna.create_study(direction="maximize", pruner=_AlwaysPrune())
    study.set_user_attr("val_size", 50)
    objective = Objective(SPACE, TINY, load_splits(str(fake_root), val_size=50, seed=0), torch.device("cpu"))
    study.enqueue_trial({"hidden_size": 8, "lr": 3e-3})
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == TrialState.PRUNED  # the pruner prunes ordinary trials
    study.add_trial(optuna.trial.create_trial(  # a complete one to repeat
        value=0.9, params={"hidden_size": 12, "lr": 2e-3},
        distributions=study.trials[0].distributions,
        user_attrs={"config": TINY.with_overrides(hidden_size=12, lr=2e-3).to_dict()}))
    return study, objective


def test_a_repeat_runs_its_full_epochs_whatever_the_pruner_says(fake_root: Path) -> None:
    study, objective = _study_with_one_trial(fake_root)
    assert enqueue_repeats(study, ConfirmPlan(top=1, seeds=1)) == 1
    assert enqueue_repeats(study, ConfirmPlan(top=1, seeds=1)) == 0  # already waiting
    study.optimize(objective, n_trials=1)
    repeat = study.trials[-1]
    assert repeat.state == TrialState.COMPLETE and len(repeat.intermediate_values) == TINY.epochs
    assert repeat.user_attrs["config"]["seed"] == 1 and repeat.params == {"hidden_size": 12, "lr": 2e-3}


def test_a_repeat_enqueued_twice_is_trained_once(fake_root: Path) -> None:
    study, objective = _study_with_one_trial(fake_root)
    for _ in range(2):  # two workers that reached the phase at the same moment
        study.enqueue_trial({"hidden_size": 12, "lr": 2e-3}, user_attrs={REPEAT_OF: 1, REPEAT_SEED: 1})
    run_trials(study, objective, n_trials=1, progress=False, echo=lambda _: None, max_consecutive_failures=1,
               confirm=ConfirmPlan(top=1, seeds=1))
    repeats = _repeats(study)
    assert [t.state for t in repeats] == [TrialState.COMPLETE, TrialState.FAIL]
    assert repeats[1].user_attrs["not_run"] and "trial 2 is the same repeat" in repeats[1].user_attrs["fail_reason"]


def _running_repeat(storage: str) -> bool:
    try:
        trials = optuna.load_study(study_name="k", storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return False
    # In the first third of its epochs: a signal sent now lands before it can finish.
    return any(REPEAT_OF in t.user_attrs and t.state == TrialState.RUNNING
               and 1 <= len(t.intermediate_values) <= t.user_attrs.get("config", {}).get("epochs", 3) // 3
               for t in trials)


@pytest.mark.slow
def test_two_workers_interrupted_in_the_confirmation_phase_resume_it_without_doubles(
    tmp_path: Path, slow_space: Path, fake_root: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    args = launch_args("k", 3, storage, slow_space, fake_root, "--workers", "2", "--threads", "1",
                       "--confirm-top", "2", "--confirm-seeds", "1", confirm=True)
    proc = start_cli(args)
    wait_for(lambda: _running_repeat(storage), 300, "a repeat trial to be training")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    study = optuna.load_study(study_name="k", storage=storage)
    assert _keys(_repeats(study), TrialState.FAIL)  # the interrupted repeat, recorded

    proc = start_cli(args)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    study = optuna.load_study(study_name="k", storage=storage)
    assert 3 <= finished_trials(study) <= 4  # N, plus at most one trial the second worker had running
    top = [t.number for t in candidates(study.get_trials(), 2, val_size_of(study))]
    complete = _keys(_repeats(study))
    assert all(complete[(n, s)] == 1 for n in top for s in (1,)) and max(complete.values()) == 1
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert "[repeat of trial" in out


@pytest.mark.parametrize(("flags", "needle"), [
    (["--confirm-top", "-1"], "--confirm-top must be >= 0"),
    (["--confirm-seeds", "0"], "--confirm-seeds must be >= 1"),
    (["--confirm-share", "1", "--timeout", "60"], "--confirm-share must be a fraction"),
    (["--confirm-share", "nan"], "--confirm-share must be a fraction"),
])
def test_bad_confirmation_flags_are_one_line_and_write_nothing(
    flags: list[str], needle: str, tmp_path: Path, tiny_space: Path, fake_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.search.conftest import expect_one_line_error

    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    expect_one_line_error(capsys, launch_args("b", 2, storage, tiny_space, fake_root, *flags, confirm=True), needle)
    assert not (tmp_path / "studies.db").exists()


def test_a_configuration_too_long_for_the_time_left_is_not_repeated_nor_any_ranked_below_it() -> None:
    study = optuna.create_study(direction="maximize")
    dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    config = TrainConfig(seed=0).to_dict()
    for value, seconds in ((0.99, 50.0), (0.98, 10.0), (0.97, 10.0)):  # the best took longest
        study.add_trial(optuna.trial.create_trial(
            params={"lr": 1e-3}, distributions=dist, value=value,
            user_attrs={"config": config, "trial_seconds": seconds}))
    # #1 cannot be repeated in 30 s; a repeated #2 or #3 would then be preferred to it, tied
    # and confirmed, for having been cheaper to repeat, so neither is repeated.
    assert enqueue_repeats(study, ConfirmPlan(top=3, seeds=2), seconds_left=30.0) == 0
    # Once #1 has a repeat (two runs: confirmed), those below it may be confirmed too.
    study.add_trial(optuna.trial.create_trial(
        params={"lr": 1e-3}, distributions=dist, value=0.985,
        user_attrs={"config": {**config, "seed": 1}, REPEAT_OF: 0, REPEAT_SEED: 1}))
    assert enqueue_repeats(study, ConfirmPlan(top=3, seeds=2), seconds_left=30.0) == 4
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted({t.user_attrs[REPEAT_OF] for t in waiting}) == [1, 2]  # not #1's second repeat (50 s)
    # without a budget every top configuration is repeated
    assert enqueue_repeats(study, ConfirmPlan(top=3, seeds=2)) == 1


def test_prior_copies_and_untimed_trials_are_never_repeated() -> None:
    """A prior copy (another study's run, no run time here) is not a candidate even when it
    ranks first; a trial without a recorded run time is not repeated against a deadline."""
    from search.prior import PRIOR_ATTR

    study = optuna.create_study(direction="maximize")
    dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    config = TrainConfig(seed=0).to_dict()
    study.add_trial(optuna.trial.create_trial(
        params={"lr": 2e-3}, distributions=dist, value=0.999,
        user_attrs={"config": config, PRIOR_ATTR: "old#38"}))
    study.add_trial(optuna.trial.create_trial(
        params={"lr": 1e-3}, distributions=dist, value=0.98,
        user_attrs={"config": config, "trial_seconds": 10.0}))
    assert [t.number for t in candidates(study.get_trials(), 3)] == [1]
    assert enqueue_repeats(study, ConfirmPlan(top=3, seeds=2), seconds_left=30.0) == 2
    assert {t.user_attrs[REPEAT_OF] for t in study.get_trials(states=(TrialState.WAITING,))} == {1}

    untimed = optuna.create_study(direction="maximize")
    untimed.add_trial(optuna.trial.create_trial(params={"lr": 1e-3}, distributions=dist, value=0.98,
                                                user_attrs={"config": config}))
    assert enqueue_repeats(untimed, ConfirmPlan(top=1, seeds=2), seconds_left=1e6) == 0
    assert enqueue_repeats(untimed, ConfirmPlan(top=1, seeds=2)) == 2  # no deadline: nothing to fit


def test_only_configurations_tied_with_the_best_are_repeated() -> None:
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("val_size", 5000)
    dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    for value in (0.9884, 0.9880, 0.9736):  # the third is about 8 standard errors below
        study.add_trial(optuna.trial.create_trial(
            params={"lr": 1e-3}, distributions=dist, value=value,
            user_attrs={"config": TrainConfig(seed=0).to_dict(), "trial_seconds": 10.0}))
    assert [t.number for t in candidates(study.get_trials(), 3, 5000)] == [0, 1]
    assert enqueue_repeats(study, ConfirmPlan(top=3, seeds=2)) == 4
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted({t.user_attrs[REPEAT_OF] for t in waiting}) == [0, 1]


def _timed_study(values: tuple[float, ...], seconds: float) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    for value in values:
        study.add_trial(optuna.trial.create_trial(
            params={"lr": 1e-3}, distributions=dist, value=value,
            user_attrs={"config": TrainConfig(seed=0).to_dict(), "trial_seconds": seconds}))
    return study


def test_repeats_are_enqueued_one_at_a_time_in_rank_order() -> None:
    study = _timed_study((0.98, 0.99), 10.0)
    plan = ConfirmPlan(top=2, seeds=2)
    assert phase_counts(study.get_trials(), plan) == (0, 4)  # planned before any is enqueued
    assert enqueue_repeats(study, plan, limit=1) == 1
    assert enqueue_repeats(study, plan, limit=1) == 1  # the first waits: the next one comes
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [(t.user_attrs[REPEAT_OF], t.user_attrs[REPEAT_SEED]) for t in waiting] == [(1, 1), (1, 2)]
    assert phase_counts(study.get_trials(), plan) == (0, 4)


def test_a_repeat_that_no_longer_fits_the_time_left_is_not_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two repeats of a 60 s configuration with 100 s left: the first fits; after it only 40 s
    are left, so the second is never enqueued (enqueued up front, it would start and be cut)."""
    import types

    from search import runner

    study = _timed_study((0.99, 0.989), 60.0)
    clock = [0.0]
    monkeypatch.setattr(runner, "time", types.SimpleNamespace(time=lambda: clock[0], sleep=lambda s: None))

    def optimize(n_trials: int, timeout: float | None, callbacks: list) -> None:
        study.optimize(lambda trial: 0.99, n_trials=n_trials)  # the waiting repeat
        clock[0] += 60.0

    watch = runner._TrialWatch(study, 2, 2, False, lambda _: None, None, None, 100.0)
    runner._confirm(study, types.SimpleNamespace(confirming=False), ConfirmPlan(top=2, seeds=1), 100.0,
                    optimize, watch)
    assert [(t.user_attrs[REPEAT_OF], t.state) for t in _repeats(study)] == [(0, TrialState.COMPLETE)]
