"""Which precision a run trains in: float32, or bf16 matrix products under autocast.

``TrainConfig.precision`` is "fp32", "bf16" or "auto". ``auto`` asks a quick probe, run
once per process and device, whether a bf16 training step of the LSTM is clearly faster
than a float32 one on this machine: expected on CPUs with AMX-BF16 (Sapphire Rapids and
later) and on GPUs with bf16 tensor cores, not on CPUs that emulate bf16 products (AVX2),
where ``auto`` keeps float32. CPUs with AVX-512 BF16 but no AMX (e.g. AMD Zen 4) multiply
bf16 faster, but not always train faster, so the step probe, not the flag, decides there.

bf16 here always means mixed precision: ``torch.autocast`` around forward and loss, so
the matrix products take bf16 operands (fp32 accumulation) while the master weights,
the optimizer state, the LSTM's cell state and gate non-linearities stay float32
(``model.fused_lstm``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable

import torch

from model.config import PRECISIONS
from model.errors import ConfigError

__all__ = [
    "AUTO_ENV",
    "PRECISIONS",
    "SPEEDUP_NEEDED",
    "autocast",
    "bf16_speedup",
    "choose_precision",
    "resolve_precision",
]

# A training step is timed, not a bare matmul: bf16 also adds casts and leaves the
# elementwise work as it is, so a CPU whose bf16 products are faster (AVX-512 BF16)
# may still train slower. The margin keeps a noisy machine from flipping the choice.
SPEEDUP_NEEDED = 1.2
# A mid-sized trial of the default space: hidden 256, a batch of 64 (per-step product
# 64 x 256 x 1024): a warm-up and three rounds of one step in each precision, short
# beside any trial.
_PROBE_HIDDEN, _PROBE_BATCH = 256, 64
# Set to fp32 or bf16, this pins what "auto" means and skips the probe: for workers on
# many identical machines, where a noisy probe could choose differently, and for tests.
AUTO_ENV = "LSTM_SEARCH_AUTO_PRECISION"
_speedups: dict[str, float] = {}  # per device ("cpu", "cuda:0"): measured once per process


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure_speedup(device: torch.device, rounds: int = 3) -> float:
    """float32 time / bf16 time of one LSTMClassifier training step (forward, loss,
    backward): best of interleaved rounds, so a machine busy with other work slows both
    precisions alike rather than biasing one."""
    import torch.nn.functional as F

    from model.classifier import LSTMClassifier  # here: model.train imports this module

    with torch.random.fork_rng(devices=[]), torch.enable_grad():  # leaves the caller's RNG alone
        torch.manual_seed(0)
        model = LSTMClassifier(28, _PROBE_HIDDEN).to(device)
        x = torch.randn(_PROBE_BATCH, 28, 28).to(device)
        y = torch.randint(0, 10, (_PROBE_BATCH,)).to(device)

        def step(bf16: bool) -> float:
            _sync(device)
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(x), y)
            loss.backward()  # gradients accumulate; nothing is stepped
            _sync(device)
            return time.perf_counter() - start

        step(False), step(True)  # first calls pick kernels and allocate
        fp32 = min(step(False) for _ in range(rounds))
        bf16 = min(step(True) for _ in range(rounds))
    return fp32 / bf16


def bf16_speedup(device: torch.device | str = "cpu") -> float:
    """How many times faster a training step runs in bf16 than in float32 here (cached
    per process).

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
    bf16 where the probe (default ``bf16_speedup``) finds a bf16 training step at least
    ``SPEEDUP_NEEDED`` times faster, unless ``$LSTM_SEARCH_AUTO_PRECISION`` pins it."""
    device = torch.device(device)
    pinned = os.environ.get(AUTO_ENV, "")
    if requested == "auto" and pinned:
        if pinned not in ("fp32", "bf16"):
            raise ConfigError(f"${AUTO_ENV} must be fp32 or bf16 (got {pinned!r}); unset it to probe")
        requested = pinned
    measure = probe or bf16_speedup  # looked up per call: tests replace the probe
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
