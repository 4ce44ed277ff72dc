"""Which precision a run trains in: float32, or bf16 matrix products under autocast.

``TrainConfig.precision`` is "fp32", "bf16" or "auto". ``auto`` asks a quick probe, run
once per process and device, whether bf16 matmuls are clearly faster than float32 on
this machine: they are on CPUs with AMX-BF16 (Sapphire Rapids and later) and on GPUs
with bf16 tensor cores; they are not on CPUs that only emulate bf16 (most AVX2 and
AVX-512 parts), where ``auto`` keeps float32.

bf16 here always means mixed precision: ``torch.autocast`` around forward and loss, so
the matrix products take bf16 operands (fp32 accumulation) while the master weights,
the optimizer state, the LSTM's cell state and gate non-linearities stay float32
(``model.fused_lstm``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import torch

from model.config import PRECISIONS
from model.errors import ConfigError

__all__ = [
    "PRECISIONS",
    "SPEEDUP_NEEDED",
    "autocast",
    "bf16_matmul_speedup",
    "choose_precision",
    "resolve_precision",
]

# bf16 adds casts and conversions around every product and its elementwise work does not
# get faster, so a matmul gain much below this would not survive into a training step.
SPEEDUP_NEEDED = 1.5
# The per-step product of a mid-sized trial (B=128 rows, H=256: h (B, H) x W^T (H, 4H)).
_PROBE_SHAPE = (128, 256, 1024)
_speedups: dict[str, float] = {}  # per device ("cpu", "cuda:0"): measured once per process


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_seconds(a: torch.Tensor, b: torch.Tensor, reps: int) -> float:
    _sync(a.device)
    start = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    _sync(a.device)
    return (time.perf_counter() - start) / reps


def _measure_speedup(device: torch.device, rounds: int = 3) -> float:
    """float32 time / bf16 time of the probe product: best of interleaved rounds, so a
    machine busy with other work slows both dtypes alike rather than biasing one."""
    m, k, n = _PROBE_SHAPE
    gen = torch.Generator().manual_seed(0)
    a32 = torch.randn(m, k, generator=gen).to(device)
    b32 = torch.randn(k, n, generator=gen).to(device)
    a16, b16 = a32.to(torch.bfloat16), b32.to(torch.bfloat16)
    reps = 3 if device.type == "cpu" else 50
    torch.mm(a32, b32), torch.mm(a16, b16)  # first calls pick kernels and allocate
    fp32 = bf16 = float("inf")
    for _ in range(rounds):
        fp32 = min(fp32, _best_seconds(a32, b32, reps))
        bf16 = min(bf16, _best_seconds(a16, b16, reps))
    return fp32 / bf16


def bf16_matmul_speedup(device: torch.device | str = "cpu") -> float:
    """How many times faster a bf16 matmul runs than float32 here (cached per process).

    0.0 where bf16 is not supported at all (a GPU without bf16).
    """
    device = torch.device(device)
    key = str(device) if device.type != "cuda" else f"cuda:{device.index or 0}"
    if key not in _speedups:
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            _speedups[key] = 0.0
        else:
            _speedups[key] = _measure_speedup(device)
    return _speedups[key]


def choose_precision(requested: str, speedup: Callable[[], float]) -> str:
    """"fp32" or "bf16" for a requested precision; ``speedup`` is asked only for "auto"."""
    if requested not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)} (got {requested!r})")
    if requested != "auto":
        return requested
    return "bf16" if speedup() >= SPEEDUP_NEEDED else "fp32"


def resolve_precision(
    requested: str,
    device: torch.device | str = "cpu",
    probe: Callable[[torch.device], float] | None = None,
) -> str:
    """The precision a run on ``device`` trains in: what it asked for, or for "auto"
    bf16 where the probe (default ``bf16_matmul_speedup``) finds bf16 matmuls at least
    ``SPEEDUP_NEEDED`` times faster."""
    device = torch.device(device)
    measure = probe or bf16_matmul_speedup  # looked up per call: tests replace the probe
    chosen = choose_precision(requested, lambda: measure(device))
    if chosen == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("precision bf16 needs a GPU with bf16 support (Ampere or newer); "
                          "use precision fp32 or auto")
    return chosen


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager[object]:
    """The region to run forward and loss in: bf16 autocast, or nothing for float32."""
    device = torch.device(device)
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
