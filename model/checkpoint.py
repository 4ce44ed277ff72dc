"""Checkpoints in nanoGPT's shape: ``{"model": state_dict, "config": asdict(cfg)}``.

A checkpoint rebuilds its model without the study that produced it, and loads with
``weights_only=True`` so a file from elsewhere cannot run code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from model.classifier import LSTMClassifier, build_model
from model.config import TrainConfig
from model.errors import UserInputError

__all__ = ["load_checkpoint", "save_checkpoint"]


def save_checkpoint(
    path: str | os.PathLike[str], model: LSTMClassifier, cfg: TrainConfig, **extra: Any
) -> Path:
    """Write atomically (temp file then rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save({"model": state, "config": cfg.to_dict(), **extra}, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no half-written PATH.tmp left behind
        raise
    return path


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[LSTMClassifier, TrainConfig, dict[str, Any]]:
    """Rebuild (model, config, extra keys) from a checkpoint written by save_checkpoint."""
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserInputError(f"checkpoint {path} does not exist") from None
    except Exception as exc:
        raise UserInputError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(blob, dict) or "model" not in blob or "config" not in blob:
        raise UserInputError(f"{path} is not an lstm-search checkpoint (no 'model'/'config' keys)")
    cfg = TrainConfig.from_dict(blob["config"])
    model = build_model(cfg)
    model.load_state_dict(blob["model"])
    extra = {k: v for k, v in blob.items() if k not in ("model", "config")}
    return model, cfg, extra
