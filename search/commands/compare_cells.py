"""`lstm-search compare-cells`: LSTM vs GRU vs simple RNN, each tuned on the same budget,
then tested at several sequence lengths of the same images.

This module checks the flags and runs the steps in order; the tuning is
search/cell_tuning.py, the test runs and the comparison stored in the study are
search/report/cells.py.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna
import torch

from model.config import CELLS, PIXELS, TrainConfig, check_seed
from model.data import MNIST_TRAIN_IMAGES, load_splits
from model.errors import UserInputError
from model.memory import check_fits, data_bytes
from model.train import NonFiniteLossError
from search.cell_tuning import PRUNER, SAMPLER, tune_cell, tuning_study
from search.commands._common import (
    HELP_FORMAT,
    add_data_args,
    add_storage_arg,
    setup_hardware,
    study_name_arg,
)
from search.commands._existing import open_existing_storage
from search.commands.train import diverged_hint
from search.runner import prepare_kernels
from search.settings import check_data_flags, check_range
from search.space import SearchSpace, load_space
from search.study import load_existing_study

if TYPE_CHECKING:  # pandas and the report package are imported only when the command runs
    from search.report.retrain import FinalData
    from search.report.tables import CellResult

TUNE_TRIALS = 8
TUNE_SUBSET = 10_000
TUNE_VAL = 5_000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare-cells", help="tune the LSTM, GRU and simple RNN on the same budget, test them at several lengths",
        description="Answer 'simple RNN or LSTM?' by experiment: give each hand-written cell the same "
        "small tuning budget (a short study of its own: --trials trials of --space on --tune-subset "
        "training images, scored on a validation split), then retrain each cell's best config on the "
        "training images and score it on the test set with the images read in each of --steps time "
        "steps (14 = two rows a step, 28 = rows, 56 = half rows, 112 = quarter rows, 784 = pixels). "
        "With --study the result is stored in the study and `lstm-search report` includes it; "
        "the tuning studies are kept beside it as STUDY.cells.CELL (rerunning resumes them).",
        formatter_class=HELP_FORMAT,
    )
    p.add_argument("--study", type=study_name_arg(), default=None,
                   help="store the result in this study (and take configs from it)")
    add_storage_arg(p)
    p.add_argument("--config", default="v1",
                   help="the base config (fields the space does not search): v1, template, best (the "
                   "study's best trial, needs --study) or a JSON file of config fields")
    p.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells to compare")
    p.add_argument("--steps", default="14,28,56,112",
                   help="comma-separated sequence lengths to test (divisors of 784; 784 = one pixel a step, "
                   "about 28x the time of 28)")
    g = p.add_argument_group("tuning budget (the same for every cell)")
    g.add_argument("--trials", type=int, default=TUNE_TRIALS,
                   help="finished trials per cell; 0 skips tuning and tests --config itself")
    g.add_argument("--space", default="quick", help="search space: a built-in name (default, quick) or a TOML file")
    g.add_argument("--tune-subset", type=int, default=TUNE_SUBSET, help="training images per tuning trial")
    g.add_argument("--val-size", type=int, default=TUNE_VAL, help="validation images the tuning trials are scored on")
    g.add_argument("--seed", type=int, default=0, help="seed of each cell's sampler")
    g.add_argument("--epochs", type=int, default=None, help="override the base config's epochs (with --trials 0)")
    g.add_argument("--hidden-size", type=int, default=None, help="override the base config's hidden size")
    add_data_args(p, validation=False)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Tune each cell, retrain its best at each step count, print and store the table."""
    cells, steps = _checked_args(args)
    space = load_space(args.space) if args.trials else None
    storage, study = _open_study(args)
    base = _base_config(args, study)
    device = setup_hardware(args)
    check_fits(base, extra_bytes=data_bytes(70_000), device=device, what="training this configuration")
    prepare_kernels(device)  # before the first timed run (seconds per epoch are reported)
    if space is not None:
        tuned, tuned_val = _tune(args, cells, space, base, storage, device)
    else:
        tuned = {cell: base.with_overrides(cell=cell) for cell in cells}
        tuned_val = dict.fromkeys(cells)
    results = _test(args, tuned, steps, device)
    _show_and_store(args, study, tuned, tuned_val, results)
    return 0


def _checked_args(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    """The cells and step counts asked for, after every flag is checked (before any work)."""
    cells = _listed(args.cells, "--cells", f"some of {', '.join(CELLS)}", lambda c: c in CELLS)
    steps = [int(n) for n in _listed(args.steps, "--steps", f"divisors of {PIXELS} such as 14,28,56,112,784",
                                     lambda n: n.isdigit() and int(n) > 0 and PIXELS % int(n) == 0)]
    # The bounds launch and train use (one wording, search/settings.py check_range).
    check_range("--val-size", args.val_size, 1, MNIST_TRAIN_IMAGES - 1)
    check_range("--tune-subset", args.tune_subset, 1, MNIST_TRAIN_IMAGES - args.val_size)
    check_range("--trials", args.trials, 0, MNIST_TRAIN_IMAGES)
    check_data_flags(args)  # --subset of the final runs, which train on all training images
    check_seed(args.seed)
    return cells, steps


def _open_study(args: argparse.Namespace) -> tuple[optuna.storages.BaseStorage | None, optuna.Study | None]:
    """--study's storage and study, or (None, None) without --study."""
    if args.study is None:
        return None, None
    # A mistyped SQLite path is refused, not created (search/commands/_existing.py).
    storage = open_existing_storage(args.storage, heartbeat=False)
    study = load_existing_study(args.study, storage)
    optuna.logging.set_verbosity(logging.WARNING)
    return storage, study


def _base_config(args: argparse.Namespace, study: optuna.Study | None) -> TrainConfig:
    """--config (v1, template, best or a JSON file) with --epochs / --hidden-size on top, at 28 steps."""
    from search.report.collect import best_config, config_from_choice, resolve_baseline

    if args.config == "best":
        if study is None:
            raise UserInputError("--config best needs --study")
        base, _ = best_config(study)
    elif study is not None:
        base, _ = resolve_baseline(study, args.config, "--config")
    else:
        base, _ = config_from_choice(args.config, flag="--config")
    return base.with_overrides(epochs=args.epochs, hidden_size=args.hidden_size, steps=28)


def _tune(
    args: argparse.Namespace, cells: list[str], space: SearchSpace, base: TrainConfig,
    storage: optuna.storages.BaseStorage | None, device: torch.device,
) -> tuple[dict[str, TrainConfig], dict[str, float | None]]:
    """Each cell's best config and its validation accuracy, from its own tuning study
    (kept beside --study as STUDY.cells.CELL, else in memory)."""
    optuna.logging.set_verbosity(logging.WARNING)
    data = load_splits(args.data_root, val_size=args.val_size, subset=args.tune_subset, seed=0)
    where = storage if storage is not None else optuna.storages.InMemoryStorage()
    tuned: dict[str, TrainConfig] = {}
    tuned_val: dict[str, float | None] = {}
    for cell in cells:
        name = f"{args.study or 'compare-cells'}.cells.{cell}"
        print(f"{cell}: tuning, {args.trials} trials of space {args.space} (study {name})")
        tune = tuning_study(where, name, cell, space, base, seed=args.seed)
        try:
            cfg, val = tune_cell(tune, cell, space, base, data, args.trials, device=device, log=print)
        except ValueError:
            raise UserInputError(f"no {cell} trial completed within --trials {args.trials}; "
                                 "raise --trials or widen --space") from None
        tuned[cell], tuned_val[cell] = cfg, val
        print(f"{cell}: best val acc {100 * val:.2f}%")
    return tuned, tuned_val


def _test(args: argparse.Namespace, tuned: dict[str, TrainConfig], steps: list[int],
          device: torch.device) -> list[CellResult]:
    """Each tuned config retrained on the training images and tested at each step count."""
    from search.report.cells import compare_cells
    from search.report.retrain import load_final_data

    cache: dict[int, FinalData] = {}

    def final_data(seed: int) -> FinalData:
        if seed not in cache:
            cache.clear()  # one copy of the training images at a time
            cache[seed] = load_final_data(args.data_root, args.subset, seed=seed)
        return cache[seed]

    try:
        return compare_cells(tuned, final_data, steps, device=device, log=print)
    except NonFiniteLossError as exc:
        raise UserInputError(diverged_hint(exc)) from None


def _show_and_store(args: argparse.Namespace, study: optuna.Study | None, tuned: dict[str, TrainConfig],
                    tuned_val: dict[str, float | None], results: list[CellResult]) -> None:
    """Print the two tables and their sentences; with --study, store the comparison in it."""
    from search.report.cells import Comparison, store_comparison
    from search.report.narrative import describe_cells
    from search.report.tables import cells_table, to_markdown, tuned_cells_table

    tuning = bool(args.trials)
    budget = {"trials": args.trials, "space": args.space if tuning else None,
              "tune_images": args.tune_subset if tuning else None, "val_images": args.val_size if tuning else None,
              "final_images": results[0].train_images, "sampler": SAMPLER, "pruner": PRUNER}
    comparison = Comparison(budget, {c: cfg.to_dict() for c, cfg in tuned.items()}, tuned_val, results)
    print(to_markdown(tuned_cells_table(comparison.tuned, tuned_val, results)))
    print(to_markdown(cells_table(results)))
    print(describe_cells(results))
    if study is not None:
        store_comparison(study, comparison)
        print(f"stored in study {study.study_name!r}; `lstm-search report --study {study.study_name}` includes it")


def _listed(text: str, flag: str, what: str, ok: Callable[[str], bool]) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items or not all(ok(t) for t in items):
        raise UserInputError(f"{flag} must list {what} (got {text!r})")
    return list(dict.fromkeys(items))
