"""Gate statistics on a tiny LSTM: the unroll is the lab's equations, forcing acts as stated."""

from __future__ import annotations

import pytest
import torch

from model.classifier import LSTMClassifier
from model.gates import forced_accuracy, gate_means, unroll_lstm

B, T, D, H = 6, 5, 7, 4


def _model() -> LSTMClassifier:
    torch.manual_seed(0)
    return LSTMClassifier(input_size=D, hidden_size=H, steps=T).double().eval()


def test_unforced_unroll_equals_the_training_path_and_the_step_equations() -> None:
    model = _model()
    x = torch.randn(B, T, D, dtype=torch.float64)
    run = unroll_lstm(model.cell, x)
    torch.testing.assert_close(run.h_last, model.cell.forward_sequence(x))
    h, c = model.cell.init_state(x)
    for t in range(T):
        h, c = model.cell(x[:, t], (h, c))
        torch.testing.assert_close(run.c[:, t], c)


def test_forcing_f_to_zero_cuts_c_t_loose_from_c_t_minus_1() -> None:
    cell = _model().cell
    x = torch.randn(B, T, D, dtype=torch.float64)
    h0 = torch.randn(B, H, dtype=torch.float64)
    c0_a, c0_b = torch.randn(B, H, dtype=torch.float64), 5 * torch.randn(B, H, dtype=torch.float64)
    # Unforced, the first cell state remembers c_0 ...
    assert not torch.allclose(unroll_lstm(cell, x, state=(h0, c0_a)).c[:, 0],
                              unroll_lstm(cell, x, state=(h0, c0_b)).c[:, 0])
    # ... with f = 0 it is i * c~ whatever c_0 was.
    a = unroll_lstm(cell, x, {"f": 0.0}, state=(h0, c0_a))
    b = unroll_lstm(cell, x, {"f": 0.0}, state=(h0, c0_b))
    torch.testing.assert_close(a.c[:, 0], b.c[:, 0])
    torch.testing.assert_close(a.c, a.i * a.c_tilde)
    assert torch.all(a.f == 0)
    # f = 1 and i = 0 would keep c_0 forever: c is a sum, not overwritten.
    keep = unroll_lstm(cell, x, {"f": 1.0, "i": 0.0}, state=(h0, c0_a))
    torch.testing.assert_close(keep.c[:, -1], c0_a)


def test_gate_means_lie_in_0_1_per_step_and_forcing_changes_accuracy() -> None:
    model = _model()
    x = torch.randn(40, T, D, dtype=torch.float64)
    means = gate_means(model, x, batch_size=16)  # batches of 16, 16, 8 average like one
    assert all(len(v) == T for v in means)
    for gate in (means.i, means.f, means.o):
        assert all(0 < v < 1 for v in gate)
    whole = unroll_lstm(model.cell, x)
    assert means.f == pytest.approx(whole.f.mean((0, 2)).tolist())
    assert means.abs_c == pytest.approx(whole.c.abs().mean((0, 2)).tolist())
    y = model(x).argmax(dim=1)  # the model's own answers: 100% unforced
    assert forced_accuracy(model, x, y) == 1.0
    assert forced_accuracy(model, x, y, {"o": 0.0}) < 1.0  # h = 0: every image gets one class
    with pytest.raises(ValueError, match="can be forced"):
        forced_accuracy(model, x, y, {"g": 1.0})
