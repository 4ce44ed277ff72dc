"""Crashes: a SIGKILLed worker's trial is failed and re-run; Ctrl-C records the running
trial and the same command resumes; a diverging trial is pruned with its reason."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from model.config import TrainConfig
from model.data import MnistSplits
from search.connections import HEARTBEAT_SECONDS
from search.objective import Objective
from search.runner import run_trials
from search.space import parse_space
from search.storage import open_storage
from tests.dropped_interrupt import drop_a_ctrl_c
from tests.search.conftest import launch_args, running_trial_with_epoch, start_cli, states, wait_for

GRACE = 2 * HEARTBEAT_SECONDS


def kill_one_of_two_workers(storage: str, space: Path, root: Path, n_trials: int) -> dict[str, float]:
    """Two hand-started workers; SIGKILL one in the middle of a trial; the other finishes.

    Returns the measured delays (seconds after the kill) for the report in the caller.
    Shared by the SQLite and PostgreSQL tests.
    """
    study = "killed"
    args = launch_args(study, n_trials, storage, space, root, "--workers", "1", "--threads", "1")
    victim = start_cli([*args, "--worker-index", "0"])
    survivor = start_cli([*args, "--worker-index", "1"])
    try:
        trial = wait_for(lambda: running_trial_with_epoch(storage, study, victim.pid), 120,
                         "the victim to report an epoch", poll=0.2)
        victim.send_signal(signal.SIGKILL)
        killed_at = time.time()
        victim.wait(10)
        out, _ = survivor.communicate(timeout=300)
    finally:
        for proc in (victim, survivor):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert survivor.returncode == 0, out
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    dead = by_number[trial.number]
    assert dead.state == optuna.trial.TrialState.FAIL, "the killed worker's trial was not failed"
    failed_after = dead.datetime_complete.timestamp() - killed_at
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == trial.number]
    assert len(retries) == 1, "the killed trial was not re-queued exactly once"
    retry = retries[0]
    assert retry.params == dead.params
    assert retry.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED), \
        f"the retry was not run by the surviving worker: {retry.state.name}"
    retried_after = retry.datetime_start.timestamp() - killed_at
    # Failed once the heartbeat is GRACE old and the survivor starts its next trial (a few s).
    assert failed_after < GRACE + 15, f"stale trial failed only {failed_after:.0f}s after the kill"
    count = states(storage, study)
    assert count["COMPLETE"] + count["PRUNED"] >= n_trials
    assert count["RUNNING"] == 0 and count["WAITING"] == 0
    assert count["FAIL"] == 1
    return {"failed_after": failed_after, "retried_after": retried_after}


@pytest.mark.slow
def test_sigkilled_worker_trial_is_failed_and_rerun(tmp_path: Path, slow_space: Path, fake_root: Path) -> None:
    delays = kill_one_of_two_workers(f"sqlite:///{tmp_path / 'studies.db'}", slow_space, fake_root, n_trials=12)
    print(f"SQLite: killed trial failed {delays['failed_after']:.1f}s and re-run "
          f"{delays['retried_after']:.1f}s after SIGKILL (grace period {GRACE}s)")


@pytest.mark.slow
def test_ctrl_c_records_the_trial_and_the_same_command_resumes(
    tmp_path: Path, slow_space: Path, fake_root: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    args = launch_args("interrupted", 3, storage, slow_space, fake_root, "--workers", "1", "--threads", "1")
    proc = start_cli(args)
    try:
        trial = wait_for(lambda: running_trial_with_epoch(storage, "interrupted"), 120, "an epoch", poll=0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    assert "run the same command again to resume" in out
    stopped = optuna.load_study(study_name="interrupted", storage=storage).trials[trial.number]
    assert stopped.state == optuna.trial.TrialState.FAIL
    assert "interrupted" in stopped.user_attrs["fail_reason"]
    assert states(storage, "interrupted")["RUNNING"] == 0

    again = start_cli(args)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    count = states(storage, "interrupted")
    assert count["COMPLETE"] + count["PRUNED"] == 3  # N in total, not N more
    assert count["RUNNING"] == 0


@pytest.mark.slow
def test_ctrl_c_on_the_parent_stops_every_worker(tmp_path: Path, slow_space: Path, fake_root: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    # N far above what can finish before the signal: with 50 one-second trials a slow poll
    # once let the study end first and the parent exit 0 (CI, 2026-11-23).
    proc = start_cli(launch_args("parent", 100_000, storage, slow_space, fake_root, "--workers", "2"))
    try:
        wait_for(lambda: running_trial_with_epoch(storage, "parent"), 120, "an epoch", poll=0.2)
        proc.send_signal(signal.SIGINT)  # only the parent: the workers are in their own group
        # A hang guard, not a speed target: on a loaded 2-core machine (load 4+) the workers
        # took over 60 s to record their trials and exit.
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    count = states(storage, "parent")
    assert count["RUNNING"] == 0, out
    assert count["FAIL"] >= 1  # the interrupted trials are recorded, not lost


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped exception
def test_a_ctrl_c_that_python_drops_still_stops_every_worker(
    tmp_path: Path, slow_space: Path, fake_root: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The launch's parent notices a Ctrl-C whose exception was lost at its next poll, and
    stops the workers, instead of watching them until N (here: far out of reach)."""
    from search import cli, workers

    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    show = workers._show_progress
    dropped: list[bool] = []

    def show_then_drop_a_ctrl_c(bar: object, study: optuna.Study, *rest: object) -> None:
        show(bar, study, *rest)
        if not dropped and running_trial_with_epoch(storage, "dropped"):
            dropped.append(True)
            drop_a_ctrl_c()

    monkeypatch.setattr(workers, "_show_progress", show_then_drop_a_ctrl_c)
    # --timeout: had the Ctrl-C stayed lost, the launch would end by its budget with 0, not hang.
    code = cli.main(launch_args("dropped", 100_000, storage, slow_space, fake_root, "--workers", "2",
                                "--timeout", "90"))
    assert dropped
    assert code == 130
    assert multiprocessing.active_children() == []  # every worker stopped and reaped
    count = states(storage, "dropped")
    assert count["RUNNING"] == 0 and count["FAIL"] >= 1  # the interrupted trials are recorded


def test_diverging_trial_is_pruned_with_its_reason_and_the_study_goes_on(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, 28, 28, generator=gen), torch.randint(0, 10, (120,), generator=gen)
    data = MnistSplits(x[:100], y[:100], x[100:], y[100:])
    space = parse_space('optimizer = "sgd"\nmomentum = 0.0\n[lr]\nlow = 1e-3\nhigh = 1e38\nlog = true\n')
    base = TrainConfig(hidden_size=8, batch_size=25, epochs=1)
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"), direction="maximize")
    study.enqueue_trial({"lr": 1e38})  # overflows the weights: the loss becomes inf
    study.enqueue_trial({"lr": 1e-2})
    summary = run_trials(study, Objective(space, base, data, torch.device("cpu")), 2, progress=False)
    diverged, healthy = study.trials
    assert diverged.state == optuna.trial.TrialState.PRUNED
    assert "inf" in diverged.user_attrs["fail_reason"] or "nan" in diverged.user_attrs["fail_reason"]
    assert healthy.state == optuna.trial.TrialState.COMPLETE
    assert summary.searched == 2  # a pruned trial is finished: it counts toward N


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it has stopped running, which is what matters here.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1].startswith("Z")


def _worker_pid(storage: str, study: str) -> int:
    trial = wait_for(lambda: running_trial_with_epoch(storage, study), 120, "an epoch", poll=0.2)
    return int(str(trial.user_attrs["worker"]).rsplit(":", 1)[1])


@pytest.mark.slow
def test_sigterm_on_the_parent_stops_every_worker(tmp_path: Path, slow_space: Path, fake_root: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    proc = start_cli(launch_args("term", 100_000, storage, slow_space, fake_root, "--workers", "2"))
    try:
        worker = _worker_pid(storage, "term")
        proc.terminate()  # `kill PID`, as a scheduler or a user would send
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, out
    wait_for(lambda: _gone(worker), 30, "the worker to stop")
    count = states(storage, "term")
    assert count["RUNNING"] == 0, out
    assert count["FAIL"] >= 1


def _worker_pids(storage: str, study: str) -> set[int]:
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    return {int(str(t.user_attrs["worker"]).rsplit(":", 1)[1]) for t in trials if "worker" in t.user_attrs}


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_workers_stop_when_the_parent_is_killed(tmp_path: Path, slow_space: Path, fake_root: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    # N far above what can finish in the wait below: with 50 one-second trials an orphan
    # that never got the parent's death signal simply finished the study and exited, and
    # the test passed without PR_SET_PDEATHSIG.
    proc = start_cli(launch_args("orphan", 100_000, storage, slow_space, fake_root, "--workers", "2"))
    try:
        worker = _worker_pid(storage, "orphan")
        proc.kill()  # SIGKILL: the parent cannot forward anything
        proc.wait(timeout=30)  # not communicate(): a live orphan holds the output pipe open
        wait_for(lambda: _gone(worker), 60, "the orphaned worker to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _worker_pids(storage, "orphan"):  # orphans left by a failure here
            if pid != os.getpid() and not _gone(pid):
                os.kill(pid, signal.SIGKILL)
        proc.stdout.close()
    # The worker got SIGINT from the kernel and recorded its trial, so nothing waits on a heartbeat.
    trials = optuna.load_study(study_name="orphan", storage=storage).get_trials(deepcopy=False)
    mine = [t for t in trials if str(t.user_attrs.get("worker", "")).endswith(f":{worker}")]
    assert mine and all(t.state != optuna.trial.TrialState.RUNNING for t in mine)
