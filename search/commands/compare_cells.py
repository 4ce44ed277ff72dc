"""`lstm-search compare-cells`: LSTM vs GRU vs simple RNN, same config, same budget."""

from __future__ import annotations

import argparse
import logging

import optuna

from model.config import CELLS
from model.device import DEVICES
from model.errors import UserInputError
from model.memory import check_fits, data_bytes
from model.train import NonFiniteLossError
from search.commands._common import HELP_FORMAT, add_storage_arg, setup_hardware
from search.commands._existing import open_existing_study
from search.commands.train import diverged_hint


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare-cells", help="train the LSTM, GRU and simple RNN with the same config and budget",
        description="Answer 'simple RNN or LSTM?' by measurement: train each hand-written cell with "
        "the same config (only the cell differs), score each once on the test set, and tabulate "
        "test accuracy, parameters and time per epoch. With --study the table is stored in the "
        "study and `lstm-search report` includes it.",
        formatter_class=HELP_FORMAT,
    )
    p.add_argument("--study", default=None, help="store the result in this study (and take configs from it)")
    add_storage_arg(p)
    p.add_argument("--config", default="v1",
                   help="the shared config: v1, template, best (the study's best trial, needs --study) "
                   "or a JSON file of config fields")
    p.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells to train")
    p.add_argument("--epochs", type=int, default=None, help="override the config's epochs (the budget)")
    p.add_argument("--hidden-size", type=int, default=None, help="override the config's hidden size")
    g = p.add_argument_group("data and hardware")
    g.add_argument("--data-root", default=None, help="folder holding MNIST/raw (default: $LSTM_SEARCH_DATA, else ./data)")
    g.add_argument("--subset", type=int, default=None, help="train on only N training images")
    g.add_argument("--device", choices=DEVICES, default="auto", help="where to train")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # pandas and the report package only when this command runs, not at every CLI start.
    from search.report.cells import compare_cells, store_comparison
    from search.report.collect import best_config, config_from_choice, resolve_baseline
    from search.report.retrain import load_final_data
    from search.report.tables import cells_table, to_markdown

    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    bad = [c for c in cells if c not in CELLS]
    if not cells or bad:
        raise UserInputError(f"--cells must list some of {', '.join(CELLS)} (got {args.cells!r})")
    if args.subset is not None and not 0 < args.subset <= 60_000:
        raise UserInputError(f"--subset must be between 1 and 60000 (got {args.subset})")
    study = None
    if args.study is not None:
        study = open_existing_study(args.storage, args.study)
        optuna.logging.set_verbosity(logging.WARNING)
    if args.config == "best":
        if study is None:
            raise UserInputError("--config best needs --study")
        cfg, _ = best_config(study)
    elif study is not None:
        cfg, _ = resolve_baseline(study, args.config, "--config")
    else:
        cfg, _ = config_from_choice(args.config, flag="--config")
    cfg = cfg.with_overrides(epochs=args.epochs, hidden_size=args.hidden_size)
    device = setup_hardware(args)
    check_fits(cfg, extra_bytes=data_bytes(70_000), device=device, what="training this configuration")
    data = load_final_data(args.data_root, args.subset)
    try:
        results = compare_cells(cfg, data, cells, device=device, log=print)
    except NonFiniteLossError as exc:
        raise UserInputError(diverged_hint(exc)) from None
    print(to_markdown(cells_table(results)))
    if study is not None:
        store_comparison(study, cfg, results)
        print(f"stored in study {study.study_name!r}; `lstm-search report --study {study.study_name}` includes it")
    return 0
