"""Estimate a training run's peak memory, so a config that cannot fit is refused up front.

A hidden size of 10^5 would otherwise be accepted, allocate for minutes and end in the
kernel's OOM killer (which no ``except`` can catch). The estimate is meant as an upper
bound; its terms were written for the plain autograd unroll and still bound the fused
LSTM path (``model.fused_lstm``) that replaced it:

* weights, their gradients and up to two optimiser states (Adam): 4 copies of the params,
  plus one for clipping/temporaries;
* training activations: budgeted as 16 (B, H) tensors per time step, plus half as much
  again for backward (24 in all). The fused path needs fewer: its forward keeps 7 per
  step (the four activated gates, c, tanh(c), h) and its backward adds about 9 (the gate
  derivative factors and gradients, 4 + 4, and one for dc), about 16 at the peak;
* evaluation without autograd: budgeted as one 1,000-image batch's (B*T, 4H) gates; the
  fused path evaluates in chunks of ``NO_GRAD_CHUNK`` (256) rows, so it needs less;
* a fixed allowance for the allocator and lazily loaded kernels.

Checked against a real worker with ``benchmarks/bench_rss.py``
(benchmarks/RESULTS.md#peak-rss): most of a process's peak is reached before its trial starts
(imports, mostly shared-library pages, then the uint8 and float copies made while loading
the data, freed afterwards). The trial itself fits in memory the loading freed, and
``ru_maxrss`` cannot isolate its share; what it does show is that the whole-process figure
the worker plan uses (``PROCESS_OVERHEAD_BYTES`` + ``data_bytes`` + ``trial_peak_bytes``)
stays below the measured peak, largely by shared-library pages that K workers share
rather than multiply. GRU and RNN cells keep fewer tensors, so the LSTM's figure bounds
them too.
"""

from __future__ import annotations

import os

import torch

from model.config import TrainConfig
from model.errors import ConfigError

__all__ = [
    "PROCESS_OVERHEAD_BYTES",
    "available_memory",
    "check_fits",
    "data_bytes",
    "format_bytes",
    "trial_peak_bytes",
]

SEQ_LEN = 28
INPUT_SIZE = 28
NUM_CLASSES = 10
EVAL_BATCH = 1000
FLOAT = 4  # bytes in a float32
_SAVED_PER_STEP = 16  # (B, H) tensors autograd keeps per time step
_BACKWARD_FACTOR = 1.5
_FIXED_BYTES = 200 * 2**20
# A worker process with torch, the search libraries and the data loader imported, before any data.
PROCESS_OVERHEAD_BYTES = 520 * 2**20


def trial_peak_bytes(cfg: TrainConfig) -> int:
    """Peak bytes one training run adds on top of the process and its data."""
    H, B = cfg.hidden_size, cfg.batch_size
    T, D = cfg.steps, SEQ_LEN * INPUT_SIZE // cfg.steps  # activations grow with the steps read
    params = 4 * H * (D + H + 1) + NUM_CLASSES * (H + 1)
    weights = 5 * params * FLOAT
    train_acts = int(_BACKWARD_FACTOR * T * B * H * _SAVED_PER_STEP * FLOAT)
    eval_acts = int(1.2 * EVAL_BATCH * T * 4 * H * FLOAT)
    return _FIXED_BYTES + weights + max(train_acts, eval_acts)


def data_bytes(n_images: int) -> int:
    """Normalised float images held in memory (28x28 float32 each) plus int64 labels."""
    return n_images * (SEQ_LEN * INPUT_SIZE * FLOAT + 8)


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Free bytes where training will allocate: GPU memory for CUDA, else RAM.

    RAM is MemAvailable from /proc/meminfo (what the kernel can hand out without
    swapping); None where that cannot be read, which turns the guard off.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return None


def check_fits(cfg: TrainConfig, extra_bytes: int = 0, device: torch.device | str = "cpu",
               what: str = "this configuration") -> int:
    """Raise ConfigError (one line) if a run of ``cfg`` would not fit; returns the estimate.

    ``extra_bytes`` counts what is not yet allocated but will be (data, more workers).
    """
    need = trial_peak_bytes(cfg) + extra_bytes
    free = available_memory(device)
    if free is not None and need > free:
        where = "GPU memory" if torch.device(device).type == "cuda" else "RAM"
        raise ConfigError(
            f"{what} needs about {format_bytes(need)} (hidden_size {cfg.hidden_size}, batch_size "
            f"{cfg.batch_size}) but only {format_bytes(free)} of {where} is available; "
            "lower hidden_size or batch_size"
        )
    return need


def format_bytes(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"
