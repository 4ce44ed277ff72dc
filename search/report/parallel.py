"""The report's final runs, trained side by side in processes when there are cores for them.

V1's and V2's runs, one per seed, are independent: on a 2-core machine two of them in two
single-threaded processes finish sooner than one after the other on two threads (small
LSTMs do not keep two threads busy). Each run is trained by a spawned child, as launch's
workers are (``search/workers.py``), with its share of the threads and the data and device
of the report's ``FinalRunSpec``; a run trains the same way in a child as in this process
with the same thread count, so it is cached under the same key whichever way it ran.

Only this process writes to the study: a child sends its log lines and its finished run
through a queue, and ``on_done`` stores each run as it arrives, with Ctrl-C held off for
that moment, so a killed report leaves whole runs only and the next one trains only the
missing ones. Ctrl-C (or SIGTERM) kills every child (a child has nothing to save: its run
is lost either way and trains again on resume), then raises KeyboardInterrupt.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue as queue_module
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from model.data import load_mnist
from search.exits import Interrupted, interruptible
from search.report import retrain
from search.report.retrain import (
    FinalData,
    FinalJob,
    FinalRun,
    FinalRunSpec,
    load_final_data,
)
from search.runner import prepare_kernels

__all__ = ["plan_processes", "run_jobs"]

POLL_SECONDS = 0.5


def plan_processes(jobs: int, threads: int) -> tuple[int, int]:
    """(processes, threads each) for ``jobs`` runs given ``threads`` CPU threads in all:
    one process per run up to one per thread, the threads split evenly between them."""
    processes = max(1, min(jobs, threads))
    return processes, max(1, threads // processes)


def run_jobs(
    jobs: list[FinalJob],
    spec: FinalRunSpec,
    data: Callable[[int], FinalData],
    on_done: Callable[[FinalJob, FinalRun], None],
    log: Callable[[str], None] = print,
) -> None:
    """Train every job as ``spec`` says and hand each finished run to ``on_done`` (which
    stores it).

    ``spec.threads`` is the CPU threads to use in all (None: torch's current count). On a
    CPU with more than one thread and more than one job, the runs train in spawned processes
    (they load their own images with ``spec.data_root`` and ``spec.subset``); otherwise one
    after the other here, with ``data(seed)``.
    """
    if not jobs:
        return
    device = torch.device(spec.device)
    prepare_kernels(device, echo=log)  # once, here: the children find it built
    total = spec.threads if spec.threads is not None else torch.get_num_threads()
    processes, each = plan_processes(len(jobs), total) if device.type == "cpu" else (1, total)
    with interruptible() as stop:  # `kill PID` stops the children too
        if processes == 1:
            for job in jobs:
                run = retrain.run_final(job.cfg, data(job.cfg.seed), device=device, log=_prefixed(log, job),
                                        gates=job.gates)
                with _signals_held():
                    on_done(job, run)
                stop.check()
            return
        for train in (True, False):  # downloaded (or found wanting) here, not by several children at once
            load_mnist(spec.data_root, train=train)
        log(f"training {len(jobs)} final runs in {processes} processes x {each} thread(s)")
        _run_in_processes(jobs, spec, on_done, log, processes, each, stop)
        stop.check()  # a Ctrl-C after the last run was stored still stops the report


def _prefixed(log: Callable[[str], None], job: FinalJob) -> Callable[[str], None]:
    return lambda line: log(f"{job.label}: {line}")


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (a run is stored whole or not at all)."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def _run_in_processes(
    jobs: list[FinalJob], spec: FinalRunSpec, on_done: Callable[[FinalJob, FinalRun], None],
    log: Callable[[str], None], processes: int, threads: int, stop: Interrupted,
) -> None:
    """``processes`` children at a time, ``threads`` torch threads each."""
    ctx = mp.get_context("spawn")  # fork would copy torch's thread pools and the open study
    messages = ctx.Queue()
    pending = list(enumerate(jobs))
    running: dict[int, mp.process.BaseProcess] = {}
    finished: set[int] = set()
    try:
        while pending or running:
            stop.check()
            while pending and len(running) < processes:
                index, job = pending.pop(0)
                proc = ctx.Process(target=_child, args=(index, job, spec, threads, messages),
                                   name=f"lstm-search-final-{index}")
                proc.start()
                running[index] = proc
            _handle(messages, jobs, on_done, log, finished, timeout=POLL_SECONDS)
            stop.check()
            for index, proc in list(running.items()):
                if proc.exitcode is None:
                    continue
                while index not in finished and _handle(messages, jobs, on_done, log, finished, timeout=1.0):
                    stop.check()  # its last messages may still be in the pipe
                proc.join()
                del running[index]
                if index not in finished:
                    raise RuntimeError(f"{jobs[index].label}: its process exited with code {proc.exitcode}")
    except BaseException:
        _stop(running)
        raise
    finally:
        messages.close()


def _handle(messages: Any, jobs: list[FinalJob], on_done: Callable[[FinalJob, FinalRun], None],
            log: Callable[[str], None], finished: set[int], timeout: float) -> bool:
    """Act on one message from a child (False when none came within ``timeout``)."""
    try:
        kind, index, payload = messages.get(timeout=timeout)
    except queue_module.Empty:
        return False
    job = jobs[index]
    if kind == "log":
        log(f"{job.label}: {payload}")
    elif kind == "done":
        with _signals_held():
            on_done(job, FinalRun(**payload))
        finished.add(index)
    else:  # "error": the child's exception, raised here as if the run had trained here
        raise payload
    return True


def _child(index: int, job: FinalJob, spec: FinalRunSpec, threads: int, messages: Any) -> None:
    """One final run in a spawned process: its own process group, so a terminal's Ctrl-C
    reaches only the parent, which stops the children itself."""
    os.setpgrp()
    _die_with_parent()
    torch.set_num_threads(threads)
    try:
        data = load_final_data(spec.data_root, spec.subset, seed=job.cfg.seed)
        run = retrain.run_final(job.cfg, data, device=spec.device, gates=job.gates,
                                log=lambda line: messages.put(("log", index, line)))
        messages.put(("done", index, run._asdict()))
    except Exception as exc:  # noqa: BLE001 (any failure goes to the parent, which raises it)
        messages.put(("error", index, _portable(exc)))
        sys.exit(1)
    finally:
        messages.close()
        messages.join_thread()  # everything sent reaches the parent before this process ends


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling (the queue pickles in a background thread, where a
    failure would be lost), else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 (any pickling failure)
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _stop(running: dict[int, mp.process.BaseProcess]) -> None:
    """End every child at once: a child writes nothing (the parent stores the runs), so
    there is nothing for it to finish, and a SIGINT landing while a child still imports
    torch could leave it hanging on a lock, the parent waiting on it forever."""
    for proc in running.values():
        if proc.exitcode is None:
            proc.kill()
    for proc in running.values():
        proc.join()


def _die_with_parent() -> None:
    """Linux: SIGKILL this child when the parent dies (even by SIGKILL), instead of
    training on alone. Elsewhere: nothing (the parent's ``_stop`` still ends it)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
