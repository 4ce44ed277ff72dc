"""Several workers on one study: `launch --workers K` and copies started by hand (the plan
that picks K: tests/search/test_worker_plan.py)."""

from __future__ import annotations

import argparse
import re
import threading
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from model.config import PRESETS
from search.pruning import make_pruner
from search.samplers import make_sampler, sampler_seed
from search.settings import load_data
from search.space import parse_space
from search.storage import open_storage
from search.study import PROJECT_MARKER, create_or_resume, requeue_lost_baseline
from tests.search.conftest import launch_args, start_cli, states


@pytest.mark.slow
def test_four_workers_share_one_sqlite_file_without_lock_errors(
    tmp_path: Path, tiny_space: Path, fake_root: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    proc = start_cli(launch_args("shared", 40, storage, tiny_space, fake_root, "--workers", "4"))
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert "database is locked" not in out.lower()
    assert "Traceback" not in out
    count = states(storage, "shared")
    assert count["COMPLETE"] + count["PRUNED"] >= 40
    assert count["FAIL"] == 0 and count["RUNNING"] == 0 and count["WAITING"] == 0
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1  # enqueued once, by the parent
    assert len({t.user_attrs["worker"] for t in trials}) == 4  # every worker took trials
    assert len({tuple(sorted(t.params.items())) for t in trials}) > len(trials) // 2


@pytest.mark.slow
def test_the_progress_bar_says_when_the_time_budget_ends(
    tmp_path: Path, tiny_space: Path, fake_root: Path
) -> None:
    # The bar's ETA counts toward --n-trials (hours for a large N); with --timeout it also
    # shows the clock time at which the budget ends.
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    args = [a for a in launch_args("lines", 8, storage, tiny_space, fake_root, "--workers", "2", "--timeout", "600")
            if a != "--no-progress"]
    proc = start_cli(args)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    pieces = [p for line in out.splitlines() for p in line.split("\r")]
    assert any("ends=" in p for p in pieces), out
    # The parent prints every finished trial once, on a line of its own: the workers print
    # none, since their lines would land in the middle of the parent's bar.
    line = r"trial \d+( \[V1 baseline\])?: (val acc|pruned|failed)"
    lines = [p for p in pieces if re.match(line, p)]
    assert not any(re.search("." + line, p) for p in pieces), out  # none glued to a bar
    study = optuna.load_study(study_name="lines", storage=storage)
    finished = [t.number for t in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))]
    assert sorted(int(p.split()[1].rstrip(":")) for p in lines) == sorted(finished), out


@pytest.mark.slow
def test_copies_started_by_hand_cooperate(tmp_path: Path, tiny_space: Path, fake_root: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    args = launch_args("by-hand", 10, storage, tiny_space, fake_root, "--workers", "1", "--threads", "1")
    procs = [start_cli([*args, "--worker-index", str(i)]) for i in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    count = states(storage, "by-hand")
    assert count["COMPLETE"] + count["PRUNED"] >= 10 and count["FAIL"] == 0 and count["RUNNING"] == 0
    trials = optuna.load_study(study_name="by-hand", storage=storage).trials
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1


def test_the_study_is_created_and_the_baseline_enqueued_once(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat=False)
    space = parse_space("[lr]\nlow = 1e-4\nhigh = 1e-2\nlog = true\n")
    opened = [
        create_or_resume("s", storage, make_sampler("tpe", 0), make_pruner("none", 1), space,
                         PRESETS["v1"], {"seed": 0})
        for _ in range(3)
    ]
    assert [created for _, created in opened] == [True, False, False]
    assert len(opened[0][0].get_trials(states=(optuna.trial.TrialState.WAITING,))) == 1


def test_a_copy_that_sees_the_settings_before_the_baseline_waits_for_it(tmp_path: Path) -> None:
    """The creator writes the settings, then enqueues V1, then the marker. A copy that
    opens the study in between must not take it for a study whose baseline was lost."""
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat=False)
    space = parse_space("[lr]\nlow = 1e-4\nhigh = 1e-2\nlog = true\n")
    storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    creator = optuna.load_study(study_name="s", storage=storage)
    creator.set_user_attr("baseline_config", PRESETS["v1"].to_dict())  # the creator, half way

    def finish_creating() -> None:
        time.sleep(0.5)
        creator.enqueue_trial(space.params_of(PRESETS["v1"]), user_attrs={"baseline": "v1"})
        creator.set_user_attr(PROJECT_MARKER, 1)

    thread = threading.Thread(target=finish_creating)
    thread.start()
    study, created = create_or_resume("s", storage, make_sampler("tpe", 0), make_pruner("none", 1), space,
                                      PRESETS["v1"], {"seed": 0})
    requeued = requeue_lost_baseline(study, space)  # what launch does next, at once
    thread.join()
    assert not created and not requeued
    assert sum(bool(t.user_attrs.get("baseline")) for t in study.get_trials()) == 1


def test_workers_get_different_sampler_seeds() -> None:
    seeds = {sampler_seed(0, 5, index) for index in range(8)}
    assert len(seeds) == 8
    draws = {make_sampler("random", s).sample_independent(
        optuna.create_study(), optuna.trial.FrozenTrial(0, optuna.trial.TrialState.RUNNING, None,
                                                        None, None, {}, {}, {}, {}, {}, 0),
        "x", optuna.distributions.FloatDistribution(0, 1)) for s in seeds}
    assert len(draws) == 8



def test_neighbouring_study_seeds_never_share_a_sampler_stream() -> None:
    """A sum (seed + trials held) gave study seed 7 resumed after 2 trials the stream of
    seed 8 after 1: two paired runs drew the same configurations."""
    seeds = [sampler_seed(s, k, w) for s in range(40) for k in range(40) for w in range(3)]
    assert len(set(seeds)) == len(seeds)
    assert sampler_seed(7, 2) == sampler_seed(7, 2)  # still a function of its inputs


def test_the_data_flags_are_read_the_same_for_launch_and_train(fake_root: Path) -> None:
    # launch passes its LaunchSettings, train its parsed flags: one reading of the three flags.
    flags = argparse.Namespace(data_root=str(fake_root), val_size=50, subset=120)
    data = load_data(flags, seed=0)
    assert (len(data.train_y), len(data.val_y)) == (120, 50)
    again, other = load_data(flags, seed=0), load_data(flags, seed=1)
    assert torch.equal(data.val_y, again.val_y)
    assert not torch.equal(data.train_x, other.train_x)  # the seed orders the split


def _deaf_worker(ready: object) -> None:
    """A worker stuck where SIGINT cannot reach it (a hung storage call, a C loop)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ready.set()  # type: ignore[attr-defined]
    time.sleep(120)


def test_a_worker_that_does_not_stop_after_ctrl_c_is_killed_after_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing as mp

    from search import workers

    monkeypatch.setattr(workers, "STOP_SECONDS", 1.0)
    spawn = mp.get_context("spawn")
    ready = spawn.Event()
    proc = spawn.Process(target=_deaf_worker, args=(ready,))
    proc.start()
    assert ready.wait(60)  # SIGINT is now ignored there rather than fatal
    codes: dict[int, int] = {}
    lines: list[str] = []
    started = time.monotonic()
    workers._stop({0: proc}, codes, lines.append)
    assert time.monotonic() - started < 30  # not the child's 120 s
    assert codes == {0: -9}
    assert lines and "worker 0 did not stop within 1 s" in lines[0]
