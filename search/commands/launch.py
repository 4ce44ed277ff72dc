"""`lstm-search launch`: create or resume a study and run it to N finished trials."""

from __future__ import annotations

import argparse
import logging
import time

import optuna
import torch

from model.config import PRECISIONS, PRESETS, TrainConfig
from model.errors import UserInputError
from search.artifacts import add_artifacts_arg, open_artifact_store
from search.commands._common import HELP_FORMAT, add_data_args, add_storage_arg, load_data, setup_hardware
from search.launch import format_params, run_trials
from search.objective import Objective
from search.space import BUILTIN_SPACES, SearchSpace, load_space
from search.study import (
    PRUNERS, SAMPLERS, create_or_resume, existing_trial_count, load_existing_study, make_pruner, make_sampler,
    open_storage, sampler_seed,
)
from search.workers import WorkerPlan, plan_workers, run_workers

MNIST_TRAIN = 60_000


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
    p.add_argument("--timeout", type=float, default=None, help="time budget in seconds: no trial starts after it, and trials still training stop "
                   "(pruned) at their next epoch end")
    add_storage_arg(p)
    add_artifacts_arg(p)
    p.add_argument("--space", default="default",
                   help=f"search space: a TOML file or a built-in name ({', '.join(BUILTIN_SPACES)})")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="Optuna sampler")
    p.add_argument("--pruner", choices=PRUNERS, default="hyperband", help="pruner over epochs")
    p.add_argument("--seed", type=int, default=0, help="seeds the sampler, the split and every trial's init")
    add_worker_args(p)
    add_data_args(p)
    # Precision (issue 16): every trial, the baseline included, trains in it.
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32, bf16 (autocast matmuls), or auto = bf16 only where a start-up probe finds it faster")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.add_argument("--dry-run", action="store_true",
                   help="check every input and print the plan; touch no study")
    p.set_defaults(run=run, spawned=False)


def add_worker_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("workers (several processes or machines on one study)")
    g.add_argument("--workers", default="auto",
                   help="worker processes on this machine: a number, or auto = as many as there are "
                   "cores and RAM for (1 on a GPU); threads are split between them; 1 = this process only")
    g.add_argument("--worker-index", type=int, default=0,
                   help="give each copy started by hand (or on another machine) its own index, so "
                   "their samplers draw different configurations")
    g.add_argument("--resume", action="store_true",
                   help="only join an existing study (an unknown name is an error, not a new study): "
                   "for workers on other machines")


def run(args: argparse.Namespace) -> int:
    # Validate everything before the storage is touched: bad input writes nothing.
    if args.n_trials < 1:
        raise UserInputError(f"--n-trials must be >= 1 (got {args.n_trials})")
    if args.timeout is not None and args.timeout <= 0:
        raise UserInputError(f"--timeout must be > 0 seconds (got {args.timeout})")
    # One absolute deadline for the whole command, handed to spawned workers unchanged, so
    # a worker restarted after a crash does not get a fresh budget. Data loading counts.
    if getattr(args, "deadline", None) is None:
        args.deadline = None if args.timeout is None else time.time() + args.timeout
    deadline: float | None = args.deadline
    space = load_space(args.space)
    base = TrainConfig(seed=args.seed, precision=args.precision)
    make_sampler(args.sampler, args.seed)  # validates the name before anything is written
    pruner = make_pruner(args.pruner, space.max_epochs(base), space.min_epochs(base))
    if args.worker_index < 0:
        raise UserInputError(f"--worker-index must be >= 0 (got {args.worker_index})")
    device = setup_hardware(args)
    plan = _plan(args, space, base, device)
    if args.dry_run:
        print(f"study {args.study!r} in {args.storage}: {args.n_trials} trials, sampler {args.sampler}, "
              f"pruner {args.pruner}, device {device}, {plan.workers} worker(s) x {plan.threads} thread(s)")
        print("space (" + space.source + "):\n  " + "\n  ".join(space.describe()))
        load_data(args, seed=args.seed)
        print("data: ok; dry run, nothing written")
        return 0
    data = load_data(args, seed=args.seed)
    storage = open_storage(args.storage)
    store = open_artifact_store(args.storage, args.artifacts)  # before the study: a bad folder adds no study
    if args.resume:
        load_existing_study(args.study, storage)  # an unknown name is an error, nothing is created
    seed = sampler_seed(args.seed, existing_trial_count(storage, args.study), args.worker_index)
    sampler = make_sampler(args.sampler, seed)
    settings = {
        "space": space.source, "space_description": space.describe(), "sampler": args.sampler,
        "pruner": args.pruner, "seed": args.seed, "val_size": args.val_size, "subset": args.subset,
    }
    optuna.logging.set_verbosity(logging.WARNING)  # one line per trial comes from run_trials
    study, created = create_or_resume(
        args.study, storage, sampler, pruner, space, PRESETS["v1"].with_overrides(seed=args.seed, precision=args.precision), settings,
    )
    if not args.spawned:
        print(("created" if created else "resuming") + f" study {args.study!r} in {args.storage} "
              f"({len(data.train_y)} train / {len(data.val_y)} validation images, device {device}"
              + (f", {plan.workers} workers x {plan.threads} thread(s))" if plan.workers > 1 else ")"))
    if plan.workers > 1:
        del data  # each worker loads its own copy
        code = run_workers(args, plan, study, progress=not args.no_progress)
        _print_summary(study)
        return code
    objective = Objective(space=space, base=base, data=data, device=device, artifact_store=store,
                          deadline=deadline)
    echo = (lambda line: print(f"[worker {args.worker_index}] {line}", flush=True)) if args.spawned else None
    timeout = None if deadline is None else max(0.0, deadline - time.time())
    summary = run_trials(study, objective, args.n_trials, timeout=timeout,
                         progress=not args.no_progress, echo=echo)
    if args.spawned:
        return 0  # the parent prints one summary for all workers
    print(f"finished {summary.ran} trial(s) in {summary.seconds:.0f}s")
    _print_summary(study)
    return 0


def _plan(args: argparse.Namespace, space: SearchSpace, base: TrainConfig, device: torch.device) -> WorkerPlan:
    """Workers and threads for this machine; refuses a space whose largest trial cannot fit."""
    n_images = (args.subset if args.subset else MNIST_TRAIN - args.val_size) + args.val_size
    if args.spawned:  # the parent planned already; a worker runs single-process
        return WorkerPlan(workers=1, threads=args.threads or 1, per_worker_bytes=0)
    plan = plan_workers(args.workers, args.threads, space, base, n_images, device)
    if plan.workers > 1:
        args.threads = plan.threads  # what each spawned worker passes to torch.set_num_threads
    return plan


def _print_summary(study: optuna.Study) -> None:
    trials = study.get_trials(deepcopy=False)
    count = {state: sum(t.state == state for t in trials) for state in optuna.trial.TrialState}
    TS = optuna.trial.TrialState
    print(f"study holds {count[TS.COMPLETE]} complete, {count[TS.PRUNED]} pruned, {count[TS.FAIL]} failed"
          + (f", {count[TS.RUNNING]} running" if count[TS.RUNNING] else "")
          + (f", {count[TS.WAITING]} waiting" if count[TS.WAITING] else ""))
    try:
        best = study.best_trial
    except ValueError:
        return
    print(f"best: trial {best.number}, val acc {100 * best.value:.2f}% | {format_params(best.params)}")
