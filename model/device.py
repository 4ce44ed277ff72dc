"""Pick the torch device: CUDA when present (``auto``), or what the user forces."""

from __future__ import annotations

import torch

from model.errors import UserInputError

__all__ = ["DEVICES", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    if name not in DEVICES:
        raise UserInputError(f"--device must be one of {', '.join(DEVICES)} (got {name!r})")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserInputError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    return torch.device(name)
