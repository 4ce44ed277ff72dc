"""`lstm-search launch`: create or resume a study and run it to N finished trials."""

from __future__ import annotations

import argparse
import logging

import optuna

from model.config import PRESETS, TrainConfig
from model.errors import UserInputError
from search.artifacts import add_artifacts_arg, open_artifact_store
from search.commands._common import HELP_FORMAT, add_data_args, add_storage_arg, load_data, setup_hardware
from search.launch import format_params, run_trials
from search.objective import Objective
from search.space import BUILTIN_SPACES, load_space
from search.study import (
    PRUNERS, SAMPLERS, create_or_resume, existing_trial_count, make_pruner, make_sampler, open_storage,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "launch", help="run (or resume) a hyperparameter study",
        description="Create the study if it is new (the V1 baseline runs first), otherwise "
        "resume it, and run trials until it holds N finished (complete or pruned) trials.",
        formatter_class=HELP_FORMAT,
    )
    p.add_argument("--study", required=True, help="study name; an existing name resumes that study")
    p.add_argument("--n-trials", type=int, required=True,
                   help="stop when the study holds this many finished trials in total")
    p.add_argument("--timeout", type=float, default=None, help="stop starting new trials after S seconds")
    add_storage_arg(p)
    add_artifacts_arg(p)
    p.add_argument("--space", default="default",
                   help=f"search space: a TOML file or a built-in name ({', '.join(BUILTIN_SPACES)})")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="Optuna sampler")
    p.add_argument("--pruner", choices=PRUNERS, default="hyperband", help="pruner over epochs")
    p.add_argument("--seed", type=int, default=0, help="seeds the sampler, the split and every trial's init")
    add_data_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.add_argument("--dry-run", action="store_true",
                   help="check every input and print the plan; touch no study")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Validate everything before the storage is touched: bad input writes nothing.
    if args.n_trials < 1:
        raise UserInputError(f"--n-trials must be >= 1 (got {args.n_trials})")
    if args.timeout is not None and args.timeout <= 0:
        raise UserInputError(f"--timeout must be > 0 seconds (got {args.timeout})")
    space = load_space(args.space)
    base = TrainConfig(seed=args.seed)
    make_sampler(args.sampler, args.seed)  # validates the name before anything is written
    pruner = make_pruner(args.pruner, space.max_epochs(base))
    device = setup_hardware(args)
    if args.dry_run:
        print(f"study {args.study!r} in {args.storage}: {args.n_trials} trials, sampler {args.sampler}, "
              f"pruner {args.pruner}, device {device}")
        print("space (" + space.source + "):\n  " + "\n  ".join(space.describe()))
        load_data(args, seed=args.seed)
        print("data: ok; dry run, nothing written")
        return 0
    data = load_data(args, seed=args.seed)
    store = open_artifact_store(args.storage, args.artifacts)  # before the study: a bad folder writes nothing
    storage = open_storage(args.storage)
    sampler = make_sampler(args.sampler, args.seed + existing_trial_count(storage, args.study))
    settings = {
        "space": space.source, "space_description": space.describe(), "sampler": args.sampler,
        "pruner": args.pruner, "seed": args.seed, "val_size": args.val_size, "subset": args.subset,
    }
    optuna.logging.set_verbosity(logging.WARNING)  # one line per trial comes from run_trials
    study, created = create_or_resume(
        args.study, storage, sampler, pruner, space, PRESETS["v1"].with_overrides(seed=args.seed), settings,
    )
    print(("created" if created else "resuming") + f" study {args.study!r} in {args.storage} "
          f"({len(data.train_y)} train / {len(data.val_y)} validation images, device {device})")
    objective = Objective(space=space, base=base, data=data, device=device, artifact_store=store)
    summary = run_trials(study, objective, args.n_trials, timeout=args.timeout, progress=not args.no_progress)
    print(f"finished {summary.ran} trial(s) in {summary.seconds:.0f}s; study holds {summary.complete} complete, "
          f"{summary.pruned} pruned, {summary.failed} failed")
    if summary.best_number is not None:
        best = study.best_trial
        print(f"best: trial {best.number}, val acc {100 * best.value:.2f}% | {format_params(best.params)}")
    return 0
