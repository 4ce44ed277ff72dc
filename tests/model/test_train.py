from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.checkpoint import load_checkpoint, save_checkpoint
from model.config import TrainConfig
from model.data import load_splits
from model.errors import UserInputError
from model.train import EpochStats, NonFiniteLossError, evaluate, fit


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
