"""The LSTM's training path: a whole-sequence forward and a hand-written backward.

Still the lab's equations (i, f, o = sigmoid; c~ = tanh; c_t = f c_{t-1} + i c~;
h_t = o tanh(c_t)), but written so that each of the T steps (28 rows by default) costs as few tensor
operations as possible, because on a small CPU the per-operation overhead of autograd,
not the arithmetic, is what made the plain unroll slower than ``nn.LSTM``:

* forward: the input projection of all T steps is one matmul; each step is one ``addmm``
  into a preallocated gate buffer, the activations are applied in place, and c, tanh(c)
  and h are written into preallocated (T, B, H) buffers, so autograd records nothing
  per step;
* backward: the derivative factors of every step (sigmoid' and tanh' of the saved
  activations) are computed for all T at once, leaving five small operations and one
  matmul per step in the reverse loop; dW_hh, dW_ih, db and dx are then each a single
  large matmul or sum over all steps.

Mixed precision: inside ``torch.autocast`` (bf16; fp16 on CUDA) the matmul operands (x,
U, W and each step's h) are cast to the autocast dtype, the products are added into a
float32 gate buffer, and c, the activations, the elementwise backward and the returned
gradients stay float32. Autocast itself is switched off inside the Functions: the
precision is passed explicitly, so no product is recast behind the kernels' back.

``lstm_sequence`` picks the C++ extension (``model.lstm_ext``) for CPU tensors when it
builds, and the pure-torch ``LSTMSequenceFunction`` otherwise (CUDA tensors included).
Both are tested equal to stepping ``ManualLSTMCell.forward`` (values and gradients).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = [
    "NO_GRAD_CHUNK",
    "LSTMSequenceFunction",
    "autocast_matmul_dtype",
    "lstm_sequence",
    "lstm_sequence_backward",
    "lstm_sequence_forward",
]


def lstm_sequence_forward(
    x: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias: Tensor, mm_dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """x: (T, B, D) time-major. Returns (h_T, gates, cs, tanh_cs, hs).

    gates (T, B, 4H) holds the activated i, f, c~, o; cs (T+1, B, H) and hs (T+1, B, H)
    hold c_0..c_T and h_0..h_T (c_0 = h_0 = 0); tanh_cs (T, B, H) holds tanh(c_1..c_T).

    ``mm_dtype`` (bf16 under autocast; None: x's dtype) is the dtype of the matmul
    operands: x and the weights are cast to it and hs is kept in it for the products,
    while their results are added into float32 gates, so c, the activations and h_T stay
    in x's dtype. The caller passes x, weight_ih and weight_hh already cast.
    """
    T, B, D = x.shape
    H = weight_hh.shape[1]
    state_dtype = bias.dtype  # the master weights' dtype: x may already be cast to mm_dtype
    mixed = mm_dtype is not None and mm_dtype != state_dtype
    if mixed:  # the low-precision product is widened to float32 by the bias (type promotion)
        gates = torch.add(torch.mm(x.reshape(T * B, D), weight_ih.t()), bias).view(T, B, 4 * H)
    else:
        gates = torch.addmm(bias, x.reshape(T * B, D), weight_ih.t()).view(T, B, 4 * H)
    cs = gates.new_zeros(T + 1, B, H)
    hs = gates.new_zeros(T + 1, B, H)
    hs_m = x.new_zeros(T + 1, B, H) if mixed else hs  # h_t as the next product's operand
    tanh_cs = gates.new_empty(T, B, H)
    w_hh_t = weight_hh.t()
    for t in range(T):
        g = gates[t]  # (B, 4H), already holds U x_t + b
        if mixed:
            g.add_(hs_m[t] @ w_hh_t)  # + W h_{t-1}, the product in mm_dtype
        else:
            g.addmm_(hs[t], w_hh_t)  # + W h_{t-1}
        g[:, : 2 * H].sigmoid_()  # i, f
        g[:, 2 * H : 3 * H].tanh_()  # c~
        g[:, 3 * H :].sigmoid_()  # o
        c = cs[t + 1]
        torch.mul(g[:, H : 2 * H], cs[t], out=c)  # f * c_{t-1}
        c.addcmul_(g[:, :H], g[:, 2 * H : 3 * H])  # + i * c~
        torch.tanh(c, out=tanh_cs[t])
        torch.mul(g[:, 3 * H :], tanh_cs[t], out=hs[t + 1])  # h_t = o * tanh(c_t)
        if mixed:
            hs_m[t + 1].copy_(hs[t + 1])
    return hs[T], gates, cs, tanh_cs, hs_m


def lstm_sequence_backward(
    grad_h: Tensor,
    x: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    gates: Tensor,
    cs: Tensor,
    tanh_cs: Tensor,
    hs: Tensor,
    need_grad_x: bool = True,
) -> tuple[Tensor | None, Tensor, Tensor, Tensor]:
    """Gradients (dx (T, B, D), dW_ih, dW_hh, db) from dL/dh_T, by the chain rule in reverse.

    dx is None unless ``need_grad_x`` (images never need it: that saves one matmul).

    With a = the pre-activations: dc_t += dh_t o (1 - tanh(c_t)^2); da_i = dc_t c~ i (1 - i);
    da_f = dc_t c_{t-1} f (1 - f); da_c~ = dc_t i (1 - c~^2); da_o = dh_t tanh(c_t) o (1 - o);
    dh_{t-1} = da W; dc_{t-1} = dc_t f.

    x, the weights and hs are what ``lstm_sequence_forward`` used as matmul operands; when
    their dtype is lower than the gates' (mixed precision), the matmuls here take operands
    in it too while the elementwise chain and the returned gradients stay in the gates' dtype.
    """
    T, B, _ = x.shape
    H = weight_hh.shape[1]
    state_dtype, mm_dtype = gates.dtype, hs.dtype
    i, f, g, o = gates.split(H, dim=2)
    # Everything that does not depend on dh/dc, for all steps at once: da = [dc, dc, dc, dh] * m.
    m = torch.empty_like(gates)
    m_i, m_f, m_g, m_o = m.split(H, dim=2)
    torch.mul(g, i * (1 - i), out=m_i)
    torch.mul(cs[:-1], f * (1 - f), out=m_f)
    torch.mul(i, 1 - g * g, out=m_g)
    torch.mul(tanh_cs, o * (1 - o), out=m_o)
    k = o * (1 - tanh_cs * tanh_cs)  # dc_t += dh_t * k_t
    da = torch.empty_like(gates)
    dh = grad_h.to(state_dtype).contiguous()
    dc = torch.zeros_like(dh)
    for t in range(T - 1, -1, -1):
        dc.addcmul_(dh, k[t])
        a = da[t]
        torch.mul(dc.unsqueeze(1), m[t, :, : 3 * H].view(B, 3, H), out=a[:, : 3 * H].view(B, 3, H))
        torch.mul(dh, m_o[t], out=a[:, 3 * H :])
        if t > 0:
            dc.mul_(f[t])
            dh = (a.to(mm_dtype) @ weight_hh).to(state_dtype)
    da2 = da.view(T * B, 4 * H)
    grad_b = da2.sum(0)
    da2 = da2.to(mm_dtype)  # no copy unless mixed
    grad_w_hh = (da2.t() @ hs[:-1].reshape(T * B, H)).to(state_dtype)
    grad_w_ih = (da2.t() @ x.reshape(T * B, -1)).to(state_dtype)
    grad_x = (da2 @ weight_ih).view(T, B, -1).to(state_dtype) if need_grad_x else None
    return grad_x, grad_w_ih, grad_w_hh, grad_b


class LSTMSequenceFunction(torch.autograd.Function):
    """h_T = LSTM unroll of x (T, B, D) from zero state; pure torch, any device.

    ``mm_dtype``: the matmul operands' dtype (None: x's own), bf16 or fp16 for mixed
    precision. Autocast is switched off inside: the precision is chosen explicitly here,
    so the in-place products into float32 gates are not recast behind our back.
    """

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias: Tensor,
        mm_dtype: torch.dtype | None = None,
    ) -> Tensor:
        mm = mm_dtype or x.dtype
        with torch.autocast(x.device.type, enabled=False):
            x_m, w_ih_m, w_hh_m = x.to(mm), weight_ih.to(mm), weight_hh.to(mm)
            h, gates, cs, tanh_cs, hs = lstm_sequence_forward(x_m, w_ih_m, w_hh_m, bias, mm)
        ctx.save_for_backward(x_m, w_ih_m, w_hh_m, gates, cs, tanh_cs, hs)
        return h.clone()  # hs[T] is a view into a saved buffer

    @staticmethod
    def backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor | None, ...]:
        x, weight_ih, weight_hh, gates, cs, tanh_cs, hs = ctx.saved_tensors
        needs = ctx.needs_input_grad
        with torch.autocast(grad_h.device.type, enabled=False):
            grad_x, grad_w_ih, grad_w_hh, grad_b = lstm_sequence_backward(
                grad_h, x, weight_ih, weight_hh, gates, cs, tanh_cs, hs, need_grad_x=needs[0]
            )
        return (
            grad_x,
            grad_w_ih if needs[1] else None,
            grad_w_hh if needs[2] else None,
            grad_b if needs[3] else None,
            None,
        )


# Without autograd nothing needs keeping for a backward pass, but the kernels still write
# every step's gates and states: evaluation batches (1000 images; 400 MB at H=512) are
# therefore split so that one worker's peak memory stays that of a training batch.
NO_GRAD_CHUNK = 256


def autocast_matmul_dtype(x: Tensor) -> torch.dtype | None:
    """The lower matmul dtype an active autocast region asks for on x's device, else None.

    Only float32 inputs are lowered, as autocast itself does (float64 stays exact).
    """
    device = x.device.type
    if x.dtype != torch.float32 or not torch.is_autocast_enabled(device):
        return None
    dtype = torch.get_autocast_dtype(device)
    return dtype if dtype != torch.float32 else None


def lstm_sequence(x: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias: Tensor) -> Tensor:
    """h_T of the LSTM over a batch-first x (B, T, D), through the fastest available path.

    Inside ``torch.autocast`` (bf16 on CPU or CUDA, fp16 on CUDA) the matrix products run
    in the autocast dtype while c, the gates and the returned h_T stay float32.
    """
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (x, weight_ih, weight_hh, bias)
    )
    if not needs_grad and x.shape[0] > NO_GRAD_CHUNK:
        return torch.cat([lstm_sequence(part, weight_ih, weight_hh, bias) for part in x.split(NO_GRAD_CHUNK)])
    mm_dtype = autocast_matmul_dtype(x)
    x_tm = x.transpose(0, 1).contiguous()  # (T, B, D): each step's rows contiguous
    # What the kernels handle: float32/float64, and bf16 products from float32.
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and mm_dtype in (None, torch.bfloat16):
        from model import lstm_ext  # imported lazily: it may compile on first use

        fn = lstm_ext.function()
        if fn is not None:
            return fn.apply(x_tm, weight_ih, weight_hh, bias, mm_dtype is not None)
    return LSTMSequenceFunction.apply(x_tm, weight_ih, weight_hh, bias, mm_dtype)
