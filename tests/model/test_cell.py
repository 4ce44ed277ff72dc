"""Parity of the hand-written LSTM against torch.nn.LSTMCell (the reference)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from model import LSTMClassifier, ManualLSTMCell

T, D, H, B = 28, 28, 12, 5


def _unroll_step(cell, x, state):
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)
    return state


@pytest.mark.parametrize("bias", [True, False])
def test_from_torch_matches_lstmcell_values_and_gradients(bias: bool) -> None:
    torch.manual_seed(0)
    ref = nn.LSTMCell(D, H, bias=bias).double()
    ours = ManualLSTMCell.from_torch(ref)
    x = torch.randn(B, T, D, dtype=torch.float64)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    h0 = torch.randn(B, H, dtype=torch.float64)
    c0 = torch.randn(B, H, dtype=torch.float64)

    h_ref, c_ref = _unroll_step(ref, x_ref, (h0, c0))
    h, c = _unroll_step(ours, x_ours, (h0, c0))
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(c, c_ref, atol=1e-5, rtol=0)

    weights = torch.randn(B, H, dtype=torch.float64)  # a loss that touches every unit
    ((h_ref * weights).sum() + c_ref.sum()).backward()
    ((h * weights).sum() + c.sum()).backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.weight_ih.grad, ref.weight_ih.grad, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.weight_hh.grad, ref.weight_hh.grad, atol=1e-5, rtol=0)
    if bias:
        # Our single b is PyTorch's b_ih + b_hh, so its gradient equals each of theirs.
        torch.testing.assert_close(ours.bias.grad, ref.bias_ih.grad, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.bias.grad, ref.bias_hh.grad, atol=1e-5, rtol=0)


def test_forward_sequence_equals_reference_steps() -> None:
    torch.manual_seed(1)
    cell = ManualLSTMCell(D, H).double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    h_steps, _ = _unroll_step(cell, x, cell.init_state(x))
    torch.testing.assert_close(cell.forward_sequence(x), h_steps, atol=1e-10, rtol=0)


def test_forget_bias_and_recurrent_init() -> None:
    cell = ManualLSTMCell(D, H)
    cell.reset_parameters(recurrent_init="orthogonal", forget_bias=1.0)
    _W_i, _W_f, W, _W_o = cell.weight_hh.detach().chunk(4)
    torch.testing.assert_close(W @ W.T, torch.eye(H), atol=1e-5, rtol=0)
    bound = H**-0.5
    b_f = cell.bias.detach()[H : 2 * H]
    assert bool(((b_f >= 1 - bound) & (b_f <= 1 + bound)).all())
    cell.reset_parameters(recurrent_init="identity")
    torch.testing.assert_close(cell.weight_hh.detach()[:H], torch.eye(H))


def test_classifier_shapes_and_no_builtin_recurrent_layers() -> None:
    model = LSTMClassifier(hidden_size=H, dropout=0.2)
    out = model(torch.randn(B, 28, 28))
    assert out.shape == (B, 10)
    assert out.shape == model(torch.randn(B, 1, 28, 28)).shape
    builtin = (nn.LSTM, nn.LSTMCell, nn.RNN, nn.RNNCell, nn.GRU, nn.GRUCell)
    assert not any(isinstance(m, builtin) for m in model.modules())
