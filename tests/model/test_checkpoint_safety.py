"""Checkpoints load with weights_only=True: a file that would run code when unpickled is
refused with one line, and the code never runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.checkpoint import load_checkpoint, save_checkpoint
from model.classifier import build_model
from model.config import TrainConfig
from model.errors import UserInputError


class _Payload:
    """Unpickling this calls Path.touch(marker): what a malicious checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


def test_checkpoint_with_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    cfg = TrainConfig(hidden_size=4)
    torch.save({"model": build_model(cfg).state_dict(), "config": cfg.to_dict(), "x": _Payload(marker)}, path)
    with pytest.raises(UserInputError, match="cannot be read"):
        load_checkpoint(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the same file unpickled unsafely does run the code
    assert marker.exists()


def test_a_plain_checkpoint_round_trips(tmp_path: Path) -> None:
    cfg = TrainConfig(hidden_size=4)
    model = build_model(cfg)
    path = save_checkpoint(tmp_path / "ok.pt", model, cfg, test_acc=0.5)
    loaded, loaded_cfg, extra = load_checkpoint(path)
    assert loaded_cfg == cfg and extra == {"test_acc": 0.5}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
