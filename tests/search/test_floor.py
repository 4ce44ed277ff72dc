"""The floor under the pruner: a trial below V1's curve at the same progress is stopped."""

from __future__ import annotations

import optuna
import pytest

from search.floor import FLOOR_FROM
from search.pruning import make_pruner, reported_step

# V1's validation accuracy after each of its 10 epochs (the committed studies' baseline).
V1 = [0.9588, 0.9732, 0.975, 0.984, 0.9806, 0.9812, 0.9836, 0.9834, 0.987, 0.986]


def _study(pruner: optuna.pruners.BasePruner, baseline: bool = True, val_size: int = 5000) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.set_user_attr("val_size", val_size)
    if baseline:
        t = study.ask()
        t.set_user_attr("baseline", "v1")
        t.set_user_attr("config", {"epochs": len(V1)})
        for e, acc in enumerate(V1, 1):
            t.report(acc, reported_step(e, len(V1)))
        study.tell(t, V1[-1])
    return study


def _first_pruned_epoch(study: optuna.Study, curve: list[float]) -> int | None:
    t = study.ask()
    t.set_user_attr("config", {"epochs": len(curve)})
    for e, acc in enumerate(curve, 1):
        t.report(acc, reported_step(e, len(curve)))
        if e < len(curve) and t.should_prune():
            study.tell(t, state=optuna.trial.TrialState.PRUNED)
            return e
    study.tell(t, curve[-1])
    return None


def _floor(name: str = "none", floor: bool = True) -> optuna.pruners.BasePruner:
    return make_pruner(name, max_epochs=30, min_epochs=10, progress=True, floor=floor)


@pytest.mark.parametrize("name", ["none", "median", "hyperband", "sha"])
def test_a_trial_far_below_v1_stops_at_a_third_of_its_epochs(name: str) -> None:
    # 30 epochs at 90%: far below V1 everywhere, first judged once a third of it is done
    first = _first_pruned_epoch(_study(_floor(name)), [0.90] * 30)
    assert first is not None and 100 * first / 30 >= FLOOR_FROM
    if name == "none":  # the floor alone: exactly at the first epoch past a third
        assert first == 10


def test_without_the_floor_the_same_trial_runs_on() -> None:
    assert _first_pruned_epoch(_study(_floor(floor=False)), [0.90] * 30) is None


def test_a_trial_within_the_noise_of_v1_is_kept() -> None:
    # 0.1 points under V1's interpolated curve: less than two standard errors of 5,000 images
    curve = [acc - 0.001 for acc in V1]
    assert _first_pruned_epoch(_study(_floor()), curve) is None
    # ... and with a validation split a hundred times larger, the same gap is resolved
    assert _first_pruned_epoch(_study(_floor(), val_size=500_000), curve) is not None


def test_compared_at_the_same_fraction_of_each_trials_epochs() -> None:
    # A 30-epoch trial that learns 3x slower than V1 in epochs but keeps pace in progress:
    # at epoch 3k it has V1's accuracy after epoch k, so it is never below the floor.
    slow = [V1[max(0, (e + 2) // 3 - 1)] for e in range(1, 31)]
    assert _first_pruned_epoch(_study(_floor()), slow) is None


def test_no_floor_until_the_baseline_has_finished() -> None:
    assert _first_pruned_epoch(_study(_floor(), baseline=False), [0.5] * 30) is None


def test_by_epoch_the_floor_reads_each_trials_own_epochs() -> None:
    pruner = make_pruner("none", max_epochs=30, min_epochs=10, progress=False, floor=True)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.set_user_attr("val_size", 5000)
    t = study.ask()
    t.set_user_attr("baseline", "v1")
    t.set_user_attr("config", {"epochs": 10})
    for e, acc in enumerate(V1, 1):
        t.report(acc, e)
    study.tell(t, V1[-1])
    trial = study.ask()
    trial.set_user_attr("config", {"epochs": 30})
    pruned_at = None
    for e in range(1, 30):
        trial.report(0.90, e)
        if trial.should_prune():
            pruned_at = e
            break
    assert pruned_at == 10  # the first epoch at or past a third of 30


def test_launch_floor_flag_reaches_the_pruner_every_worker_builds() -> None:
    from search.cli import build_parser
    from search.settings import LaunchSettings

    def pruner_of(*extra: str) -> optuna.pruners.BasePruner:
        argv = ["launch", "--study", "s", "--n-trials", "3", "--space", "quick", *extra]
        return LaunchSettings.from_args(build_parser().parse_args(argv)).make_pruner()

    assert getattr(pruner_of("--floor"), "floor", False) is True
    assert getattr(pruner_of(), "floor", False) is False
    assert getattr(pruner_of("--floor", "--pruner", "none"), "floor", False) is True
