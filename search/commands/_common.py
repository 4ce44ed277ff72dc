"""Flags shared by several subcommands, declared, checked and applied once (the data they
name is loaded by search/settings.py's ``load_data``, for launch and train alike)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields

import torch

from model.config import (
    CELLS,
    OPTIMIZERS,
    PRECISIONS,
    PRESETS,
    RECURRENT_INITS,
    SCHEDULES,
    TrainConfig,
    field_flag,
)
from model.data import DATA_ENV, MNIST_TRAIN_IMAGES
from model.device import DEVICES, resolve_device
from model.errors import UserInputError
from search.names import check_study_name
from search.storage import DEFAULT_STORAGE

__all__ = [
    "HELP_FORMAT",
    "add_config_args",
    "add_data_args",
    "add_storage_arg",
    "config_from_args",
    "setup_hardware",
    "study_name_arg",
]


class HelpFormat(argparse.ArgumentDefaultsHelpFormatter):
    """Show "(default: X)" only where there is a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


HELP_FORMAT = HelpFormat
# String fields get their allowed values as argparse choices (listed in --help).
_CHOICES = {"cell": CELLS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "recurrent_init": RECURRENT_INITS,
            "precision": PRECISIONS}


def study_name_arg(flag: str = "--study") -> Callable[[str], str]:
    """An argparse ``type`` for a study name: the rule of search/names.py, as a usage error."""

    def parse(text: str) -> str:
        try:
            return check_study_name(text, flag)
        except UserInputError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(flag + " ")) from None

    parse.__name__ = "study name"  # what argparse calls the type in messages
    return parse


def add_data_args(p: argparse.ArgumentParser, validation: bool = True) -> None:
    """The data and hardware flags, declared once for every command that trains.

    ``validation=False`` for commands that train on all training images (report,
    compare-cells): they have no validation split to size.
    """
    g = p.add_argument_group("data and hardware")
    g.add_argument("--data-root", default=None,
                   help=f"folder holding MNIST/raw (default: ${DATA_ENV}, else ./data; downloaded if absent)")
    if validation:
        g.add_argument("--val-size", type=int, default=5000,
                       help=f"validation images held out of the {MNIST_TRAIN_IMAGES:,} training images "
                       "(stratified, seeded)")
    g.add_argument("--subset", type=int, default=None,
                   help="train on only N (stratified) training images, for quick runs")
    g.add_argument("--device", choices=DEVICES, default="auto", help="where to train; auto uses CUDA when present")
    g.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice, all cores)")


def add_storage_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default=DEFAULT_STORAGE,
                   help="Optuna storage URL: SQLite file, or postgresql://user:pass@host/db for many machines")


def add_config_args(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (--hidden-size, --lr, ...), overriding the preset."""
    g = p.add_argument_group("hyperparameters (override the preset)")
    for f in fields(TrainConfig):
        kind = {"int": int, "float": float, "str": str}[str(f.type)]
        preset_values = ", ".join(f"{name}: {getattr(cfg, f.name)}" for name, cfg in PRESETS.items())
        g.add_argument(field_flag(f.name), dest=f.name, type=kind, default=None, choices=_CHOICES.get(f.name),
                       help=f"default: the preset's ({preset_values})")


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (else the --preset, v1 when none is given) with the flags given on top."""
    base = base or PRESETS[getattr(args, "preset", None) or "v1"]
    return base.with_overrides(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


def setup_hardware(args: argparse.Namespace) -> torch.device:
    """Apply --threads and resolve --device; check_data_flags has checked them already."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return resolve_device(args.device)
