"""`lstm-search train`: one configuration, lab-style logs, then the test accuracy."""

from __future__ import annotations

import argparse

from model.checkpoint import save_checkpoint
from model.config import PRESETS
from model.data import load_test
from model.memory import check_fits, data_bytes
from model.errors import UserInputError
from model.train import NonFiniteLossError, evaluate, fit
from search.commands._common import (
    HELP_FORMAT, add_config_args, add_data_args, config_from_args, load_data, setup_hardware,
)
from search.commands._paths import check_output_file

DRY_RUN_STEPS = 5


def diverged_hint(exc: NonFiniteLossError) -> str:
    """A diverged run is the configuration's fault, not a bug: one line saying what to change."""
    return f"{exc}: this configuration diverges; lower --lr or set --grad-clip"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train one configuration and report its test accuracy",
        description="Train one configuration (a preset plus overrides), log each step and "
        "epoch like the lab's script, then evaluate once on the 10,000 test images.",
        formatter_class=HELP_FORMAT,
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="v1",
                   help="starting configuration: template = the lab's handout, v1 = the usual hand-tuned answer")
    add_config_args(p)
    add_data_args(p)
    p.add_argument("--checkpoint", default=None, help="save {model, config} here after training")
    p.add_argument("--log-every", type=int, default=100, help="print the loss every N steps")
    p.add_argument("--dry-run", action="store_true",
                   help=f"one epoch of {DRY_RUN_STEPS} steps, to check that everything runs")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.checkpoint:  # before the run, not after it: a bad path would waste the training
        check_output_file(args.checkpoint, "--checkpoint")
    cfg = config_from_args(args)
    if args.dry_run:
        cfg = cfg.with_overrides(epochs=1)
    device = setup_hardware(args)
    # Refuse a model that cannot fit before spending minutes loading data and allocating.
    n_images = (args.subset or 60_000 - args.val_size) + args.val_size + 10_000  # + the test set
    check_fits(cfg, extra_bytes=data_bytes(n_images), device=device, what="training this configuration")
    data = load_data(args, seed=cfg.seed)
    test_x, test_y = load_test(args.data_root)
    print(f"config: {cfg}")
    print(f"data: {len(data.train_y)} train / {len(data.val_y)} validation images, device {device}")
    # With no validation split (--val-size 0) the per-epoch score is skipped, not faked.
    try:
        result = fit(
            cfg, data.train_x, data.train_y, data.val_x, data.val_y, device=device,
            log=print, log_every=max(1, args.log_every),
            max_steps=DRY_RUN_STEPS if args.dry_run else None,
        )
    except NonFiniteLossError as exc:
        raise UserInputError(diverged_hint(exc)) from None
    _, test_acc = evaluate(result.model, test_x.to(device), test_y.to(device))
    epoch_s = sum(s.seconds for s in result.history) / len(result.history)
    print(f"Test Accuracy of the model on the {len(test_y)} test images: {100 * test_acc:.2f} %")
    print(f"mean epoch time {epoch_s:.1f}s")
    if args.checkpoint:
        path = save_checkpoint(args.checkpoint, result.model, cfg, test_acc=test_acc,
                               history=[s._asdict() for s in result.history])
        print(f"checkpoint saved to {path}")
    return 0
