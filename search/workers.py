"""K worker processes on one machine, all running the same study.

Each worker is an ordinary ``lstm-search launch`` (one process, ``--workers 1``) with its own
``--worker-index`` and a share of the CPU threads, so K workers started here behave exactly
like K copies of the command started by hand, or on K machines against one PostgreSQL.
The study itself is the only thing they share: Optuna hands each worker the next trial,
the heartbeat fails a dead worker's trial and re-queues it, and every worker stops when the
study holds N finished trials.

The parent creates the study before spawning (so the V1 baseline is enqueued exactly once),
then only watches: one progress bar from polling the study, Ctrl-C forwarded to the workers
(which record their running trial and exit), a worker that dies restarted a few times.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import sys
import time
from dataclasses import dataclass

import optuna
import torch
from tqdm.auto import tqdm

from model.config import TrainConfig
from model.errors import UserInputError
from model.memory import PROCESS_OVERHEAD_BYTES, available_memory, data_bytes, format_bytes, trial_peak_bytes
from search.space import SearchSpace
from search.study import finished_trials

__all__ = ["WorkerPlan", "available_cores", "largest_config", "plan_workers", "run_workers"]

POLL_SECONDS = 1.0
MAX_RESTARTS = 3  # per worker slot: a worker that keeps dying points at a real problem
MNIST_TRAIN = 60_000


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
    """The space's most memory-hungry config: the largest hidden and batch sizes it allows."""
    return base.with_overrides(
        hidden_size=space.int_bounds("hidden_size", base)[1], batch_size=space.int_bounds("batch_size", base)[1]
    )


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


def run_workers(args: argparse.Namespace, plan: WorkerPlan, study: optuna.Study, progress: bool = True) -> int:
    """Spawn ``plan.workers`` launch processes on ``study`` and watch them until they end.

    ``args`` is the parent's parsed launch command; each worker gets a copy with its own
    index. Returns 0 when the study reached N, 130 after Ctrl-C, else a worker's exit code.
    """
    ctx = mp.get_context("spawn")  # fork would copy torch's thread pools and open DB connections
    n_trials = args.n_trials
    procs: dict[int, mp.process.BaseProcess] = {}
    restarts = dict.fromkeys(range(plan.workers), 0)
    codes: dict[int, int] = {}

    def start(index: int) -> None:
        child = argparse.Namespace(**vars(args))
        # Indexes continue from this command's own, so machines given 0, 10, 20... stay apart.
        child.workers, child.worker_index, child.threads = "1", args.worker_index + index, plan.threads
        child.no_progress, child.resume, child.spawned = True, True, True
        proc = ctx.Process(target=_worker_main, args=(child,), name=f"lstm-search-worker-{index}")
        proc.start()
        procs[index] = proc

    # `kill PID` (SIGTERM) on this command takes the Ctrl-C path: workers record their
    # trials and stop, instead of running on as orphans in their own process groups.
    received: list[int] = []

    def on_term(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    for index in range(plan.workers):
        start(index)
    bar = tqdm(total=n_trials, unit="trial", desc=study.study_name, disable=not progress, dynamic_ncols=True)
    interrupted = False
    try:
        while procs:
            time.sleep(POLL_SECONDS)
            _update_bar(bar, study, n_trials)
            for index, proc in list(procs.items()):
                if proc.exitcode is None:
                    continue
                proc.join()
                del procs[index]
                code = proc.exitcode
                codes[index] = code
                died = code != 0 and code not in (2, 130)  # killed or crashed, not bad input / Ctrl-C
                if died and finished_trials(study) < n_trials and restarts[index] < MAX_RESTARTS:
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
        _update_bar(bar, study, n_trials)
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


def _worker_main(args: argparse.Namespace) -> None:
    """A worker process: its own process group, so a terminal's Ctrl-C reaches only the
    parent, which forwards exactly one SIGINT (a second could interrupt the trial's record)."""
    os.setpgrp()
    _interrupt_me_when_parent_dies()
    from search.cli import PROG  # imported here: the parent's modules are not inherited under spawn

    try:
        code = int(args.run(args) or 0)
    except UserInputError as exc:
        print(f"{PROG} launch (worker {args.worker_index}): error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
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


def _update_bar(bar: tqdm, study: optuna.Study, n_trials: int) -> None:
    if bar.disable:
        return
    bar.n = min(finished_trials(study), n_trials)
    try:
        bar.set_postfix(best=f"{100 * study.best_value:.2f}%", refresh=False)
    except ValueError:  # no complete trial yet
        pass
    bar.refresh()


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
