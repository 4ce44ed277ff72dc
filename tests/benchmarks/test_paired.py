"""The paired-runs table (writer, resume) and its summary (pairing, bootstrap, last line)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest

from benchmarks import paired_runs, paired_summary
from benchmarks.paired_csv import COLUMNS, V2_RULE, append_row, read_rows, row_key
from model.config import TrainConfig


def arm_row(pair: int, strategy: str, test: float, val: float = 99.0, budget: float = 45,
            images: int = 60_000, space: str = "default", rule: str = V2_RULE) -> dict[str, object]:
    return {"pair": pair, "strategy": strategy, "space": space, "budget_min": f"{budget:g}", "train_images": images,
            "v2_rule": rule,
            "config": json.dumps({"hidden_size": 128, "seed": pair}), "val_acc": f"{val:.2f}",
            "test_acc": f"{test:.2f}", "started": "2026-12-03T09:00:00+00:00",
            "ended": "2026-12-03T09:45:00+00:00", "cpu": "AMD EPYC", "load_avg": "2.01"}


def write_table(path: Path, edges: list[float], budget: float = 45, base: float = 99.0) -> None:
    for i, edge in enumerate(edges):
        append_row(path, arm_row(i, "sweep", base, budget=budget))
        append_row(path, arm_row(i, "default", base + edge, budget=budget))


def test_writer_appends_and_a_rerun_does_not_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "runs.csv"
    assert read_rows(path) == []  # no file yet: nothing done
    assert append_row(path, arm_row(0, "default", 99.3))
    assert append_row(path, arm_row(0, "sweep", 99.1))
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)  # header once, first
    # The same arm again (as a resumed run would write it) is refused, even with other scores.
    assert not append_row(path, arm_row(0, "default", 98.0))
    # Another budget, number of final-run images, space or V2 rule is another row.
    assert append_row(path, arm_row(0, "default", 99.0, budget=20))
    assert append_row(path, arm_row(0, "default", 99.0, images=10_000))
    assert append_row(path, arm_row(0, "default", 99.0, space="quick"))
    assert append_row(path, arm_row(0, "default", 99.0, rule="most-runs"))
    rows = read_rows(path)
    assert len(rows) == 6 and len(path.read_text().splitlines()) == 7
    assert rows[0]["test_acc"] == "99.30"  # the first write stands
    assert json.loads(rows[0]["config"]) == {"hidden_size": 128, "seed": 0}
    assert row_key(rows[0]) == row_key(arm_row(0, "default", 0.0)) == (0, "default", "default", 45.0, 60_000, V2_RULE)
    assert row_key(rows[0]) == paired_runs.Arm(0, "default", 45, None, 5000).key(60_000)


def test_writer_refuses_incomplete_rows_and_foreign_tables(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    row = arm_row(0, "default", 99.0)
    del row["load_avg"]
    with pytest.raises(ValueError, match="load_avg"):
        append_row(path, row)
    assert not path.exists()
    path.write_text("pair,strategy,acc\n0,default,99\n")
    with pytest.raises(SystemExit, match="columns"):
        read_rows(path)


def test_resume_skips_the_arms_already_in_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Both arms of pair 0 in the table: a rerun searches and trains nothing for it."""
    path = tmp_path / "runs.csv"
    append_row(path, arm_row(0, "default", 99.3, budget=0.5, images=1000))
    append_row(path, arm_row(0, "sweep", 99.1, budget=0.5, images=1000))
    before = path.read_text()
    assert paired_runs.main(["--budget-min", "0.5", "--train-images", "1000", "--seeds", "0", "--csv", str(path),
                             "--studies", str(tmp_path / "studies")]) == 0
    assert "both arms already in" in capsys.readouterr().out
    assert path.read_text() == before
    assert not any((tmp_path / "studies").iterdir())  # no study was started


def test_the_two_arms_differ_only_in_sampler_and_pruner(tmp_path: Path) -> None:
    arms = [paired_runs.Arm(3, s, 45, 10_000, 5000, "quick") for s in ("default", "sweep")]
    default, sweep = (paired_runs.launch_command(a, tmp_path, 2700, "data", "cpu") for a in arms)
    assert sweep[sweep.index("--sampler") + 1] == "random" and sweep[sweep.index("--pruner") + 1] == "none"
    assert "--sampler" not in default and "--pruner" not in default  # the launch's own defaults
    for flag, value in (("--timeout", "2700"), ("--seed", "3"), ("--subset", "10000"), ("--val-size", "5000"),
                        ("--workers", "1"), ("--threads", "1"), ("--space", "quick")):
        assert default[default.index(flag) + 1] == sweep[sweep.index(flag) + 1] == value
    assert arms[0].name != arms[1].name and arms[0].storage(tmp_path) != arms[1].storage(tmp_path)


def test_a_tpe_startup_arm_is_the_default_launch_with_fewer_random_draws(tmp_path: Path) -> None:
    arms = [paired_runs.Arm(3, s, 10, 10_000, 5000, "quick") for s in ("tpe3", "default")]
    tpe3, default = (paired_runs.launch_command(a, tmp_path, 600, "data", "cpu") for a in arms)
    assert tpe3[tpe3.index("--tpe-startup") + 1] == "3" and "--sampler" not in tpe3 and "--pruner" not in tpe3
    at = tpe3.index("--tpe-startup")
    assert tpe3[:at] + tpe3[at + 2:] == [x.replace("default", "tpe3") for x in default]  # all else the same
    assert paired_runs.parse_args(["--budget-min", "10", "--arms", "tpe3", "default"]).arms == ["tpe3", "default"]


def test_other_arms_are_summarised_apart_and_stay_out_of_the_headline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs.csv"
    write_table(path, [0.2, -0.1])  # default = sweep + edge, sweep 99.0
    append_row(path, arm_row(0, "tpe3", 99.5))  # default 99.2: +0.3
    append_row(path, arm_row(1, "tpe3", 98.8))  # default 98.9: -0.1
    append_row(path, arm_row(2, "tpe3", 99.9))  # no default for pair 2: not a pair
    edges = paired_summary.paired_edges(read_rows(path))
    versus = paired_summary.Series("default", 45.0, V2_RULE, ("tpe3", "default"))
    assert [round(p.test_edge, 2) for p in edges[versus]] == [0.3, -0.1]
    assert [round(p.test_edge, 2) for p in edges[paired_summary.Series("default", 45.0, V2_RULE)]] == [0.2, -0.1]
    assert paired_summary.main(["--csv", str(path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("tpe3 vs default, space default, budget 45 min: 2 pairs") and "tpe3 won 1/2" in line
               for line in lines)
    assert lines[-1].startswith("paired edge +0.05 pp [")  # default minus sweep only


def test_state_keeps_the_budget_spent_across_restarts(tmp_path: Path) -> None:
    arm = paired_runs.Arm(0, "sweep", 45, None, 5000)
    state = paired_runs.read_state(arm, tmp_path)
    assert state["seconds"] == 0 and not state["searched"]
    state["seconds"] = 1234.5
    paired_runs.write_state(arm, tmp_path, state)
    assert paired_runs.read_state(arm, tmp_path)["seconds"] == 1234.5


@pytest.mark.parametrize("argv", [["--budget-min", "0"], ["--budget-min", "45", "--train-images", "70000"],
                                  ["--budget-min", "45", "--seeds", "1", "1"],
                                  ["--budget-min", "45", "--arms", "tpe3", "tpe3"]])
def test_bad_options_are_one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        paired_runs.parse_args(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("paired_runs.py: error: --")


def test_bootstrap_interval_covers_the_true_mean_at_about_its_level() -> None:
    """200 synthetic paired tables (12 pairs, true edge 0.1 pp, sd 0.12): the 95% interval
    covers 0.1 in most of them; a percentile bootstrap of a small sample is a little narrow."""
    rng = np.random.default_rng(1)
    covered = []
    for k in range(200):
        ci = paired_summary.bootstrap_mean(rng.normal(0.1, 0.12, size=12), resamples=2000, seed=k)
        assert ci.lo <= ci.mean <= ci.hi
        covered.append(ci.lo <= 0.1 <= ci.hi)
    assert 0.85 <= np.mean(covered) <= 0.99


def test_bootstrap_narrows_with_more_pairs_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    few, many = rng.normal(0, 1, 5), rng.normal(0, 1, 80)

    def width(ci: paired_summary.Interval) -> float:
        return ci.hi - ci.lo

    assert width(paired_summary.bootstrap_mean(many)) < width(paired_summary.bootstrap_mean(few))
    assert paired_summary.bootstrap_mean(few, seed=3) == paired_summary.bootstrap_mean(few, seed=3)


def test_constant_edge_gives_a_zero_width_interval() -> None:
    ci = paired_summary.bootstrap_mean([0.15] * 7)
    assert ci == (pytest.approx(0.15), pytest.approx(0.15), pytest.approx(0.15))
    assert ci.hi - ci.lo == pytest.approx(0.0, abs=1e-12)


def test_pairs_need_both_arms_with_the_same_final_images(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    write_table(path, [0.2, -0.1])
    append_row(path, arm_row(5, "default", 99.5))  # its sweep never finished
    append_row(path, arm_row(6, "default", 99.5, images=10_000))
    append_row(path, arm_row(6, "sweep", 99.0))  # other final-run images: not comparable
    edges = paired_summary.paired_edges(read_rows(path))
    series = paired_summary.Series("default", 45.0, V2_RULE)
    assert list(edges) == [series]
    assert [p.pair for p in edges[series]] == [0, 1]
    assert [round(p.test_edge, 2) for p in edges[series]] == [0.2, -0.1]


def test_summary_prints_each_budget_and_ends_with_the_45_minute_edge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs.csv"
    write_table(path, [0.1, 0.1, 0.0, -0.2], budget=20)
    write_table(path, [0.18, -0.08, 0.14, 0.0])
    assert paired_summary.main(["--csv", str(path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("space default, budget 20 min: 4 pairs") and "won 2/4" in line and "1 tied" in line
               for line in lines)
    budget45 = next(line for line in lines if line.startswith("space default, budget 45 min:"))
    assert "test edge +0.06 pp" in budget45 and "won 2/4" in budget45
    last = lines[-1]
    assert last.startswith("paired edge +0.06 pp [") and last.endswith("] n=4")
    lo, hi = (float(v) for v in last.split("[")[1].split("]")[0].split(","))
    assert -0.08 <= lo < 0.06 < hi <= 0.18  # inside the range of the pairs' edges


def test_summary_without_45_minute_pairs_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "runs.csv"
    write_table(path, [0.1, 0.2], budget=20)
    assert paired_summary.main(["--csv", str(path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("no 45-minute pairs yet")
    assert lines[-1] == "paired edge nan pp [nan, nan] n=0"
    assert paired_summary.main(["--csv", str(tmp_path / "absent.csv")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "paired edge nan pp [nan, nan] n=0"


class FakeLaunch:
    """Stands in for `lstm-search launch`: records the seconds each arm is given and runs
    a short process ending with ``code``."""

    def __init__(self, code: int = 0) -> None:
        self.code = code
        self.given: dict[str, float] = {}

    def __call__(self, arm: paired_runs.Arm, folder: Path, seconds: float, data_root: object, device: str) -> list[str]:
        self.given[arm.strategy] = seconds
        span = folder / f"{arm.strategy}.span"  # when it started and ended
        return [sys.executable, "-c", (f"import time, sys; a = time.time(); time.sleep(0.3); "
                f"open({str(span)!r}, 'w').write(f'{{a}} {{time.time()}}'); sys.exit({self.code})")]


def test_search_runs_both_arms_at_once_and_resumes_with_the_budget_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paired_runs, "POLL_S", 0.05)
    fake = FakeLaunch()
    monkeypatch.setattr(paired_runs, "launch_command", fake)
    arms = [paired_runs.Arm(0, s, 2, 500, 1000) for s in ("default", "sweep")]
    # The sweep was interrupted after 40 of its 100 s: it resumes for the 60 left.
    interrupted = paired_runs.read_state(arms[1], tmp_path)
    paired_runs.write_state(arms[1], tmp_path, {**interrupted, "seconds": 40.0, "started": "earlier"})
    began = time.monotonic()
    paired_runs.search(arms, tmp_path, 100.0, None, "cpu")
    took = time.monotonic() - began
    spans = [[float(t) for t in (tmp_path / f"{s}.span").read_text().split()] for s in ("default", "sweep")]
    assert max(a for a, _ in spans) < min(b for _, b in spans)  # side by side, not one after the other
    assert fake.given == {"default": 100.0, "sweep": 60.0}
    for arm in arms:
        state = paired_runs.read_state(arm, tmp_path)
        assert state["searched"] and state["ended"] and state["load_n"] >= 1
    assert paired_runs.read_state(arms[1], tmp_path)["started"] == "earlier"  # the first start is kept
    # The wall time counted: at least the launch's own life, at most the whole call (a loaded
    # machine stretches both; a fixed bound would measure the machine, not the code).
    assert spans[0][1] - spans[0][0] <= paired_runs.read_state(arms[0], tmp_path)["seconds"] <= took + 0.01
    fake.given.clear()
    paired_runs.search(arms, tmp_path, 100.0, None, "cpu")  # both searched: nothing runs again
    assert fake.given == {}


def test_a_failed_launch_is_one_line_and_its_arm_stays_unsearched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paired_runs, "POLL_S", 0.05)
    monkeypatch.setattr(paired_runs, "launch_command", FakeLaunch(code=2))
    arm = paired_runs.Arm(0, "default", 2, 500, 1000)
    with pytest.raises(SystemExit, match=r"paired-default-2m-500-v1000-p0 exited 2 \(see .*\.log\)"):
        paired_runs.search([arm], tmp_path, 100.0, None, "cpu")
    assert not paired_runs.read_state(arm, tmp_path)["searched"]


def test_rows_of_the_old_v2_rule_and_other_spaces_stay_out_of_the_headline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs.csv"
    write_table(path, [0.3, 0.3])
    for i, edge in enumerate([-1.0, -1.0, -1.0]):  # scored by the rule before its fix
        append_row(path, arm_row(i, "sweep", 99.0, rule="most-runs"))
        append_row(path, arm_row(i, "default", 99.0 + edge, rule="most-runs"))
    for i in range(2):  # another space at the same budget
        append_row(path, arm_row(i, "sweep", 98.0, space="quick"))
        append_row(path, arm_row(i, "default", 97.0, space="quick"))
    assert paired_summary.main(["--csv", str(path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith("space default, budget 45 min: 2 pairs")  # the current rule first
    assert any(line.startswith("space default, budget 45 min, old V2 rule (most-runs): 3 pairs") for line in lines)
    assert any(line.startswith("space quick, budget 45 min: 2 pairs") and "-1.00 pp" in line for line in lines)
    assert lines[-1] == "paired edge +0.30 pp [+0.30, +0.30] n=2"


def test_an_arm_returning_the_other_arms_configuration_shares_its_final_run(tmp_path: Path) -> None:
    from search.report.retrain import FinalRun, cache_key, cached_run, store_run
    from search.storage import open_storage

    arms = [paired_runs.Arm(1, s, 10, 1000, 500, "quick") for s in ("default", "sweep")]
    studies = [optuna.create_study(study_name=a.name, storage=open_storage(a.storage(tmp_path), heartbeat=False),
                                   direction="maximize") for a in arms]
    key = cache_key(TrainConfig(hidden_size=64, seed=1), 1000)
    assert paired_runs.shared_run(arms[1], tmp_path, key) is None
    run = FinalRun(config={"seed": 1}, epochs=[], test_acc=0.987, predictions="7", train_images=1000, seconds=1.0)
    store_run(studies[0], key, run)
    assert paired_runs.shared_run(arms[1], tmp_path, key) == run  # the default arm's run, found
    assert paired_runs.shared_run(arms[0], tmp_path, key) is None  # an arm never takes its own
    assert cached_run(studies[1], key) is None
    lone = paired_runs.Arm(2, "sweep", 10, 1000, 500, "quick")  # its pair's other study never existed
    assert paired_runs.shared_run(lone, tmp_path, key) is None
    assert not (tmp_path / f"{paired_runs.Arm(2, 'default', 10, 1000, 500, 'quick').name}.db").exists()


def test_pruning_record_matches_configurations_across_the_arms() -> None:
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from benchmarks import paired_pruning

    dist = {"lr": FloatDistribution(1e-4, 1e-2, log=True)}
    default, sweep = optuna.create_study(direction="maximize"), optuna.create_study(direction="maximize")
    for study in (default, sweep):  # V1 first in both: never counted
        study.add_trial(create_trial(params={"lr": 1e-3}, distributions=dist, value=0.96,
                                     user_attrs={"baseline": "v1"}))
    for lr, value in ((2e-3, 0.98), (3e-3, 0.97), (4e-3, 0.95), (5e-3, 0.99)):
        sweep.add_trial(create_trial(params={"lr": lr}, distributions=dist, value=value))
    default.add_trial(create_trial(params={"lr": 2e-3}, distributions=dist, state=TrialState.PRUNED,
                                   intermediate_values={3: 0.9}))  # the sweep's 2nd best, cut
    default.add_trial(create_trial(params={"lr": 3e-3}, distributions=dist, value=0.97))
    default.add_trial(create_trial(params={"lr": 7e-3}, distributions=dist, value=0.975))  # TPE's own draw
    default.add_trial(create_trial(params={"lr": 3e-3}, distributions=dist, value=0.971,
                                   user_attrs={"repeat_of": 2}))  # a repeat: not a search trial
    record = paired_pruning.compare(default, sweep)
    assert record.finished == (3, 4) and record.shared == 2
    assert record.pruned == [(2, 0.98)]
    assert "sweep rank #2 (98.00%)" in paired_pruning.describe(record)


def test_pruning_record_leaves_out_budget_cuts_and_splits_by_schedule() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState, create_trial

    from benchmarks import paired_pruning

    dist = {"lr": FloatDistribution(1e-4, 1e-2, log=True), "schedule": CategoricalDistribution(["cosine", "onecycle"])}
    default, sweep = optuna.create_study(direction="maximize"), optuna.create_study(direction="maximize")
    for lr, schedule, value in ((2e-3, "onecycle", 0.99), (3e-3, "cosine", 0.98), (4e-3, "cosine", 0.90),
                                (5e-3, "onecycle", 0.85)):
        sweep.add_trial(create_trial(params={"lr": lr, "schedule": schedule}, distributions=dist, value=value))
    default.add_trial(create_trial(params={"lr": 2e-3, "schedule": "onecycle"}, distributions=dist,
                                   state=TrialState.PRUNED))  # the pruner cut the sweep's best
    default.add_trial(create_trial(params={"lr": 3e-3, "schedule": "cosine"}, distributions=dist,
                                   state=TrialState.PRUNED,
                                   user_attrs={"fail_reason": "time budget (--timeout) reached"}))
    default.add_trial(create_trial(params={"lr": 4e-3, "schedule": "cosine"}, distributions=dist,
                                   state=TrialState.PRUNED))
    record = paired_pruning.compare(default, sweep)
    assert record.shared == 3 and record.pruned == [(1, 0.99), (3, 0.90)]  # not the budget's cut
    lines = paired_pruning.by_schedule([record])
    assert lines == ["schedule cosine: 2 drawn by both, 2 in the sweep's top 3; the default pruned 1, 1 of them "
                     "in the sweep's top 3",
                     "schedule onecycle: 1 drawn by both, 1 in the sweep's top 3; the default pruned 1, 1 of them "
                     "in the sweep's top 3"]


def test_t_interval_beside_the_bootstrap_is_wider_for_few_pairs() -> None:
    ci = paired_summary.t_interval([1.0, 2.0, 3.0])
    assert ci.mean == 2.0 and ci.hi - 2.0 == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)  # t(2) at 97.5%
    assert ci.lo == pytest.approx(4.0 - ci.hi)
    edges = [-0.07, 0.21, 0.03, 0.29, 0.20]  # five pairs: the percentile bootstrap is the narrower
    boot, t = paired_summary.bootstrap_mean(edges), paired_summary.t_interval(edges)
    assert t.lo < boot.lo and boot.hi < t.hi and t.lo < 0 < boot.lo
    one = paired_summary.t_interval([0.2])
    assert one.mean == 0.2 and np.isnan(one.lo) and np.isnan(one.hi)


def test_modelled_trials_are_those_started_once_the_startup_trials_had_finished() -> None:
    from datetime import datetime, timedelta

    from benchmarks import paired_modelling

    t0 = datetime(2026, 12, 7, 22, 0)
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}

    def trial(start: float, end: float, value: float | None, **attrs: object) -> optuna.trial.FrozenTrial:
        state = optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.PRUNED
        return optuna.trial.FrozenTrial(
            number=0, state=state, value=value, datetime_start=t0 + timedelta(minutes=start),
            datetime_complete=t0 + timedelta(minutes=end), params={"x": 0.5}, distributions=dist,
            user_attrs=dict(attrs), system_attrs={}, intermediate_values={}, trial_id=0)

    study = optuna.create_study(direction="maximize")
    for t in (trial(0, 1, 0.98, baseline="v1"),  # V1 counts toward TPE's start-up, never as a draw
              trial(1, 2, 0.96), trial(1.5, 3.5, None),  # random: 1 and 2 trials had finished
              trial(3.0, 4, 0.97),  # random: started with 2 finished (the pruned one ends at 3.5)
              trial(4.5, 5, 0.99), trial(5, 6, None),  # modelled: 4 and 5 finished before
              trial(6, 7, 0.90, repeat_of=4)):  # a repeat is not a draw
        study.add_trial(t)
    random, modelled = paired_modelling.split(study, startup=3)
    assert (random.finished, random.pruned, random.values) == (3, 1, [96.0, 97.0])
    assert (modelled.finished, modelled.pruned, modelled.values) == (2, 1, [99.0])
    assert paired_modelling.startup_of("tpe3") == 3
    assert paired_modelling.startup_of("default") == paired_modelling.DEFAULT_TPE_STARTUP == 10


def test_a_launch_inside_the_repository_names_its_storage_relative_to_it() -> None:
    arm = paired_runs.Arm(0, "default", 45, None, 5000, "default")
    inside = paired_runs.launch_command(arm, paired_runs.STUDIES, 600, None, "cpu")
    storage = inside[inside.index("--storage") + 1]
    assert storage == f"sqlite:///benchmarks/data/paired/{arm.name}.db"
    outside = Path("/elsewhere/studies")
    cmd = paired_runs.launch_command(arm, outside, 600, None, "cpu")
    assert cmd[cmd.index("--storage") + 1] == arm.storage(outside)
