"""Rotation/scale augmentation and the EMA of weights (issue 13, room at the top)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.augment import augment, random_affine
from model.config import TrainConfig
from model.data import load_splits
from model.errors import ConfigError
from model.train import ema_update, fit


def _digit() -> torch.Tensor:
    x = torch.zeros(1, 28, 28)
    x[0, 4:24, 13:15] = 1.0  # a vertical bar through the centre
    return x


def test_zero_amounts_leave_the_batch_untouched() -> None:
    x = torch.rand(4, 28, 28)
    assert torch.equal(augment(x, 0, 0.0, 0.0, torch.Generator().manual_seed(0)), x)


def test_rotation_turns_a_vertical_bar_and_keeps_its_mass() -> None:
    x = _digit()
    out = random_affine(x.expand(64, 28, 28), 30.0, 0.0, torch.Generator().manual_seed(0))
    assert out.shape == (64, 28, 28)
    # Each image got its own angle: the ink in the top rows sits in different columns.
    top_cols = (out[:, :8] * torch.arange(28.0)).sum(dim=(1, 2)) / out[:, :8].sum(dim=(1, 2))
    assert top_cols.max() - top_cols.min() > 4
    assert (top_cols - 13.5).abs().max() <= 20 * 0.5 + 1  # at most 30 degrees off vertical
    # Rotation about the centre keeps the ink (up to bilinear blur).
    assert torch.allclose(out.sum(dim=(1, 2)), x.sum().expand(64), rtol=0.05)


def test_scaling_changes_the_bars_length_within_bounds() -> None:
    x = _digit()
    out = random_affine(x.expand(256, 28, 28), 0.0, 0.2, torch.Generator().manual_seed(1))
    lengths = (out.sum(dim=2) > 0.5).sum(dim=1).float()  # rows the bar covers
    assert lengths.min() >= 20 * 0.8 - 2 and lengths.max() <= 20 * 1.2 + 2
    assert lengths.max() - lengths.min() >= 4  # really scaled both ways


def test_augmentation_is_seeded() -> None:
    x = torch.rand(8, 28, 28)
    a = augment(x, 2, 10.0, 0.1, torch.Generator().manual_seed(3))
    b = augment(x, 2, 10.0, 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("field,value", [("rotate", -1.0), ("rotate", 46.0), ("scale", 0.5),
                                         ("ema", 1.0), ("ema", -0.1), ("rotate", float("nan"))])
def test_bad_amounts_are_one_clear_error(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})


def test_ema_weights_are_what_gets_evaluated_and_returned(fake_mnist: Path) -> None:
    s = load_splits(fake_mnist, val_size=100, seed=0, download=False)
    plain_cfg = TrainConfig(hidden_size=16, batch_size=32, epochs=2, lr=1e-2)
    plain = fit(plain_cfg, s.train_x, s.train_y, s.val_x, s.val_y)
    ema = fit(plain_cfg.with_overrides(ema=0.9), s.train_x, s.train_y, s.val_x, s.val_y)
    # Same seed, same steps: the raw weights are identical, so any difference is the average.
    p = dict(plain.model.named_parameters())
    q = dict(ema.model.named_parameters())
    assert p.keys() == q.keys()
    assert any(not torch.allclose(p[k], q[k]) for k in p)
    assert ema.history[-1].train_loss == plain.history[-1].train_loss
    # A decay of ~0 averages over one step: the average is the last weights.
    last = fit(plain_cfg.with_overrides(ema=1e-9), s.train_x, s.train_y, s.val_x, s.val_y)
    for k, v in dict(last.model.named_parameters()).items():
        assert torch.allclose(v, p[k], atol=1e-6)


def test_ema_decay_warms_up_then_holds() -> None:
    # The n-th update moves the average by 1 - min(decay, (1 + n) / (10 + n)) of the way
    # to the current weights: most of the way early on, then by the decay's own amount.
    update = ema_update(0.999)
    for n, step in [(1, 1 - 2 / 11), (100, 1 - 101 / 110), (10**6, 1 - 0.999)]:
        avg, cur = [torch.zeros(3), torch.zeros(2, 2)], [torch.ones(3), torch.full((2, 2), 2.0)]
        update(avg, cur, torch.tensor(n))
        assert torch.allclose(avg[0], torch.full((3,), step))
        assert torch.allclose(avg[1], torch.full((2, 2), 2 * step))
