"""The replay benchmark and the pruning-by-progress logic it chose, on a synthetic table."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from benchmarks import replay
from model.config import PRESETS, TrainConfig, config_fields
from search.pruning import make_pruner, reported_step, rung_epochs
from search.space import load_space


def write_table(path: Path, n: int = 40, seed: int = 0) -> Path:
    """A learning-curve CSV shaped like record_curves.py's. Every curve has one shape over
    its own schedule and longer runs finish best, so at a fixed early epoch a long run is
    behind (still early in its schedule) though it ends ahead: the effect the remedy is about."""
    space = load_space("default")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    rng = np.random.default_rng(seed)
    rows = []
    for trial_no in range(n):
        if trial_no == 0:
            cfg = PRESETS["v1"]
        else:
            cfg = space.suggest(study.ask(), TrainConfig())
        epochs = cfg.epochs
        # Finals 8 points apart: wider than what rounding a progress rung to an epoch end moves
        # (33-38% of the epochs), as on the recorded table, where the noise is the smaller effect.
        final = 0.90 + 0.08 * (epochs - 12) / 18 + 0.002 * rng.random()
        for e in range(1, epochs + 1):
            shape = math.sqrt(e / epochs)
            row = {"trial": trial_no, "epoch": e, "baseline": trial_no == 0,
                   "val_acc": 0.5 + (final - 0.5) * shape, "val_loss": 1.0, "train_loss": 1.0,
                   "epoch_lr": 1e-3, "epoch_seconds": 1.0 + cfg.hidden_size / 128}
            row.update(cfg.to_dict())
            rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> replay.Table:
    return replay.load_table(write_table(tmp_path_factory.mktemp("replay") / "curves.csv"))


def test_reported_step_is_percent_of_own_epochs() -> None:
    for epochs in (1, 7, 12, 30, 100):
        steps = [reported_step(e, epochs) for e in range(1, epochs + 1)]
        assert steps[-1] == 100
        assert all(a < b for a, b in itertools.pairwise(steps)), steps  # unique, increasing
        assert steps[0] >= 1
    assert reported_step(3, 12) == 25 and reported_step(8, 30) == 27
    with pytest.raises(ValueError):
        reported_step(0, 12)


def test_rung_epochs() -> None:
    assert rung_epochs(12, 30) == [3, 9, 27]
    assert rung_epochs(2, 6) == [2]  # the first rung never waits past the shortest trial


def _sha_prunes_slow_starter(progress: bool) -> bool:
    """A 12-epoch trial that learns fast vs a 30-epoch one whose curve has the same shape
    over its own schedule: does successive halving prune the long one at its first rung?"""
    study = optuna.create_study(direction="maximize", pruner=make_pruner("sha", 30, 12, progress=progress))
    for epochs in (12, 12, 12):  # three finished peers fill the first rung
        t = study.ask()
        for e in range(1, epochs + 1):
            t.report(0.9 + 0.08 * e / epochs, reported_step(e, epochs) if progress else e)
            t.should_prune()  # successive halving records a trial's rung when asked
        study.tell(t, 0.98)
    t = study.ask()
    for e in range(1, 31):
        t.report(0.9 + 0.09 * e / 30, reported_step(e, 30) if progress else e)
        if t.should_prune():
            return True
    return False


def test_progress_steps_judge_each_trial_at_the_same_point_of_its_schedule() -> None:
    assert _sha_prunes_slow_starter(progress=False)  # compared at epoch 3 = 10% of its schedule
    assert not _sha_prunes_slow_starter(progress=True)  # compared at FIRST_PROGRESS% of each schedule


def test_nearest_maps_recorded_configs_to_themselves(table: replay.Table) -> None:
    nearest = replay.NearestTable(table, load_space("default"))
    space = load_space("default")
    for i, cfg in enumerate(table.configs[1:], start=1):
        assert nearest.nearest({k: cfg[k] for k in space.params}) == i


def test_parameters_the_table_holds_fixed_are_not_searched(table: replay.Table) -> None:
    space = load_space("default")
    assert replay.table_space(space, table).params.keys() == space.params.keys()  # all vary
    held = table._replace(configs=[{**cfg, "rotate": 0.0, "scale": 0.0} for cfg in table.configs])
    narrowed = replay.table_space(space, held)
    assert set(space.params) - set(narrowed.params) == {"rotate", "scale"}
    assert narrowed.fixed["rotate"] == 0.0 and narrowed.fixed["scale"] == 0.0
    cfg = narrowed.suggest(optuna.create_study().ask(), TrainConfig())
    assert cfg.rotate == 0.0 and cfg.scale == 0.0


def test_replay_once_reaches_target_and_reports_regret(table: replay.Table) -> None:
    space = load_space("default")
    final = table.final
    target = float(np.quantile(final, 0.99))
    budget = table.full_seconds().sum()  # one worker could train every configuration once
    result = replay.replay_once("random/none", 0, table, space, workers=2, budget=budget,
                                target=target, budgets=[budget / 4, budget], top5=float(np.quantile(final, 0.95)))
    assert result.trials > 10
    assert result.regret[1] <= result.regret[0]  # more budget never hurts
    assert result.regret[1] >= 0
    assert result.top_pruned == 0  # no pruner
    if math.isfinite(result.time_to_target):
        assert result.time_to_target <= budget


def test_pruning_by_epoch_prunes_late_bloomers_that_progress_keeps(table: replay.Table) -> None:
    """On a table where one-cycle runs start slow and finish best, epoch-based Hyperband
    prunes top configurations more often than progress-based Hyperband."""
    space = load_space("default")
    final = table.final
    kw = {"table": table, "space": space, "workers": 2, "budget": table.full_seconds().sum() / 2,
          "target": float(np.quantile(final, 0.99)), "budgets": [1.0], "top5": float(np.quantile(final, 0.95))}
    by_epoch = [replay.replay_once("random/hyperband", s, **kw) for s in range(3)]
    by_progress = [replay.replay_once("random/hyperband-progress", s, **kw) for s in range(3)]
    rate = lambda rs: sum(r.top_pruned for r in rs) / max(1, sum(r.top_started for r in rs))  # noqa: E731
    assert rate(by_epoch) > rate(by_progress)


def test_table_columns_match_record_curves() -> None:
    from benchmarks.record_curves import CURVE_COLUMNS

    assert not set(CURVE_COLUMNS) & set(config_fields())  # one column, one meaning


@pytest.mark.parametrize(("text", "parsed"), [
    ("tpe/hyperband", ("tpe", "hyperband", False, None, None)),
    ("random/none", ("random", "none", False, None, None)),
    ("tpe/hyperband-progress", ("tpe", "hyperband", True, None, None)),
    ("tpe/sha-progress@50", ("tpe", "sha", True, 50, None)),
    ("tpe/median@9", ("tpe", "median", False, 9, None)),
    ("tpe/hyperband-progress:s10", ("tpe", "hyperband", True, None, 10)),
    ("random/hyperband@3:s0", ("random", "hyperband", False, 3, 0)),
])
def test_strategy_names(text: str, parsed: tuple) -> None:
    assert replay.parse_strategy(text) == parsed


@pytest.mark.parametrize("text", ["tpe", "tpe/hyperband:sx", "tpe/hyperband@y", "a/b/c"])
def test_malformed_strategy_is_one_clear_error(text: str) -> None:
    with pytest.raises(SystemExit, match="is not sampler/pruner"):
        replay.parse_strategy(text)


def test_rows_within_one_standard_error_of_the_best_count_as_tied() -> None:
    final = np.array([0.990, 0.989, 0.985, 0.97])
    tied, se = replay.tied_with_best(final, val_images=5000)
    assert se == pytest.approx(math.sqrt(0.99 * 0.01 / 5000))
    assert tied == 2  # 0.989 is 0.1 pp behind, inside one standard error (0.14 pp); 0.985 is not
    assert replay.tied_with_best(final, val_images=10**7)[0] == 1  # a huge split tells them apart


def test_mapping_fidelity_is_loose_on_a_small_table_and_tighter_on_a_large_one(
    table: replay.Table, tmp_path: Path
) -> None:
    """A sampled configuration replays its nearest row: on a few rows the replayed numeric
    values follow the sampled ones only loosely, the reason the replay no longer claims a speedup."""
    space = load_space("default")
    small = replay.mapping_fidelity(table, space, draws=100)
    numeric = {name for name, spec in space.params.items() if not isinstance(spec, replay.Categorical)}
    assert set(small) == numeric and all(-1 <= rho <= 1 for rho in small.values())
    large = replay.mapping_fidelity(replay.load_table(write_table(tmp_path / "large.csv", n=200)), space, draws=100)
    assert np.mean(list(small.values())) < np.mean(list(large.values()))
    assert small["lr"] < 0.9


def test_replay_output_is_labelled_a_replay_not_a_gain_of_the_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_table(tmp_path / "curves.csv")
    assert replay.main(["--table", str(path), "--seeds", "1", "--jobs", "1", "--budget-factor", "0.3",
                        "--strategies", "random/none", "tpe/hyperband-progress"]) == 0
    out = capsys.readouterr().out
    assert "speedup" not in "\n".join(line for line in out.lower().splitlines() if not line.startswith("#"))
    assert "rows within one standard error" in out and "Spearman(sampled value" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("replay of 40 recorded rows (nearest-row lookup; not the search's gain")
    assert "random/none" in last and "tpe/hyperband-progress" in last
