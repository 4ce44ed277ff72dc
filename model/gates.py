"""What the LSTM's gates do, measured: per-step gate activations and forced-gate accuracy.

The lab asks what the forget, input and output gates and the cell state do. This module
answers with numbers from a trained classifier: the mean activation of i, f, o and the
mean |c| at every time step over a set of images, and the accuracy when a gate is
forced to a constant at inference (f = 0 forgets everything each step, f = 1 never
forgets, i = 1 writes every candidate in full, o = 1 exposes the whole cell state).

It is a separate, plain unroll of the lab's equations that returns every step's gates;
the training path (``model.fused_lstm``) is untouched, and the unforced unroll is tested
equal to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor

from model.cell import ManualLSTMCell
from model.classifier import LSTMClassifier

__all__ = ["FORCEABLE", "GateMeans", "LSTMUnroll", "forced_accuracy", "gate_means", "unroll_lstm"]

FORCEABLE = ("i", "f", "o")


class LSTMUnroll(NamedTuple):
    """Every step of one unroll: i, f, o, c~ and c are (B, T, H); h_last is (B, H)."""

    i: Tensor
    f: Tensor
    o: Tensor
    c_tilde: Tensor
    c: Tensor
    h_last: Tensor


class GateMeans(NamedTuple):
    """Per time step (T values each), averaged over images and hidden units."""

    i: list[float]
    f: list[float]
    o: list[float]
    abs_c: list[float]


def unroll_lstm(
    cell: ManualLSTMCell,
    x: Tensor,
    force: Mapping[str, float] | None = None,
    state: tuple[Tensor, Tensor] | None = None,
) -> LSTMUnroll:
    """Step the lab's equations over a (B, T, D) batch, with gates in ``force`` (names
    from FORCEABLE) replaced by constants. ``state`` is (h_0, c_0); zeros by default."""
    force = dict(force or {})
    unknown = sorted(set(force) - set(FORCEABLE))
    if unknown:
        raise ValueError(f"only {', '.join(FORCEABLE)} can be forced (got {', '.join(unknown)})")
    B, T, _ = x.shape
    H = cell.hidden_size
    h, c = state if state is not None else cell.init_state(x)
    # U x + b for all steps at once, then W h per step: the same sums as ``forward``.
    x_proj = (x.reshape(B * T, -1) @ cell.weight_ih.T + cell.bias).view(B, T, 4 * H)
    steps: dict[str, list[Tensor]] = {k: [] for k in ("i", "f", "o", "c_tilde", "c")}
    for t in range(T):
        pre = x_proj[:, t] + h @ cell.weight_hh.T  # (B, 4H), blocks i, f, c~, o
        gate = {
            "i": torch.sigmoid(pre[:, :H]),
            "f": torch.sigmoid(pre[:, H : 2 * H]),
            "o": torch.sigmoid(pre[:, 3 * H :]),
        }
        for name, value in force.items():
            gate[name] = torch.full_like(gate[name], value)
        c_tilde = torch.tanh(pre[:, 2 * H : 3 * H])
        c = gate["f"] * c + gate["i"] * c_tilde
        h = gate["o"] * torch.tanh(c)
        for name in FORCEABLE:
            steps[name].append(gate[name])
        steps["c_tilde"].append(c_tilde)
        steps["c"].append(c)
    stacked = {k: torch.stack(v, dim=1) for k, v in steps.items()}  # (B, T, H) each
    return LSTMUnroll(h_last=h, **stacked)


@torch.no_grad()
def gate_means(model: LSTMClassifier, x: Tensor, batch_size: int = 500) -> GateMeans:
    """Mean i, f, o and mean |c| per step over the images ``x``, read as the model reads them."""
    cell = _lstm_of(model)
    sums = None
    for start in range(0, len(x), batch_size):
        run = unroll_lstm(cell, model.sequence(x[start : start + batch_size]))
        # Sum over images and units per step; divided by N * H once at the end.
        batch = torch.stack([run.i.sum((0, 2)), run.f.sum((0, 2)), run.o.sum((0, 2)), run.c.abs().sum((0, 2))])
        sums = batch if sums is None else sums + batch
    if sums is None:
        raise ValueError("gate_means needs at least one image")
    means = (sums / (len(x) * cell.hidden_size)).tolist()
    return GateMeans(*means)


@torch.no_grad()
def forced_accuracy(
    model: LSTMClassifier, x: Tensor, y: Tensor, force: Mapping[str, float] | None = None,
    batch_size: int = 500,
) -> float:
    """Accuracy (fraction) on (x, y) with the gates in ``force`` held constant."""
    model.eval()  # dropout off, as in any evaluation
    cell = _lstm_of(model)
    correct = 0
    for start in range(0, len(x), batch_size):
        h = unroll_lstm(cell, model.sequence(x[start : start + batch_size]), force).h_last
        logits = model.fc(model.dropout(h))
        correct += int((logits.argmax(dim=1) == y[start : start + batch_size]).sum())
    return correct / len(y)


def _lstm_of(model: LSTMClassifier) -> ManualLSTMCell:
    if not isinstance(model.cell, ManualLSTMCell):
        raise ValueError(f"gates are measured on the LSTM cell (this model has {type(model.cell).__name__})")
    return model.cell

