"""Hand-written recurrent cells: the lab's LSTM equations, plus GRU and plain RNN.

Built from tensors and torch primitives only. Each cell has two paths:

* ``forward(x_t, state)``: one time step, written exactly as the equations read. This is
  the readable reference and what ``from_torch`` parity tests exercise.
* ``forward_sequence(x)``: the whole unroll over the T time steps (28 rows by default),
  the path training uses. It computes
  the same function faster (input projection of all steps in one matmul, one fused
  recurrent matmul per step; for the LSTM also a hand-written backward, see
  ``model.fused_lstm``) and is tested equal to stepping ``forward``.

Weights are stored fused in PyTorch's layout (gate blocks stacked along dim 0) so one
matmul serves all gates and reference cells can be copied in without reshuffling.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from model.config import RECURRENT_INITS
from model.fused_lstm import lstm_sequence

__all__ = ["CELL_TYPES", "ManualGRUCell", "ManualLSTMCell", "ManualRNNCell", "RecurrentCell"]


class RecurrentCell(nn.Module):
    """What the classifier needs from a cell: unroll a (B, T, D) batch to the last h."""

    input_size: int
    hidden_size: int
    num_gates: int  # gate blocks stacked in weight_ih / weight_hh

    def __init__(self, input_size: int, hidden_size: int, num_gates: int) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError("input_size and hidden_size must be >= 1")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_gates = num_gates
        self.weight_ih = nn.Parameter(torch.empty(num_gates * hidden_size, input_size))  # U
        self.weight_hh = nn.Parameter(torch.empty(num_gates * hidden_size, hidden_size))  # W
        self.reset_parameters()

    def reset_parameters(self, recurrent_init: str = "uniform") -> None:
        """PyTorch's default U(-1/sqrt(H), 1/sqrt(H)) for everything, then the W blocks."""
        if recurrent_init not in RECURRENT_INITS:
            raise ValueError(f"recurrent_init must be one of {RECURRENT_INITS}")
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound)
            for block in self.weight_hh.view(self.num_gates, self.hidden_size, self.hidden_size):
                if recurrent_init == "orthogonal":
                    nn.init.orthogonal_(block)
                elif recurrent_init == "identity":
                    block.copy_(torch.eye(self.hidden_size))

    def init_state(self, x: Tensor) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def forward_sequence(self, x: Tensor) -> Tensor:
        raise NotImplementedError


class ManualLSTMCell(RecurrentCell):
    """i, f, o = sigmoid(W h + U x + b); c~ = tanh(W h + U x + b);
    c_t = f * c_{t-1} + i * c~; h_t = o * tanh(c_t).

    Gate blocks in weight_ih (U) and weight_hh (W) are ordered i, f, c~, o, as in
    ``torch.nn.LSTMCell`` (which calls c~ "g"). One bias per gate: PyTorch's two biases
    always appear summed, so the lab's single b is exactly their sum.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        self.bias: nn.Parameter
        super().__init__(input_size, hidden_size, num_gates=4)

    def reset_parameters(self, recurrent_init: str = "uniform", forget_bias: float = 0.0) -> None:
        if not hasattr(self, "bias"):
            self.bias = nn.Parameter(torch.empty(4 * self.hidden_size))
        super().reset_parameters(recurrent_init)
        if forget_bias:
            with torch.no_grad():
                self.bias[self.hidden_size : 2 * self.hidden_size] += forget_bias

    def init_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        zeros = x.new_zeros(x.shape[0], self.hidden_size)
        return zeros, zeros.clone()

    def forward(self, x_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """One step, written as the lab's equations. x_t: (B, D); h, c: (B, H)."""
        h, c = state
        U_i, U_f, U, U_o = self.weight_ih.chunk(4, dim=0)  # each (H, D)
        W_i, W_f, W, W_o = self.weight_hh.chunk(4, dim=0)  # each (H, H)
        b_i, b_f, b, b_o = self.bias.chunk(4)  # each (H,)
        i = torch.sigmoid(h @ W_i.T + x_t @ U_i.T + b_i)
        f = torch.sigmoid(h @ W_f.T + x_t @ U_f.T + b_f)
        o = torch.sigmoid(h @ W_o.T + x_t @ U_o.T + b_o)
        c_tilde = torch.tanh(h @ W.T + x_t @ U.T + b)
        c = f * c + i * c_tilde
        h = o * torch.tanh(c)
        return h, c

    def forward_sequence(self, x: Tensor) -> Tensor:
        """Unroll over T steps of a (B, T, D) batch; returns h_T (B, H).

        Runs ``model.fused_lstm.lstm_sequence``: the same equations over the whole
        sequence with a hand-written backward (C++ kernels on CPU when they build), which
        keeps training about as fast as ``nn.LSTM`` (benchmarks/RESULTS.md); tested equal
        to ``forward``.
        """
        return lstm_sequence(x, self.weight_ih, self.weight_hh, self.bias)

    @classmethod
    def from_torch(cls, cell: nn.LSTMCell) -> ManualLSTMCell:
        """Copy a reference ``torch.nn.LSTMCell`` (same gate order; biases summed)."""
        ours = cls(cell.input_size, cell.hidden_size).to(
            device=cell.weight_ih.device, dtype=cell.weight_ih.dtype
        )
        with torch.no_grad():
            ours.weight_ih.copy_(cell.weight_ih)
            ours.weight_hh.copy_(cell.weight_hh)
            if cell.bias:
                ours.bias.copy_(cell.bias_ih + cell.bias_hh)
            else:
                ours.bias.zero_()
        return ours


class ManualGRUCell(RecurrentCell):
    """r = sigmoid(W_r h + U_r x + b_r); z = sigmoid(W_z h + U_z x + b_z);
    n = tanh(U_n x + b_in + r * (W_n h + b_hn)); h_t = (1 - z) * n + z * h_{t-1}.

    Blocks ordered r, z, n as in ``torch.nn.GRUCell``. The candidate keeps two biases
    because r multiplies only the recurrent one.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, num_gates=3)

    def reset_parameters(self, recurrent_init: str = "uniform", forget_bias: float = 0.0) -> None:
        if not hasattr(self, "bias_ih"):
            self.bias_ih = nn.Parameter(torch.empty(3 * self.hidden_size))
            self.bias_hh = nn.Parameter(torch.empty(3 * self.hidden_size))
        super().reset_parameters(recurrent_init)
        if forget_bias:
            # z plays the forget gate's role (keep h_{t-1}); bias it towards remembering.
            with torch.no_grad():
                self.bias_ih[self.hidden_size : 2 * self.hidden_size] += forget_bias

    def init_state(self, x: Tensor) -> tuple[Tensor]:
        return (x.new_zeros(x.shape[0], self.hidden_size),)

    def forward(self, x_t: Tensor, state: tuple[Tensor]) -> tuple[Tensor]:
        (h,) = state
        U_r, U_z, U_n = self.weight_ih.chunk(3, dim=0)
        W_r, W_z, W_n = self.weight_hh.chunk(3, dim=0)
        bi_r, bi_z, bi_n = self.bias_ih.chunk(3)
        bh_r, bh_z, bh_n = self.bias_hh.chunk(3)
        r = torch.sigmoid(h @ W_r.T + bh_r + x_t @ U_r.T + bi_r)
        z = torch.sigmoid(h @ W_z.T + bh_z + x_t @ U_z.T + bi_z)
        n = torch.tanh(x_t @ U_n.T + bi_n + r * (h @ W_n.T + bh_n))
        return ((1 - z) * n + z * h,)

    def forward_sequence(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        H = self.hidden_size
        # Under autocast the products come back in bf16; .to(x.dtype) keeps the state and
        # gate arithmetic in x's dtype (a no-op without autocast), as the LSTM path does.
        x_proj = torch.addmm(self.bias_ih, x.reshape(B * T, -1), self.weight_ih.T).view(B, T, 3 * H).to(x.dtype)
        (h,) = self.init_state(x)
        w_hh_t = self.weight_hh.T  # (H, 3H)
        for t in range(T):
            h_proj = torch.addmm(self.bias_hh, h, w_hh_t).to(x.dtype)  # (B, 3H)
            xp = x_proj[:, t]
            rz = torch.sigmoid(xp[:, : 2 * H] + h_proj[:, : 2 * H])  # (B, 2H)
            r, z = rz[:, :H], rz[:, H:]
            n = torch.tanh(torch.addcmul(xp[:, 2 * H :], r, h_proj[:, 2 * H :]))
            h = torch.lerp(n, h, z)  # (1 - z) * n + z * h
        return h

    @classmethod
    def from_torch(cls, cell: nn.GRUCell) -> ManualGRUCell:
        ours = cls(cell.input_size, cell.hidden_size).to(
            device=cell.weight_ih.device, dtype=cell.weight_ih.dtype
        )
        with torch.no_grad():
            ours.weight_ih.copy_(cell.weight_ih)
            ours.weight_hh.copy_(cell.weight_hh)
            ours.bias_ih.copy_(cell.bias_ih)
            ours.bias_hh.copy_(cell.bias_hh)
        return ours


class ManualRNNCell(RecurrentCell):
    """h_t = tanh(W h_{t-1} + U x_t + b): the "simple RNN" of the lab's question."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, num_gates=1)

    def reset_parameters(self, recurrent_init: str = "uniform", forget_bias: float = 0.0) -> None:
        del forget_bias  # no gates to bias
        if not hasattr(self, "bias"):
            self.bias = nn.Parameter(torch.empty(self.hidden_size))
        super().reset_parameters(recurrent_init)

    def init_state(self, x: Tensor) -> tuple[Tensor]:
        return (x.new_zeros(x.shape[0], self.hidden_size),)

    def forward(self, x_t: Tensor, state: tuple[Tensor]) -> tuple[Tensor]:
        (h,) = state
        return (torch.tanh(h @ self.weight_hh.T + x_t @ self.weight_ih.T + self.bias),)

    def forward_sequence(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        x_proj = torch.addmm(self.bias, x.reshape(B * T, -1), self.weight_ih.T).view(B, T, -1)
        (h,) = self.init_state(x)
        w_hh_t = self.weight_hh.T
        for t in range(T):
            h = torch.tanh(torch.addmm(x_proj[:, t], h, w_hh_t).to(x.dtype))  # (B, H); see the GRU
        return h

    @classmethod
    def from_torch(cls, cell: nn.RNNCell) -> ManualRNNCell:
        if cell.nonlinearity != "tanh":
            raise ValueError("only tanh RNN cells have a manual counterpart")
        ours = cls(cell.input_size, cell.hidden_size).to(
            device=cell.weight_ih.device, dtype=cell.weight_ih.dtype
        )
        with torch.no_grad():
            ours.weight_ih.copy_(cell.weight_ih)
            ours.weight_hh.copy_(cell.weight_hh)
            ours.bias.copy_(cell.bias_ih + cell.bias_hh)
        return ours


CELL_TYPES: dict[str, type[RecurrentCell]] = {
    "lstm": ManualLSTMCell,
    "gru": ManualGRUCell,
    "rnn": ManualRNNCell,
}
