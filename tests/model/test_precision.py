"""Mixed precision: bf16 matmuls under autocast in the LSTM fast path, and choosing it.

The bf16 paths (C++ kernels and pure torch) are checked against the float32 reference
within bf16 tolerances, and checked to really run their products in bf16 (saved
operands bf16, cell state and gates float32). Runs on any CPU: bf16 is emulated where
the hardware lacks it, slowly but exactly as specified.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from model import precision as precision_mod
from model.classifier import LSTMClassifier
from model.config import TrainConfig
from model.data import load_splits
from model.errors import ConfigError
from model.fused_lstm import LSTMSequenceFunction, lstm_sequence
from model.precision import autocast, choose_precision, resolve_precision
from model.train import fit

BF16 = torch.bfloat16


def _use_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from model import lstm_ext

    monkeypatch.setattr(lstm_ext, "_state", {"module": None})


def _lstm_case(seed: int, B: int = 16, T: int = 28, D: int = 28, H: int = 48):
    torch.manual_seed(seed)
    model = LSTMClassifier(D, H)
    x = torch.randn(B, T, D)
    weight = torch.randn(B, H)  # a loss that weighs every entry of h_T
    return model.cell, x, weight


def _run(cell, x: torch.Tensor, weight: torch.Tensor, bf16: bool):
    x = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=BF16, enabled=bf16):
        h = lstm_sequence(x, cell.weight_ih, cell.weight_hh, cell.bias)
    grads = torch.autograd.grad((h * weight).sum(), [x, *cell.parameters()])
    return h, grads


def _rel_err(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got - expected).norm() / expected.norm()).item()


@pytest.mark.parametrize("path", ["ext", "python"])
def test_bf16_forward_and_backward_close_to_fp32(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from model import lstm_ext

    if path == "python":
        _use_python_path(monkeypatch)
    elif lstm_ext.function() is None:
        pytest.skip("C++ extension could not be built on this machine")
    cell, x, weight = _lstm_case(seed=1)
    h32, g32 = _run(cell, x, weight, bf16=False)
    h16, g16 = _run(cell, x, weight, bf16=True)

    assert h16.dtype == torch.float32  # h_T is returned in the master dtype
    assert all(g.dtype == torch.float32 for g in g16)  # gradients for float32 weights
    # bf16 keeps 8 significant bits: per-element errors of a few 1e-3 after 28 steps.
    torch.testing.assert_close(h16, h32, rtol=0, atol=3e-2)
    assert _rel_err(h16, h32) < 1e-2
    for name, got, expected in zip(["x", "weight_ih", "weight_hh", "bias"], g16, g32):
        assert _rel_err(got, expected) < 3e-2, f"gradient of {name}"
    # ... and it really is bf16: float32 products would agree to ~1e-6.
    assert (h16 - h32).abs().max() > 1e-4


@pytest.mark.parametrize("path", ["ext", "python"])
def test_bf16_products_with_float32_state(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the backward keeps: bf16 matmul operands, float32 gates and cell state."""
    from model import lstm_ext

    if path == "python":
        _use_python_path(monkeypatch)
    elif lstm_ext.function() is None:
        pytest.skip("C++ extension could not be built on this machine")
    cell, x, _ = _lstm_case(seed=2, B=4, T=5, D=3, H=6)
    with torch.autocast("cpu", dtype=BF16):
        h = lstm_sequence(x, cell.weight_ih, cell.weight_hh, cell.bias)
    expected_fn = "_ExtLSTMSequenceBackward" if path == "ext" else "LSTMSequenceFunctionBackward"
    assert h.grad_fn.name() == expected_fn
    x_m, w_ih_m, w_hh_m, gates, cs, tanh_cs, hs = h.grad_fn.saved_tensors
    assert [t.dtype for t in (x_m, w_ih_m, w_hh_m, hs)] == [BF16] * 4
    assert [t.dtype for t in (gates, cs, tanh_cs)] == [torch.float32] * 3


def test_ext_and_python_bf16_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from model import lstm_ext

    if lstm_ext.function() is None:
        pytest.skip("C++ extension could not be built on this machine")
    cell, x, weight = _lstm_case(seed=3)
    h_ext, g_ext = _run(cell, x, weight, bf16=True)
    _use_python_path(monkeypatch)
    h_py, g_py = _run(cell, x, weight, bf16=True)
    # Same operands and roundings; only accumulation order and the bias gradient's
    # bf16 storage (C++) differ.
    torch.testing.assert_close(h_ext, h_py, rtol=0, atol=2e-3)
    for got, expected in zip(g_ext, g_py):
        assert _rel_err(got, expected) < 1e-2


def test_float64_ignores_autocast() -> None:
    """Autocast lowers float32 only; float64 (gradcheck, tests) stays exact."""
    cell, x, _weight = _lstm_case(seed=4, B=3, T=4, D=5, H=6)
    cell = cell.double()
    x = x.double()
    plain = lstm_sequence(x, cell.weight_ih, cell.weight_hh, cell.bias)
    with torch.autocast("cpu", dtype=BF16):
        cast = lstm_sequence(x, cell.weight_ih, cell.weight_hh, cell.bias)
    torch.testing.assert_close(cast, plain, rtol=0, atol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_autocast_idiom_trains_the_classifier(cell: str) -> None:
    """The issue's idiom: autocast around forward and loss, backward and step outside."""
    torch.manual_seed(0)
    model = LSTMClassifier(28, 32, cell=cell)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(32, 28, 28), torch.randint(0, 10, (32,))
    losses = []
    for _ in range(15):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())
    assert losses[-1] < 0.5 * losses[0]  # it learns the fixed batch


@pytest.mark.cuda  # skipped without a GPU: the one skip CI allows (tests/skip_policy.py)
def test_cuda_bf16_close_to_fp32() -> None:
    cell, x, weight = _lstm_case(seed=5)
    cell, x, weight = cell.cuda(), x.cuda(), weight.cuda()

    def run(bf16: bool):
        xx = x.clone().requires_grad_()
        with torch.autocast("cuda", dtype=BF16, enabled=bf16):
            h = lstm_sequence(xx, cell.weight_ih, cell.weight_hh, cell.bias)
        return h, torch.autograd.grad((h * weight).sum(), [xx, *cell.parameters()])

    (h32, g32), (h16, g16) = run(False), run(True)
    assert h16.grad_fn.name() == "LSTMSequenceFunctionBackward"
    torch.testing.assert_close(h16, h32, rtol=0, atol=3e-2)
    for got, expected in zip(g16, g32):
        assert got.dtype == torch.float32 and _rel_err(got, expected) < 3e-2


def test_python_function_without_mm_dtype_is_fp32() -> None:
    """The 4-argument call (benchmarks, older callers) still means full precision."""
    cell, x, _ = _lstm_case(seed=6, B=2, T=3, D=4, H=5)
    h = LSTMSequenceFunction.apply(x.transpose(0, 1).contiguous(), cell.weight_ih, cell.weight_hh, cell.bias)
    x_m, *_, hs = h.grad_fn.saved_tensors
    assert x_m.dtype == hs.dtype == torch.float32


# --- choosing the precision -------------------------------------------------------


def test_precision_field_is_validated() -> None:
    assert TrainConfig().precision == "fp32"  # opt in to auto/bf16 until accuracy is measured
    with pytest.raises(ConfigError, match=r"precision must be one of auto, fp32, bf16 \(got 'fp16'\)"):
        TrainConfig(precision="fp16")


@pytest.fixture
def probing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the suite's pin (tests/conftest.py): "auto" asks the probe again."""
    monkeypatch.delenv(precision_mod.AUTO_ENV, raising=False)


@pytest.mark.parametrize(("speedup", "expected"), [(0.3, "fp32"), (1.1, "fp32"), (1.2, "bf16"), (3.5, "bf16")])
def test_auto_follows_the_probe(probing: None, speedup: float, expected: str) -> None:
    assert resolve_precision("auto", "cpu", probe=lambda device: speedup) == expected


@pytest.mark.parametrize("pinned", ["fp32", "bf16"])
def test_env_pins_auto_without_probing(probing: None, monkeypatch: pytest.MonkeyPatch, pinned: str) -> None:
    def probe(device: torch.device) -> float:
        raise AssertionError("probed although $LSTM_SEARCH_AUTO_PRECISION was set")

    monkeypatch.setenv(precision_mod.AUTO_ENV, pinned)
    assert resolve_precision("auto", "cpu", probe=probe) == pinned
    assert resolve_precision("fp32", "cpu", probe=probe) == "fp32"  # an explicit choice wins
    monkeypatch.setenv(precision_mod.AUTO_ENV, "half")
    with pytest.raises(ConfigError, match="LSTM_SEARCH_AUTO_PRECISION must be fp32 or bf16"):
        resolve_precision("auto", "cpu", probe=probe)


def test_explicit_precision_never_probes() -> None:
    def probe(device: torch.device) -> float:
        raise AssertionError("probed although the precision was given")

    assert resolve_precision("fp32", "cpu", probe=probe) == "fp32"
    assert resolve_precision("bf16", "cpu", probe=probe) == "bf16"
    with pytest.raises(ConfigError, match="precision must be one of"):
        choose_precision("half", lambda: 2.0)


def test_probe_runs_once_per_process_and_device(probing: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_measure(device: torch.device, rounds: int = 3) -> float:
        calls.append(str(device))
        return 0.5

    monkeypatch.setattr(precision_mod, "_speedups", {})
    monkeypatch.setattr(precision_mod, "_measure_speedup", fake_measure)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert precision_mod.bf16_speedup("cpu") == 0.5
    assert calls == ["cpu"]


def test_real_probe_measures_a_positive_ratio(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe runs here (what it finds depends on the CPU, so only its sanity is
    checked) without moving the caller's random stream or leaving autocast on."""
    monkeypatch.setattr(precision_mod, "_speedups", {})
    monkeypatch.setattr(precision_mod, "_PROBE_HIDDEN", 32)  # the mechanism, cheaply
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    speedup = precision_mod.bf16_speedup("cpu")
    assert 0 < speedup < 100
    assert torch.equal(torch.rand(3), expected_next)
    assert not torch.is_autocast_enabled("cpu")


def test_autocast_region_only_for_bf16() -> None:
    with autocast("fp32", "cpu"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == BF16


@pytest.fixture(scope="module")
def splits(fake_mnist: Path):
    return load_splits(fake_mnist, val_size=100, seed=0, download=False)


@pytest.mark.parametrize(("requested", "speedup", "used"), [("bf16", 0.5, "bf16"), ("auto", 0.5, "fp32"),
                                                             ("auto", 3.0, "bf16")])
def test_fit_trains_in_the_resolved_precision(
    splits, probing: None, monkeypatch: pytest.MonkeyPatch, requested: str, speedup: float, used: str
) -> None:
    monkeypatch.setattr(precision_mod, "_speedups", {"cpu": speedup})
    seen: list[bool] = []
    original = LSTMClassifier.forward

    def spy(self: LSTMClassifier, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            seen.append(torch.is_autocast_enabled("cpu"))
        return original(self, x)

    monkeypatch.setattr(LSTMClassifier, "forward", spy)
    cfg = TrainConfig(hidden_size=16, batch_size=64, epochs=1, precision=requested)
    result = fit(cfg, splits.train_x, splits.train_y, splits.val_x, splits.val_y, max_steps=3)
    assert result.precision == used
    assert seen == [used == "bf16"] * 3
    assert 0 <= result.history[-1].val_acc <= 1
