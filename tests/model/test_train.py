from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.checkpoint import load_checkpoint, save_checkpoint
from model.config import TrainConfig
from model.data import load_splits
from model.errors import UserInputError
from model.train import EpochStats, NonFiniteLossError, evaluate, fit, random_shift


@pytest.fixture(scope="module")
def splits(fake_mnist: Path):
    return load_splits(fake_mnist, val_size=100, seed=0, download=False)


def test_fit_learns_and_calls_back_every_epoch(splits) -> None:
    cfg = TrainConfig(hidden_size=32, lr=1e-2, batch_size=32, epochs=3, schedule="onecycle", grad_clip=1.0)
    seen: list[EpochStats] = []
    result = fit(cfg, splits.train_x, splits.train_y, splits.val_x, splits.val_y, on_epoch=seen.append)
    assert [s.epoch for s in seen] == [1, 2, 3] and seen == result.history
    assert result.history[-1].val_acc > 0.6  # chance is 0.1
    assert result.history[-1].train_loss < result.history[0].train_loss
    # one-cycle ends far below its peak learning rate
    assert result.history[-1].lr < 1e-3


def test_without_evaluation_images_the_epoch_line_has_no_scores(splits) -> None:
    # `train --val-size 0` trains on every training image; its epoch lines must not say "nan%".
    cfg = TrainConfig(hidden_size=8, batch_size=64, epochs=1)
    lines: list[str] = []
    fit(cfg, splits.train_x, splits.train_y, splits.val_x[:0], splits.val_y[:0], log=lines.append)
    epoch = [line for line in lines if line.startswith("Epoch [1/1] train loss")]
    assert len(epoch) == 1 and "nan" not in epoch[0] and "eval" not in epoch[0], lines
    with_val: list[str] = []
    fit(cfg, splits.train_x, splits.train_y, splits.val_x, splits.val_y, log=with_val.append)
    assert any("eval acc" in line for line in with_val), with_val


def test_fit_is_deterministic_for_a_seed(splits) -> None:
    cfg = TrainConfig(hidden_size=16, batch_size=64, epochs=1, dropout=0.1)
    a = fit(cfg, splits.train_x, splits.train_y, splits.val_x, splits.val_y).history[0]
    b = fit(cfg, splits.train_x, splits.train_y, splits.val_x, splits.val_y).history[0]
    assert a.train_loss == b.train_loss and a.val_acc == b.val_acc


def test_callback_exception_stops_training(splits) -> None:
    class Stop(Exception):
        pass

    def stop_after_first(stats: EpochStats) -> None:
        raise Stop

    with pytest.raises(Stop):
        fit(TrainConfig(hidden_size=8, epochs=5), splits.train_x, splits.train_y, splits.val_x,
            splits.val_y, on_epoch=stop_after_first, max_steps=2)


def test_nan_loss_raises_with_position(splits) -> None:
    bad_x = splits.train_x.clone()
    bad_x[:] = float("nan")
    with pytest.raises(NonFiniteLossError, match="epoch 1"):
        fit(TrainConfig(hidden_size=8, epochs=1), bad_x, splits.train_y, splits.val_x, splits.val_y)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "rmsprop", "sgd"])
@pytest.mark.parametrize("schedule", ["none", "cosine"])
def test_every_optimizer_and_schedule_steps(splits, optimizer: str, schedule: str) -> None:
    cfg = TrainConfig(hidden_size=8, epochs=1, optimizer=optimizer, schedule=schedule, weight_decay=1e-4)
    result = fit(cfg, splits.train_x, splits.train_y, splits.val_x, splits.val_y, max_steps=3)
    assert torch.isfinite(torch.tensor(result.history[0].train_loss))


def test_checkpoint_round_trip(splits, tmp_path: Path) -> None:
    cfg = TrainConfig(hidden_size=8, epochs=1, forget_bias=1.0)
    result = fit(cfg, splits.train_x, splits.train_y, splits.val_x, splits.val_y, max_steps=2)
    path = save_checkpoint(tmp_path / "ckpt.pt", result.model, cfg, test_acc=0.5)
    model, loaded_cfg, extra = load_checkpoint(path)
    assert loaded_cfg == cfg and extra == {"test_acc": 0.5}
    assert evaluate(model, splits.val_x, splits.val_y) == evaluate(result.model, splits.val_x, splits.val_y)


def test_checkpoint_refuses_non_tensor_pickles(tmp_path: Path) -> None:
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"model": Evil(), "config": {}}, protocol=2))
    with pytest.raises(UserInputError, match="cannot be read"):
        load_checkpoint(path)


def test_random_shift_moves_each_image_by_its_own_offset_within_bounds() -> None:
    x = torch.zeros(200, 28, 28)
    x[:, 14, 10] = 1.0  # one lit pixel per image: its new position is the offset
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    lit = out.nonzero()  # (image, row, col) for every lit pixel
    assert lit[:, 0].tolist() == list(range(200))  # exactly one pixel per image survives
    dy, dx = lit[:, 1] - 14, lit[:, 2] - 10
    assert dy.abs().max() <= 2 and dx.abs().max() <= 2
    # every one of the 25 offsets occurs, so images are not all moved alike
    assert len(set(zip(dy.tolist(), dx.tolist()))) == 25
    again = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # seeded


def test_random_shift_brings_in_zeros_at_the_edges() -> None:
    x = torch.ones(50, 28, 28)
    out = random_shift(x, 3, torch.Generator().manual_seed(1))
    # A moved all-ones image keeps a (28-|dy|) x (28-|dx|) block of ones, the rest zeros.
    kept = out.sum(dim=(1, 2))
    assert torch.all(kept >= 25 * 25) and torch.all(kept <= 28 * 28)
    assert torch.all((out == 0) | (out == 1))
    assert (kept < 28 * 28).any()


def test_shift_trains_and_zero_shift_leaves_training_unchanged(splits) -> None:
    base = TrainConfig(hidden_size=16, batch_size=64, epochs=1)
    plain = fit(base, splits.train_x, splits.train_y, splits.val_x, splits.val_y).history[0]
    explicit = fit(base.with_overrides(shift=0), splits.train_x, splits.train_y, splits.val_x,
                   splits.val_y).history[0]
    shifted = fit(base.with_overrides(shift=2), splits.train_x, splits.train_y, splits.val_x,
                  splits.val_y).history[0]
    assert explicit.train_loss == plain.train_loss
    assert shifted.train_loss != plain.train_loss  # the augmentation is really applied
    assert 0 < shifted.train_loss < 10


@pytest.mark.parametrize("shift", [-1, 9, 1.5])
def test_bad_shift_is_a_config_error(shift: object) -> None:
    with pytest.raises(UserInputError, match="shift"):
        TrainConfig(shift=shift)
