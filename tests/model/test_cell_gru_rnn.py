"""The hand-written GRU and RNN cells against torch's: h and every gradient, float64.

Both paths are checked: the readable step ``forward`` (unrolled here over 28 steps) and
the training path ``forward_sequence``. The loss weighs h_T by a fixed random tensor so
every element of every gradient matters, not only their sum.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from model.cell import ManualGRUCell, ManualRNNCell

T, B, D, H = 28, 5, 28, 16
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _reference_run(ref: nn.Module, x: torch.Tensor) -> torch.Tensor:
    h = x.new_zeros(x.shape[0], ref.hidden_size)
    for t in range(x.shape[1]):
        h = ref(x[:, t], h)
    return h


def _step_run(cell: nn.Module, x: torch.Tensor) -> torch.Tensor:
    state = cell.init_state(x)
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)
    return state[0]


def _grads(module: nn.Module, x: torch.Tensor, h: torch.Tensor, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    (h * weight).sum().backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    grads["x"] = x.grad.clone()
    return grads


def _pair(kind: str, seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    if kind == "gru":
        ref = nn.GRUCell(D, H).double()
        return ref, ManualGRUCell.from_torch(ref)
    ref = nn.RNNCell(D, H, nonlinearity="tanh").double()
    return ref, ManualRNNCell.from_torch(ref)


def _reference_grads(kind: str, ref: nn.Module, ref_grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torch's gradients in our parameter layout (the RNN's two biases become one)."""
    if kind == "gru":
        return ref_grads
    out = {k: v for k, v in ref_grads.items() if not k.startswith("bias")}
    out["bias"] = ref_grads["bias_ih"]  # d/d(b_ih) = d/d(b_hh) = d/d(b_ih + b_hh)
    assert torch.equal(ref_grads["bias_ih"], ref_grads["bias_hh"])
    return out


@pytest.mark.parametrize("kind", ["gru", "rnn"])
@pytest.mark.parametrize("path", ["forward", "forward_sequence"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_torch_cell_in_value_and_every_gradient(kind: str, path: str, seed: int) -> None:
    ref, ours = _pair(kind, seed)
    x = torch.randn(B, T, D, dtype=torch.float64) * 2  # large enough to saturate some gates
    weight = torch.randn(B, H, dtype=torch.float64)

    x_ref = x.clone().requires_grad_(True)
    h_ref = _reference_run(ref, x_ref)
    ref_grads = _reference_grads(kind, ref, _grads(ref, x_ref, h_ref, weight))

    x_ours = x.clone().requires_grad_(True)
    h_ours = _step_run(ours, x_ours) if path == "forward" else ours.forward_sequence(x_ours)
    our_grads = _grads(ours, x_ours, h_ours, weight)

    torch.testing.assert_close(h_ours, h_ref, **TOL)
    assert set(our_grads) == set(ref_grads)
    for name in ref_grads:
        torch.testing.assert_close(our_grads[name], ref_grads[name], **TOL, msg=f"d loss / d {name}")


def test_gru_gate_blocks_are_not_interchangeable() -> None:
    """Swapping r and z changes h: the parity above would catch a gate-order mistake."""
    _ref, ours = _pair("gru", 0)
    x = torch.randn(B, T, D, dtype=torch.float64)
    before = ours.forward_sequence(x)
    with torch.no_grad():
        w = ours.weight_ih.view(3, H, D)
        w[[0, 1]] = w[[1, 0]].clone()
    assert not torch.allclose(ours.forward_sequence(x), before, **TOL)


def test_rnn_from_torch_rejects_relu() -> None:
    with pytest.raises(ValueError, match="tanh"):
        ManualRNNCell.from_torch(nn.RNNCell(D, H, nonlinearity="relu"))
