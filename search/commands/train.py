"""`lstm-search train`: one configuration, lab-style logs, then the test accuracy."""

from __future__ import annotations

import argparse

from model.checkpoint import save_checkpoint
from model.config import PRESETS, TrainConfig
from model.data import MNIST_TEST_IMAGES, MNIST_TRAIN_IMAGES, load_test
from model.errors import UserInputError
from model.memory import check_fits, data_bytes
from model.train import NonFiniteLossError, evaluate, fit
from search.best import best_config
from search.commands._common import (
    HELP_FORMAT,
    add_config_args,
    add_data_args,
    add_storage_arg,
    config_from_args,
    setup_hardware,
    study_name_arg,
)
from search.commands._existing import open_existing_study
from search.commands._paths import check_output_file
from search.runner import prepare_kernels
from search.settings import check_data_flags, load_data

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
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="starting configuration: template = the lab's handout, v1 = the usual "
                   "hand-tuned answer (default: v1)")
    p.add_argument("--study", type=study_name_arg(), default=None,
                   help="start from a stored trial's recorded config instead of a preset: --trial N, "
                   "else the study's V2 (the best mean over repeats, as `report` picks it)")
    p.add_argument("--trial", type=int, default=None,
                   help="number of the trial of --study to retrain (any trial, repeats included)")
    add_storage_arg(p)
    add_config_args(p)
    add_data_args(p)
    p.add_argument("--checkpoint", default=None, help="save {model, config} here after training")
    p.add_argument("--log-every", type=int, default=100, help="print the loss every N steps")
    p.add_argument("--dry-run", action="store_true",
                   help=f"one epoch of {DRY_RUN_STEPS} steps, to check that everything runs")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_data_flags(args)  # --val-size 0 is allowed here: the epochs then go unscored
    if args.checkpoint:  # before the run, not after it: a bad path would waste the training
        check_output_file(args.checkpoint, "--checkpoint", args.storage)
    cfg = config_from_args(args, base=stored_trial_config(args))
    if args.dry_run:
        cfg = cfg.with_overrides(epochs=1)
    device = setup_hardware(args)
    # Refuse a model that cannot fit before spending minutes loading data and allocating.
    n_images = (args.subset or MNIST_TRAIN_IMAGES - args.val_size) + args.val_size + MNIST_TEST_IMAGES
    check_fits(cfg, extra_bytes=data_bytes(n_images), device=device, what="training this configuration")
    data = load_data(args, seed=cfg.seed)
    test_x, test_y = load_test(args.data_root)
    print(f"config: {cfg}")
    print(f"data: {len(data.train_y)} train / {len(data.val_y)} validation images, device {device}")
    prepare_kernels(device)  # the compiler, if needed, runs before the first timed epoch
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


def stored_trial_config(args: argparse.Namespace) -> TrainConfig | None:
    """The config recorded by ``--trial N`` of ``--study S``, or with ``--study S`` alone
    V2's (search/best.py); None without them."""
    if args.study is None and args.trial is None:
        return None
    if args.study is None:
        raise UserInputError("--trial needs --study: --study NAME [--trial NUMBER]")
    if args.preset is not None:
        raise UserInputError("--preset and --study/--trial both choose the starting config; pass one")
    study = open_existing_study(args.storage, args.study)
    if args.trial is None:
        best = best_config(study)
        if best is None or not isinstance(best.v2.config, dict):
            raise UserInputError(f"study {args.study!r} has no complete trial yet; pass --trial NUMBER "
                                 "or run `lstm-search launch` first")
        print(f"V2 of study {args.study!r}: trial {best.number}, val acc {best.v2.text()}")
        return TrainConfig.from_dict(best.v2.config)
    numbers = [t.number for t in study.get_trials(deepcopy=False)]
    if args.trial not in numbers:
        have = f"trials 0-{max(numbers)}" if numbers else "no trials"
        raise UserInputError(f"study {args.study!r} has no trial {args.trial} (it has {have})")
    stored = study.get_trials(deepcopy=False)[numbers.index(args.trial)].user_attrs.get("config")
    if not isinstance(stored, dict):
        raise UserInputError(f"trial {args.trial} of study {args.study!r} recorded no config "
                             "(it failed before training); pick a complete or pruned trial")
    return TrainConfig.from_dict(stored)
