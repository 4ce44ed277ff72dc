"""K worker processes on one machine, all running the same study.

A worker is ``run_worker(settings, index, threads)``: a plain function of the launch's
frozen settings that opens the storage, loads the data and runs trials. A single-process
launch calls it directly; here K spawned processes each call it with their own index and
a share of the CPU threads, so they behave exactly like K copies of the command started
by hand, or on K machines against one PostgreSQL.
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
from dataclasses import dataclass

import optuna
import torch
from tqdm.auto import tqdm

from model.config import TrainConfig
from model.data import MnistSplits, load_splits
from model.device import resolve_device
from model.errors import UserInputError
from model.memory import (
    PROCESS_OVERHEAD_BYTES,
    available_memory,
    data_bytes,
    format_bytes,
    trial_peak_bytes,
)
from search.artifacts import open_artifact_store
from search.best import val_size_of
from search.exits import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_TRIALS_FAILING,
    run_reporting,
)
from search.objective import Objective
from search.progress import budget_end, describe_trial, update_bar
from search.runner import RunSummary, prepare_kernels, run_trials
from search.samplers import make_sampler, sampler_seed
from search.settings import MAX_CONSECUTIVE_FAILURES, LaunchSettings
from search.space import SearchSpace
from search.storage import open_storage
from search.study import load_existing_study
from search.trials import FINISHED, existing_trial_count, finished_trials

__all__ = ["WorkerPlan", "available_cores", "largest_config", "plan_workers", "run_worker", "run_workers"]

POLL_SECONDS = 1.0
MAX_RESTARTS = 3  # per worker slot: a worker that keeps dying points at a real problem
# Exits that say the worker itself is fine and a restart would change nothing.
_NO_RESTART = (0, EXIT_BAD_INPUT, EXIT_TRIALS_FAILING, EXIT_INTERRUPTED)
_LINE_STATES = (*FINISHED, optuna.trial.TrialState.FAIL)  # the trials that get a line


@dataclass(frozen=True)
class WorkerPlan:
    workers: int
    threads: int  # torch threads per worker
    per_worker_bytes: int  # estimated peak RAM of one worker


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def largest_config(space: SearchSpace, base: TrainConfig) -> TrainConfig:
    """The space's most memory-hungry config: the largest hidden and batch sizes it allows,
    at whichever end of its steps range costs more (activations grow with the steps, the
    input weights with the pixels per step), so launch refuses what train would refuse."""
    big = base.with_overrides(
        hidden_size=space.int_bounds("hidden_size", base)[1], batch_size=space.int_bounds("batch_size", base)[1]
    )
    ends = [big.with_overrides(steps=s) for s in space.int_bounds("steps", base)]
    return max(ends, key=trial_peak_bytes)


def plan_workers(
    requested: str, threads: int | None, space: SearchSpace, base: TrainConfig,
    n_images: int, device: torch.device,
) -> WorkerPlan:
    """How many workers (``auto`` or a number) and threads each, refusing what cannot fit.

    ``auto`` = min(cores, workers whose peak memory fits in available RAM); on a GPU it is 1,
    since every worker would hold its own CUDA context and copy of the data on one card.
    """
    big = largest_config(space, base)
    trial = trial_peak_bytes(big)
    on_gpu = device.type == "cuda"
    per_worker = PROCESS_OVERHEAD_BYTES + data_bytes(n_images) + (0 if on_gpu else trial)
    ram = available_memory("cpu")
    fit_ram = max(0, ram // per_worker) if ram is not None else None
    if on_gpu:
        gpu = available_memory(device)
        if gpu is not None and trial + data_bytes(n_images) > gpu:
            raise UserInputError(_too_big(big, trial + data_bytes(n_images), gpu, "GPU memory"))
    if fit_ram == 0:
        raise UserInputError(_too_big(big, per_worker, ram or 0, "RAM"))
    if requested == "auto":
        workers = 1 if on_gpu else min(available_cores(), fit_ram or available_cores())
    else:
        workers = _parse_count(requested)
        if fit_ram is not None and workers > fit_ram:
            raise UserInputError(
                f"--workers {workers} needs about {format_bytes(workers * per_worker)} of RAM "
                f"({format_bytes(per_worker)} each at the space's largest hidden_size "
                f"{big.hidden_size} / batch_size {big.batch_size}) but {format_bytes(ram or 0)} is "
                f"available; use --workers {fit_ram} or fewer"
            )
    per_thread = threads if threads is not None else max(1, available_cores() // workers)
    return WorkerPlan(workers=workers, threads=per_thread, per_worker_bytes=per_worker)


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
        data = load_splits(settings.data_root, val_size=settings.val_size, subset=settings.subset,
                           seed=settings.seed)
    storage = open_storage(settings.storage)
    store = open_artifact_store(settings.storage, settings.artifacts)
    load_existing_study(settings.study, storage)  # an unknown name is an error, not a new study
    space, base = settings.space, settings.base
    seed = sampler_seed(settings.seed, existing_trial_count(storage, settings.study), worker_index)
    study = optuna.load_study(
        study_name=settings.study, storage=storage, sampler=make_sampler(settings.sampler, seed),
        pruner=settings.make_pruner(),
    )
    objective = Objective(space=space, base=base, data=data, device=device, artifact_store=store,
                          deadline=settings.deadline, progress_steps=settings.progress_steps,
                          search_deadline=settings.search_deadline)
    timeout = None if settings.search_deadline is None else max(0.0, settings.search_deadline - time.time())
    return run_trials(study, objective, settings.n_trials, timeout=timeout, progress=progress, echo=echo,
                      max_consecutive_failures=MAX_CONSECUTIVE_FAILURES,
                      confirm=settings.confirm, confirm_deadline=settings.deadline)


def run_workers(settings: LaunchSettings, plan: WorkerPlan, study: optuna.Study) -> int:
    """Spawn ``plan.workers`` worker processes on ``study`` and watch them until they end.

    Returns 0 when the study reached N, 130 after Ctrl-C, else a worker's exit code.
    """
    ctx = mp.get_context("spawn")  # fork would copy torch's thread pools and open DB connections
    n_trials = settings.n_trials
    procs: dict[int, mp.process.BaseProcess] = {}
    restarts = dict.fromkeys(range(plan.workers), 0)
    codes: dict[int, int] = {}

    def start(index: int) -> None:
        # Indexes continue from this command's own, so machines given 0, 10, 20... stay apart.
        proc = ctx.Process(target=_worker_main,
                           args=(settings, settings.worker_index + index, plan.threads),
                           name=f"lstm-search-worker-{index}")
        proc.start()
        procs[index] = proc

    # `kill PID` (SIGTERM) on this command takes the Ctrl-C path: workers record their
    # trials and stop, instead of running on as orphans in their own process groups.
    received: list[int] = []

    def on_term(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    shown = {t.number for t in study.get_trials(deepcopy=False, states=_LINE_STATES)}  # an earlier run's
    for index in range(plan.workers):
        start(index)
    bar = tqdm(total=n_trials, unit="trial", desc=f"{study.study_name} [search]", disable=not settings.progress,
               dynamic_ncols=True)
    ends = budget_end(settings.deadline)
    interrupted = False
    try:
        while procs:
            time.sleep(POLL_SECONDS)
            _write_new_trials(bar, study, shown)
            update_bar(bar, study, n_trials, ends, settings.search_deadline)
            for index, proc in list(procs.items()):
                if proc.exitcode is None:
                    continue
                proc.join()
                del procs[index]
                code = proc.exitcode
                codes[index] = code
                died = code not in _NO_RESTART  # killed or crashed
                # Restarted in the confirmation phase too: one with nothing left to do exits at once.
                work_left = finished_trials(study) < n_trials or settings.confirm.enabled
                if died and work_left and restarts[index] < MAX_RESTARTS:
                    restarts[index] += 1
                    bar.write(f"worker {index} exited with code {code}; restarting it "
                              f"({restarts[index]}/{MAX_RESTARTS}); its trial is re-run after the heartbeat grace period")
                    start(index)
    except KeyboardInterrupt:
        interrupted = True
        bar.write("interrupted: each worker records its running trial as failed, then stops "
                  "(Ctrl-C again to kill them; their trials are then failed and re-run on resume)")
        _stop(procs, codes)
    finally:
        signal.signal(signal.SIGTERM, previous)
        _write_new_trials(bar, study, shown)
        update_bar(bar, study, n_trials, ends, settings.search_deadline)
        bar.close()
    for index in sorted(codes):
        if codes[index] != 0 and not interrupted:
            print(f"worker {index} exited with code {codes[index]}", file=sys.stderr)
    if interrupted:
        return 128 + (received[0] if received else signal.SIGINT)
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


def _stop(procs: dict[int, mp.process.BaseProcess], codes: dict[int, int]) -> None:
    for proc in procs.values():
        if proc.exitcode is None and proc.pid is not None:
            os.kill(proc.pid, signal.SIGINT)
    try:
        for index, proc in procs.items():
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


def _parse_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UserInputError(f"--workers must be 'auto' or a whole number >= 1 (got {text!r})") from None
    if value < 1:
        raise UserInputError(f"--workers must be >= 1 (got {value})")
    return value


def _too_big(cfg: TrainConfig, need: int, free: int, where: str) -> str:
    return (
        f"the space allows hidden_size {cfg.hidden_size} with batch_size {cfg.batch_size}, whose trials need "
        f"about {format_bytes(need)} but only {format_bytes(free)} of {where} is available; "
        "lower hidden_size.high or the batch sizes in the space file"
    )
