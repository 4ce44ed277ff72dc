"""K worker processes on one machine, all running the same study.

A worker is ``run_worker(settings, index, threads)``: a plain function of the launch's
frozen settings that opens the storage, loads the data (settings.py's ``load_data``) and
runs trials. A single-process launch calls it directly; here K spawned
processes each call it with their own index and a share of the CPU threads, so they behave
exactly like K copies of the command started by hand, or on K machines against one
PostgreSQL.
How many workers and threads fit is search/worker_plan.py's job.
The study itself is the only thing they share: Optuna hands each worker the next trial,
the heartbeat fails a dead worker's trial and re-queues it, and every worker stops when the
study holds N finished trials.

The parent creates the study before spawning (so the V1 baseline is enqueued exactly once),
then only watches: one progress bar and one line per finished trial, both from polling the
study (a worker printing its own lines would write them into the middle of the parent's bar),
Ctrl-C forwarded to the workers (which record their running trial and exit), a worker that
dies restarted a few times.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
import torch
from tqdm.auto import tqdm

from model.data import MnistSplits
from model.device import resolve_device
from search.artifacts import open_artifact_store
from search.best import val_size_of
from search.exits import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_TRIALS_FAILING,
    interruptible,
    run_reporting,
)
from search.objective import Objective
from search.progress import budget_end, describe_trial, update_bar
from search.runner import RunSummary, prepare_kernels, run_trials
from search.samplers import make_sampler, sampler_seed
from search.settings import MAX_CONSECUTIVE_FAILURES, LaunchSettings, load_data
from search.storage import open_storage
from search.study import load_existing_study
from search.trials import FINISHED, existing_trial_count, finished_trials
from search.worker_plan import WorkerPlan

__all__ = ["run_worker", "run_workers"]

POLL_SECONDS = 1.0
MAX_RESTARTS = 3  # per worker slot: a worker that keeps dying points at a real problem
# After Ctrl-C a worker records its trial in about a second; a storage call riding out a
# PostgreSQL restart retries for up to RECONNECT_SECONDS (60), so this leaves room for one.
STOP_SECONDS = 90.0
# Exits that say the worker itself is fine and a restart would change nothing.
_NO_RESTART = (0, EXIT_BAD_INPUT, EXIT_TRIALS_FAILING, EXIT_INTERRUPTED)
_LINE_STATES = (*FINISHED, optuna.trial.TrialState.FAIL)  # the trials that get a line
_SPAWN = mp.get_context("spawn")  # fork would copy torch's thread pools and open DB connections


def run_worker(
    settings: LaunchSettings, worker_index: int, threads: int | None, data: MnistSplits | None = None,
    progress: bool = True, echo: Callable[[str], None] | None = None,
) -> RunSummary:
    """One worker: open the storage, load the data (unless given), run trials to N.

    The study must exist (the launch command creates it and checks its settings first).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from run_trials
    device = resolve_device(settings.device)
    prepare_kernels(device, echo=echo or print)  # a worker loads what the launch built, before its first trial
    if data is None:
        data = load_data(settings, settings.seed)
    storage = open_storage(settings.storage)
    store = open_artifact_store(settings.storage, settings.artifacts)
    load_existing_study(settings.study, storage)  # an unknown name is an error, not a new study
    space, base = settings.space, settings.base
    seed = sampler_seed(settings.seed, existing_trial_count(storage, settings.study), worker_index)
    study = optuna.load_study(
        study_name=settings.study, storage=storage, sampler=make_sampler(settings.sampler, seed, settings.tpe_startup),
        pruner=settings.make_pruner(),
    )
    objective = Objective(space=space, base=base, data=data, device=device, artifact_store=store,
                          deadline=settings.deadline, progress_steps=settings.progress_steps,
                          search_end=settings.search_end)
    end = settings.search_end
    timeout = None if end is None else max(0.0, end.deadline - time.time())  # SearchEnd.at decides sooner
    return run_trials(study, objective, settings.n_trials, timeout=timeout, progress=progress, echo=echo,
                      max_consecutive_failures=MAX_CONSECUTIVE_FAILURES,
                      confirm=settings.confirm, confirm_deadline=settings.deadline, search_end=end)


@dataclass
class _Pool:
    """The worker processes of one launch: which run, how often each slot was restarted,
    and the exit code each slot ended with."""

    settings: LaunchSettings
    plan: WorkerPlan
    procs: dict[int, mp.process.BaseProcess] = field(default_factory=dict)
    restarts: dict[int, int] = field(default_factory=dict)
    codes: dict[int, int] = field(default_factory=dict)

    def start(self, index: int) -> None:
        # Indexes continue from this command's own, so machines given 0, 10, 20... stay apart.
        proc = _SPAWN.Process(target=_worker_main,
                              args=(self.settings, self.settings.worker_index + index, self.plan.threads),
                              name=f"lstm-search-worker-{index}")
        proc.start()
        self.procs[index] = proc

    def reap(self, study: optuna.Study, bar: tqdm) -> None:
        """Collect the workers that ended since the last poll; restart those that died
        while work is left, up to MAX_RESTARTS times per slot."""
        for index, proc in list(self.procs.items()):
            if proc.exitcode is None:
                continue
            proc.join()
            del self.procs[index]
            code = proc.exitcode
            self.codes[index] = code
            died = code not in _NO_RESTART  # killed or crashed
            # Restarted in the confirmation phase too: one with nothing left to do exits at once.
            work_left = finished_trials(study) < self.settings.n_trials or self.settings.confirm.enabled
            done = self.restarts.get(index, 0)
            if died and work_left and done < MAX_RESTARTS:
                self.restarts[index] = done + 1
                bar.write(f"worker {index} exited with code {code}; restarting it "
                          f"({done + 1}/{MAX_RESTARTS}); its trial is re-run after the heartbeat grace period")
                self.start(index)


def run_workers(settings: LaunchSettings, plan: WorkerPlan, study: optuna.Study) -> int:
    """Spawn ``plan.workers`` worker processes on ``study`` and watch them until they end.

    Returns 0 when the study reached N, 130 after Ctrl-C, else a worker's exit code.
    """
    pool = _Pool(settings, plan)
    # `kill PID` (SIGTERM) on this command takes the Ctrl-C path: workers record their
    # trials and stop, instead of running on as orphans in their own process groups.
    with interruptible() as stop:
        shown = {t.number for t in study.get_trials(deepcopy=False, states=_LINE_STATES)}  # an earlier run's
        for index in range(plan.workers):
            pool.start(index)
        bar = tqdm(total=settings.n_trials, unit="trial", desc=f"{study.study_name} [search]",
                   disable=not settings.progress, dynamic_ncols=True)
        ends = budget_end(settings.deadline)
        try:
            while pool.procs:
                time.sleep(POLL_SECONDS)
                _show_progress(bar, study, shown, settings, ends)
                pool.reap(study, bar)
                stop.check()
        except KeyboardInterrupt:
            bar.write("interrupted: each worker records its running trial as failed, then stops "
                      "(Ctrl-C again to kill them; their trials are then failed and re-run on resume)")
            _stop(pool.procs, pool.codes, bar.write)
            return 128 + (stop.signum or signal.SIGINT)
        finally:
            _show_progress(bar, study, shown, settings, ends)
            bar.close()
    return _exit_code(pool.codes, study, settings.n_trials)


def _show_progress(bar: tqdm, study: optuna.Study, shown: set[int], settings: LaunchSettings,
                   ends: str | None) -> None:
    _write_new_trials(bar, study, shown)
    update_bar(bar, study, settings.n_trials, ends, settings.search_end, settings.confirm)


def _exit_code(codes: dict[int, int], study: optuna.Study, n_trials: int) -> int:
    """After the workers ended by themselves: name each that failed; 0 when the study
    reached N, else the first failing worker's code."""
    for index in sorted(codes):
        if codes[index] != 0:
            print(f"worker {index} exited with code {codes[index]}", file=sys.stderr)
    if finished_trials(study) >= n_trials:
        return 0
    failing = [c for c in codes.values() if c != 0]
    return failing[0] if failing else 0  # --timeout ends workers early with code 0


def _worker_main(settings: LaunchSettings, worker_index: int, threads: int) -> None:
    """A spawned worker process: its own process group, so a terminal's Ctrl-C reaches only
    the parent, which forwards exactly one SIGINT (a second could interrupt the trial's record)."""
    os.setpgrp()
    _interrupt_me_when_parent_dies()

    def work() -> int:
        # The parent prints every trial's line and one summary for all workers.
        run_worker(settings, worker_index, threads, progress=False, echo=_quiet)
        return 0

    code = run_reporting(f"launch (worker {worker_index})", work)
    sys.stdout.flush()
    sys.exit(code)


def _interrupt_me_when_parent_dies() -> None:
    """Linux: a SIGINT when the parent dies (even by SIGKILL), so the worker records its
    trial as failed and stops rather than running on alone. Elsewhere: nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGINT, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGINT)


def _stop(procs: dict[int, mp.process.BaseProcess], codes: dict[int, int], write: Callable[[str], None]) -> None:
    """SIGINT to each worker, then wait for them: each records its trial and exits. One still
    running after STOP_SECONDS is killed (its trial is then failed by the heartbeat and re-run
    on resume) rather than holding the command forever; a second Ctrl-C kills them all."""
    for proc in procs.values():
        if proc.exitcode is None and proc.pid is not None:
            os.kill(proc.pid, signal.SIGINT)
    give_up = time.monotonic() + STOP_SECONDS
    try:
        for index, proc in procs.items():
            proc.join(max(0.0, give_up - time.monotonic()))
            if proc.exitcode is None:
                write(f"worker {index} did not stop within {STOP_SECONDS:.0f} s of Ctrl-C; killed it "
                      "(its trial is failed and re-run on resume)")
                proc.kill()
                proc.join()
            codes[index] = proc.exitcode if proc.exitcode is not None else -1
    except KeyboardInterrupt:
        for index, proc in procs.items():
            if proc.exitcode is None:
                proc.kill()
                proc.join()
            codes[index] = proc.exitcode if proc.exitcode is not None else -9


def _quiet(line: str) -> None:
    """A worker's echo: its lines reach the user through the parent (``_write_new_trials``)."""


def _write_new_trials(bar: tqdm, study: optuna.Study, shown: set[int]) -> None:
    """One line above the bar for each trial finished since the last poll, in trial order."""
    val_size = val_size_of(study)
    for trial in study.get_trials(deepcopy=False, states=_LINE_STATES):
        if trial.number not in shown:
            shown.add(trial.number)
            bar.write(describe_trial(trial, val_size))
