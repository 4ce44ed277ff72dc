"""The LSTM training path (model.fused_lstm, model.lstm_ext) equals the reference step.

Reference: stepping ``ManualLSTMCell.forward`` (the lab's equations as written) through
autograd. Checked in float64 for values and for the gradients of x, U, W and b, for the
pure-torch autograd.Function and for the C++ extension when it builds here, plus
gradcheck of both Functions and the fallback when the extension cannot be built.
"""

from __future__ import annotations

import os
import shutil
import warnings

import pytest
import torch
from torch import nn

from model import lstm_ext
from model.cell import ManualLSTMCell
from model.fused_lstm import LSTMSequenceFunction, lstm_sequence


def _reference(cell: ManualLSTMCell, x: torch.Tensor) -> torch.Tensor:
    state = cell.init_state(x)
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)
    return state[0]


def _python_path(cell: ManualLSTMCell, x: torch.Tensor) -> torch.Tensor:
    x_tm = x.transpose(0, 1).contiguous()
    return LSTMSequenceFunction.apply(x_tm, cell.weight_ih, cell.weight_hh, cell.bias)


def _require_extension() -> type[torch.autograd.Function]:
    """The extension's Function; a failure when a compiler is here and it still is not built.

    Without a compiler the tests skip, which CI turns into a failure (tests/skip_policy.py).
    """
    fn = lstm_ext.function()
    if fn is not None:
        return fn
    compiler = os.environ.get("CXX", "c++")  # what torch.utils.cpp_extension calls
    if shutil.which(compiler) is None:
        pytest.skip(f"no C++ compiler ({compiler}) to build the extension; apt-get install g++ python3-dev")
    pytest.fail(f"{compiler} is installed but the C++ extension is not in use: {lstm_ext.unavailable_reason()}")


def _ext_path(cell: ManualLSTMCell, x: torch.Tensor) -> torch.Tensor:
    fn = _require_extension()
    return fn.apply(x.transpose(0, 1).contiguous(), cell.weight_ih, cell.weight_hh, cell.bias)


PATHS = {"python": _python_path, "ext": _ext_path, "forward_sequence": lambda c, x: c.forward_sequence(x)}


def _cell(D: int, H: int, seed: int, forget_bias: float = 0.0) -> ManualLSTMCell:
    torch.manual_seed(seed)
    cell = ManualLSTMCell(D, H).double()
    cell.reset_parameters(recurrent_init="orthogonal", forget_bias=forget_bias)
    return cell


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("B", "T", "D", "H"), [(4, 7, 5, 6), (1, 1, 3, 2), (3, 28, 28, 16)])
def test_values_and_gradients_equal_reference(path: str, B: int, T: int, D: int, H: int) -> None:
    cell = _cell(D, H, seed=B * 100 + T, forget_bias=1.0)
    x = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(B, H, dtype=torch.float64)  # a loss that weighs every h_T entry

    expected = _reference(cell, x)
    grads_expected = torch.autograd.grad((expected * weight).sum(), [x, *cell.parameters()])
    got = PATHS[path](cell, x)
    grads_got = torch.autograd.grad((got * weight).sum(), [x, *cell.parameters()])

    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    for name, g, e in zip(["x", "weight_ih", "weight_hh", "bias"], grads_got, grads_expected):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12, msg=f"gradient of {name}")


@pytest.mark.parametrize("path", ["python", "ext"])
def test_gradcheck(path: str) -> None:
    cell = _cell(3, 4, seed=1)
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    fn = PATHS[path]
    assert torch.autograd.gradcheck(lambda x_, *p: fn(cell, x_), (x, *cell.parameters()))


@pytest.mark.parametrize("path", ["python", "ext"])
def test_float32_close_and_matches_nn_lstm(path: str) -> None:
    """Training runs in float32; also pins the gate order against torch's own LSTM."""
    torch.manual_seed(3)
    ref = nn.LSTM(28, 32, batch_first=True)
    torch_cell = nn.LSTMCell(28, 32)
    torch_cell.load_state_dict({k[:-3]: v for k, v in ref.state_dict().items()})
    cell = ManualLSTMCell.from_torch(torch_cell)
    x = torch.randn(8, 28, 28)
    expected = ref(x)[0][:, -1]
    torch.testing.assert_close(PATHS[path](cell, x), expected, rtol=1e-5, atol=1e-5)


def test_grad_of_x_only_when_asked() -> None:
    cell = _cell(3, 4, seed=2).float()
    x = torch.randn(2, 5, 3)
    cell.forward_sequence(x).sum().backward()
    assert x.grad is None and all(p.grad is not None for p in cell.parameters())


def test_no_grad_and_cpu_uses_extension_when_built() -> None:
    cell = _cell(3, 4, seed=4)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    with torch.no_grad():
        out = cell.forward_sequence(x)
    assert not out.requires_grad
    torch.testing.assert_close(out, _reference(cell, x).detach())
    if lstm_ext.function() is not None:
        assert cell.forward_sequence(x).grad_fn.name() == "_ExtLSTMSequenceBackward"


def test_training_on_cpu_uses_the_extension() -> None:
    """The path training takes (forward_sequence with autograd, on CPU) is the C++ one."""
    _require_extension()
    cell = _cell(3, 4, seed=8).float()
    x = torch.randn(2, 5, 3)
    assert cell.forward_sequence(x).grad_fn.name() == "_ExtLSTMSequenceBackward"
    with torch.no_grad():
        cell.forward_sequence(x)  # the no-grad path also runs without error


def test_instrument_routes_every_kernel_call_through_the_wrapper(monkeypatch: pytest.MonkeyPatch) -> None:
    """lstm_ext.instrument (benchmarks/profile_step.py's labels) sees forward and backward,
    and the values are those of the bare kernels."""
    _require_extension()
    monkeypatch.setattr(lstm_ext, "_state", dict(lstm_ext._state))  # the wrapper ends with the test
    calls: list[str] = []

    class Counting:
        def __init__(self, module: object) -> None:
            self.module = module

        def __getattr__(self, name: str) -> object:
            calls.append(name)
            return getattr(self.module, name)

    cell = _cell(3, 4, seed=8).float()
    x = torch.randn(2, 5, 3)
    bare = cell.forward_sequence(x)
    assert lstm_ext.instrument(Counting)
    wrapped = cell.forward_sequence(x)
    wrapped.sum().backward()
    assert {"forward", "backward"} <= set(calls)
    torch.testing.assert_close(wrapped, bare)


def test_no_grad_batches_are_chunked_without_changing_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from model import fused_lstm

    cell = _cell(3, 4, seed=7)
    x = torch.randn(7, 5, 3, dtype=torch.float64)
    monkeypatch.setattr(fused_lstm, "NO_GRAD_CHUNK", 3)  # 7 rows -> chunks of 3, 3, 1
    with torch.no_grad():
        out = cell.forward_sequence(x)
    torch.testing.assert_close(out, _reference(cell, x).detach())


def test_failed_build_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.utils import cpp_extension

    def broken_load(*args: object, **kwargs: object) -> None:
        raise RuntimeError("compiler exploded")

    monkeypatch.setattr(lstm_ext, "_state", {})
    monkeypatch.setattr(cpp_extension, "load", broken_load)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert lstm_ext.function() is None
        assert lstm_ext.function() is None  # cached: no second attempt, no second warning
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "compiler exploded" in messages[0]

    cell = _cell(3, 4, seed=5)
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    out = lstm_sequence(x, cell.weight_ih, cell.weight_hh, cell.bias)
    assert out.grad_fn.name() == "LSTMSequenceFunctionBackward"
    torch.testing.assert_close(out, _reference(cell, x))


def test_env_var_disables_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lstm_ext, "_state", {})
    monkeypatch.setenv("LSTM_SEARCH_NO_EXT", "1")
    assert lstm_ext.function() is None


@pytest.mark.cuda  # skipped without a GPU: the one skip CI allows (tests/skip_policy.py)
def test_cuda_uses_pure_torch_path() -> None:
    cell = _cell(3, 4, seed=6).cuda()
    x = torch.randn(2, 5, 3, dtype=torch.float64, device="cuda", requires_grad=True)
    out = cell.forward_sequence(x)
    assert out.grad_fn.name() == "LSTMSequenceFunctionBackward"
    torch.testing.assert_close(out, _reference(cell, x))


@pytest.mark.parametrize("backend", ["onednn", "packed"])
@pytest.mark.parametrize(("B", "T", "H"), [(5, 28, 16), (1, 1, 3), (64, 4, 128), (3, 0, 4), (0, 5, 4)])
def test_other_gemm_backends_match_the_blas_products(backend: str, B: int, T: int, H: int) -> None:
    """oneDNN's matmul (the default on non-Intel x86) and MKL's packed recurrent products
    (opt-in) compute the float32 products of ATen's BLAS path: no value changes beyond
    rounding, forward and every gradient."""
    if lstm_ext.function() is None:
        pytest.skip("C++ extension could not be built on this machine")
    cell = _cell(28, H, seed=B + T).float()
    x = torch.randn(B, T, 28)
    weight = torch.randn(B, H)

    def run() -> tuple[torch.Tensor, ...]:
        xx = x.clone().requires_grad_()
        h = _ext_path(cell, xx)
        return (h, *torch.autograd.grad((h * weight).sum(), [xx, *cell.parameters()]))

    default_onednn = lstm_ext.gemm_backend() == "onednn"
    try:
        lstm_ext.set_onednn_gemm(False)
        assert lstm_ext.gemm_backend() == "blas"
        plain = run()
        if backend == "onednn":
            in_use = lstm_ext.set_onednn_gemm(True)
            available = torch.backends.mkldnn.is_available()  # x86 wheels are built with it
        else:
            in_use = lstm_ext.set_packed_gemm(True)
            available = torch.backends.mkl.is_available()  # x86 wheels export MKL's packed API
        other = run()
    finally:
        lstm_ext.set_packed_gemm(False)
        lstm_ext.set_onednn_gemm(default_onednn)
    assert in_use == available
    # The weight gradients sum T*B products in a library-specific order: float32 rounding
    # of that sum, orders of magnitude below what a wrong operand or transpose would give.
    for got, expected in zip(other, plain):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("setting", "machine", "vendor", "capability", "wanted"),
    [
        ("", "x86_64", "AuthenticAMD", "AVX512", True),  # MKL keeps to AVX2 there: oneDNN
        ("", "x86_64", "AuthenticAMD", "AVX2", False),  # both AVX2: MKL's cheaper calls
        ("", "x86_64", "GenuineIntel", "AVX512", False),
        ("", "aarch64", "", "DEFAULT", False),
        ("", "x86_64", "", "AVX512", False),  # unknown vendor: leave ATen's choice
        ("1", "x86_64", "GenuineIntel", "AVX2", True),
        ("0", "x86_64", "AuthenticAMD", "AVX512", False),
    ],
)
def test_onednn_is_chosen_by_cpu_vendor_unless_the_variable_says(
    monkeypatch: pytest.MonkeyPatch, setting: str, machine: str, vendor: str, capability: str, wanted: bool
) -> None:
    monkeypatch.setenv("LSTM_SEARCH_ONEDNN_GEMM", setting)
    monkeypatch.setattr(lstm_ext.platform, "machine", lambda: machine)
    monkeypatch.setattr(lstm_ext, "_cpu_vendor", lambda: vendor)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert lstm_ext._onednn_wanted() is wanted


@pytest.mark.parametrize("mixed", [False, True])
@pytest.mark.parametrize(("B", "H"), [(7, 16), (64, 64), (1, 5)])
def test_fused_loops_split_over_threads_give_the_same_bits(mixed: bool, B: int, H: int) -> None:
    """The fused per-step loops may run over batch rows on several threads: each element's
    arithmetic must not depend on the split, so training stays reproducible whatever the
    split (same products: the thread count is the same in both runs). min 1 element per
    thread splits every step's rows over the threads, unevenly for odd B; 0 never splits."""
    fn = _require_extension()
    cell = _cell(28, H, seed=B + H).float()
    x = torch.randn(B, 28, 28)
    weight = torch.randn(B, H)

    def run(min_elems: int) -> tuple[torch.Tensor, ...]:
        lstm_ext.set_min_parallel_elems(min_elems)
        xx = x.transpose(0, 1).contiguous().requires_grad_()
        h = fn.apply(xx, cell.weight_ih, cell.weight_hh, cell.bias, mixed)
        return (h, *torch.autograd.grad((h * weight).sum(), [xx, *cell.parameters()]))

    threads = torch.get_num_threads()
    previous = lstm_ext.set_min_parallel_elems(0)
    try:
        torch.set_num_threads(2)
        whole, split = run(0), run(1)
    finally:
        torch.set_num_threads(threads)
        lstm_ext.set_min_parallel_elems(previous)
    for name, s, w in zip(["h", "x", "weight_ih", "weight_hh", "bias"], split, whole):
        assert torch.equal(s, w), f"{name} differs when the fused loops are split over threads"
