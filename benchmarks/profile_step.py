"""Where one training step's time goes, ours vs nn.LSTM, at one shape: the profile behind a
shape that stays short of nn.LSTM in bench_throughput.py.

For each thread count (and, with --serial-loops, ours with the fused per-step loops kept
on one thread), torch.profiler records --steps Adam steps of each model on a fixed random
MNIST-shaped batch, after a warm-up. A step's wall time on the main thread is split into:

    products      self time of aten::mm / addmm / addmm_ / bmm (ours; nn.LSTM's head too)
    fused loops   self time of the C++ kernels' forward and backward calls, less the
                  products and allocations they launch (the per-step pointwise passes)
    oneDNN RNN    self time of nn.LSTM's mkldnn_rnn_layer calls (its whole recurrence)
    optimizer     Adam's step, all of it
    other         the rest: head, loss, autograd bookkeeping, allocations, copies

Intra-op threads run inside an op that the main thread waits on, so on the main thread
these self times add up to the step's wall time at any thread count. Run one at a time
on a quiet machine; the header prints the CPU and the load.

    PYTHONPATH=. python benchmarks/profile_step.py --hidden 128 --batch 64 --threads 1 2 --serial-loops
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, record_function

from benchmarks._common import NNLSTMClassifier, banner
from model import lstm_ext
from model.classifier import LSTMClassifier

PRODUCTS = {"aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm"}
KERNELS = {"lstm_ext.forward", "lstm_ext.backward"}
ONEDNN_RNN = {"aten::mkldnn_rnn_layer", "aten::mkldnn_rnn_layer_backward"}
CATEGORIES = ("products", "fused loops", "oneDNN RNN", "optimizer", "other")


class _LabelledKernels:
    """The extension module, with its two sequence calls marked for the profiler."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def forward(self, *args: Any) -> Any:
        with record_function("lstm_ext.forward"):
            return self._module.forward(*args)

    def backward(self, *args: Any) -> Any:
        with record_function("lstm_ext.backward"):
            return self._module.backward(*args)


def training_step(model: torch.nn.Module, batch: int) -> Callable[[], None]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 28, 28, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        with record_function("step"):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            with record_function("optimizer"):
                opt.step()

    return step


def breakdown(step: Callable[[], None], steps: int) -> dict[str, float]:
    """Milliseconds per step in each category, and the step's total."""
    with profile(activities=[ProfilerActivity.CPU]):  # warm-up, and the profiler's own first-use cost
        for _ in range(3):
            step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    self_ms: dict[str, float] = {}
    total_ms: dict[str, float] = {}
    for ev in prof.key_averages():
        self_ms[ev.key] = ev.self_cpu_time_total / 1000 / steps
        total_ms[ev.key] = ev.cpu_time_total / 1000 / steps
    out = {
        "products": sum(self_ms.get(k, 0.0) for k in PRODUCTS),
        "fused loops": sum(self_ms.get(k, 0.0) for k in KERNELS),
        "oneDNN RNN": sum(self_ms.get(k, 0.0) for k in ONEDNN_RNN),
        "optimizer": total_ms.get("optimizer", 0.0),
        "step": total_ms.get("step", 0.0),
    }
    # Products under Adam's step (none today) would otherwise be counted twice.
    out["other"] = max(0.0, out["step"] - sum(out[c] for c in CATEGORIES[:4]))
    return out


def row(label: str, b: dict[str, float]) -> str:
    cells = " | ".join(f"{b[c]:.2f} ({100 * b[c] / b['step']:.0f}%)" for c in CATEGORIES)
    return f"{label} | {b['step']:.2f} | {cells}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=30, help="profiled training steps per model")
    p.add_argument("--serial-loops", action="store_true",
                   help="also profile ours with the fused per-step loops on one thread")
    args = p.parse_args()
    banner(f"where a training step's time goes: H={args.hidden} B={args.batch}")
    if not lstm_ext.instrument(_LabelledKernels):
        raise SystemExit(f"profile_step.py: C++ kernels unavailable ({lstm_ext.unavailable_reason()})")
    default_split = lstm_ext.set_min_parallel_elems(0)  # returns the kernels' own threshold
    lstm_ext.set_min_parallel_elems(default_split)
    print(f"model | threads | ms/step | {' | '.join(CATEGORIES)} | load 1/5/15")
    for threads in args.threads:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        runs = [("ours", default_split), *([("ours, 1-loop", 0)] if args.serial_loops else [])]
        for label, split in runs:
            lstm_ext.set_min_parallel_elems(split)
            b = breakdown(training_step(LSTMClassifier(hidden_size=args.hidden), args.batch), args.steps)
            print(f"{row(f'{label} | {threads}', b)} | {_load()}")
        lstm_ext.set_min_parallel_elems(default_split)
        b = breakdown(training_step(NNLSTMClassifier(hidden_size=args.hidden), args.batch), args.steps)
        print(f"{row(f'nn.LSTM | {threads}', b)} | {_load()}")


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
