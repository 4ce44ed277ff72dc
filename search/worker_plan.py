"""How many worker processes a launch starts, and how many torch threads each gets.

``plan_workers`` turns ``--workers`` (``auto`` or a number) and ``--threads`` into a
``WorkerPlan`` from the cores this process may use and the RAM (or GPU memory) that the
space's most memory-hungry trial needs, and refuses, before anything is written, a plan
that cannot fit. Starting and watching the workers is search/workers.py's job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from model.config import TrainConfig
from model.errors import UserInputError
from model.memory import (
    PROCESS_OVERHEAD_BYTES,
    available_memory,
    data_bytes,
    format_bytes,
    trial_peak_bytes,
)
from search.space import SearchSpace

__all__ = ["WorkerPlan", "available_cores", "largest_config", "plan_workers"]


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
