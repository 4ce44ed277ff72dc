"""Helpers shared by the benchmark scripts (run by hand, not collected by pytest).

Every script prints the exact command that produced its figures, the date, torch's
version, the thread count and the device, so RESULTS.md can quote them verbatim.

Every script runs the same way, from the repository root:

    PYTHONPATH=. python benchmarks/NAME.py [options]

and imports this checkout by package name (``benchmarks._common``, ``model``, ``search``,
``tests.fakes``), never by editing ``sys.path``. Why this form: it is the one RESULTS.md has
always quoted (and ``banner`` prints), it measures the checkout's own code even where an
older copy of the project is installed, and it is plain Python (``python -m
benchmarks.NAME`` works the same). tests/benchmarks/test_scripts.py holds every script to it.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "NNLSTMClassifier",
    "banner",
    "cpu_description",
    "cpu_model",
    "matmul_peak_gflops",
    "median",
    "sgemm_peak_gflops",
    "time_train_steps",
    "train_flop_per_sample",
]


class NNLSTMClassifier(nn.Module):
    """The comparison model: torch's nn.LSTM (oneDNN on CPU, cuDNN on CUDA) + the same head."""

    def __init__(self, input_size: int = 28, hidden_size: int = 128, num_classes: int = 10) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


def _lscpu() -> str:
    try:
        return subprocess.run(["lscpu"], check=False, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model() -> str:
    """lscpu's "Model name" alone (one CSV cell per run: which machine measured it)."""
    for line in _lscpu().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            return value.strip()
    return platform.processor() or "unknown CPU"


def cpu_description() -> str:
    """The CPU model and the flags that decide kernel speed (from lscpu), for every header:
    the machine changes between sessions, and figures are comparable only on one of them."""
    model, flags = platform.processor() or "unknown CPU", set()
    out = _lscpu()
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            model = value.strip()
        elif key.strip() == "Flags":
            flags = set(value.split())
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8")
    shown = [f for f in wanted if f in flags]
    return f"{model}; flags: {' '.join(shown) if shown else 'none of ' + '/'.join(wanted)}"


def banner(title: str) -> None:
    cmd = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable), *sys.argv])
    print(f"# {title}")
    print(f"# cpu: {cpu_description()}")
    print(f"# command: PYTHONPATH=. {cmd}")
    print(
        f"# date: {datetime.datetime.now().isoformat(timespec='seconds')}  torch {torch.__version__}"
        f"  threads {torch.get_num_threads()}  cpus {os.cpu_count()}"
        f"  load avg {os.getloadavg()[0]:.2f}"
        + (f"  cuda {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
    )
    sys.stdout.flush()


def median(values: list[float]) -> float:
    return statistics.median(values)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_train_steps(
    model: nn.Module, batch: int, steps: int, device: torch.device, warmup: int = 2,
    precision: str = "fp32",
) -> Callable[[], float]:
    """A closure that trains ``steps`` Adam steps on a fixed random MNIST-shaped batch and
    returns samples/s; model and optimizer persist across calls (interleaved repeats).

    precision "bf16": forward and loss under bf16 autocast, as ``model.train`` does."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 28, 28, generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def region() -> contextlib.AbstractContextManager[object]:
        if precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step() -> None:
        with region():
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()

    def run() -> float:
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        return steps * batch / (time.perf_counter() - start)

    return run


def train_flop_per_sample(hidden: int, steps: int = 28, inputs: int = 28) -> float:
    """Matmul FLOP of one training sample: forward 2*4H*(D+H) per step, backward twice that."""
    return steps * (16 * hidden * inputs + 24 * hidden * hidden)


def sgemm_peak_gflops(device: torch.device, n: int = 1024, repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n float32 matmul on this device with the current threads."""
    return matmul_peak_gflops(device, torch.float32, n, repeats)


def onednn_matmul_available(device: torch.device) -> bool:
    """Whether oneDNN's matmul (mkldnn::_linear_pointwise, what the C++ kernels may use for
    float32) can be timed here."""
    return (device.type == "cpu" and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and torch.backends.mkldnn.is_available())


def matmul_peak_gflops(
    device: torch.device, dtype: torch.dtype, n: int = 1024, repeats: int = 5, onednn: bool = False
) -> float:
    """Best GFLOP/s of an n x n matmul in ``dtype`` on this device with the current threads:
    torch.mm (ATen's BLAS: MKL's sgemm for float32 on x86), or with ``onednn`` oneDNN's."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    reps = 4 if device.type == "cpu" else 50

    def product() -> torch.Tensor:
        if onednn:
            return torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
        return torch.mm(a, b)

    best = 0.0
    product()
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            product()
        _sync(device)
        best = max(best, reps * 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best
