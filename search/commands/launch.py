"""`lstm-search launch`: create or resume a study and run it to N finished trials."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os

import optuna
from optuna.trial import FrozenTrial

from model.config import PRECISIONS, PRESETS
from model.device import resolve_device
from model.errors import UserInputError
from search.artifacts import add_artifacts_arg, artifact_dir_for, open_artifact_store
from search.best import TIE_Z, best_config
from search.commands._common import HELP_FORMAT, add_data_args, add_storage_arg, study_name_arg
from search.commands._existing import (
    MissingStorageError,
    check_writable_storage,
    open_existing_storage,
    open_existing_study,
)
from search.commands._paths import check_output_dir, study_files
from search.confirm import DEFAULT_CONFIRM_SEEDS, DEFAULT_CONFIRM_SHARE, DEFAULT_CONFIRM_TOP, MAX_CONFIRM_SHARE
from search.prior import BUILTIN, BUILTIN_STUDY, add_prior, builtin_storage, check_compatible, is_prior, prior_trials
from search.progress import format_params
from search.pruning import DEFAULT_PRUNE_BY, DEFAULT_PRUNER, PRUNE_BY, PRUNERS
from search.redact import redact_url
from search.runner import prepare_kernels
from search.samplers import DEFAULT_SAMPLER, DEFAULT_TPE_STARTUP, SAMPLERS, make_sampler
from search.settings import LaunchSettings, load_data, settings_differences
from search.space import BUILTIN_SPACES
from search.storage import StudyError, check_connections, open_storage, storage_errors, sweep_stale_trials
from search.study import check_resumable, create_or_resume, load_existing_study, requeue_lost_baseline
from search.warm_start import (
    DEFAULT_WARM_START_K,
    WarmStart,
    enqueue_warm_start,
    trials_missing,
    warm_start_configs,
)
from search.worker_plan import plan_workers
from search.workers import run_worker, run_workers

__all__ = ["open_study", "register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "launch", help="run (or resume) a hyperparameter study",
        description="Create the study if it is new (the V1 baseline runs first), otherwise "
        "resume it, and run trials until it holds N finished (complete or pruned) trials.",
        formatter_class=HELP_FORMAT,
    )
    p.add_argument("--study", type=study_name_arg(), required=True,
                   help="study name; an existing name resumes that study")
    p.add_argument("--n-trials", type=int, required=True,
                   help="stop when the study holds this many finished trials in total")
    p.add_argument("--timeout", type=float, default=None,
                   help="time budget in seconds: no trial starts after it, and trials still training stop "
                   "(pruned) at their next epoch end, or one sooner when that epoch would end past it")
    add_storage_arg(p)
    add_artifacts_arg(p)
    p.add_argument("--space", default="default",
                   help=f"search space: a TOML file or a built-in name ({', '.join(BUILTIN_SPACES)})")
    p.add_argument("--sampler", choices=SAMPLERS, default=DEFAULT_SAMPLER, help="Optuna sampler")
    p.add_argument("--tpe-startup", metavar="N", type=int, default=DEFAULT_TPE_STARTUP,
                   help="with --sampler tpe: trials drawn at random before TPE models the study's history "
                   "(prior copies count; may change on resume)")
    p.add_argument("--pruner", choices=PRUNERS, default=DEFAULT_PRUNER, help="pruner over epochs")
    p.add_argument("--prune-by", choices=PRUNE_BY, default=None,
                   help="what the pruner compares trials at: the same epoch, or the same percentage of "
                   "each trial's own epochs (the same point of its LR schedule); fixed per study "
                   f"(default: a resumed study's own, else {DEFAULT_PRUNE_BY})")
    p.add_argument("--floor", action="store_true",
                   help="also prune a trial that is below the V1 baseline's validation curve (by more than "
                   "the split's noise) from a third of its epochs on; off by default, see benchmarks/RESULTS.md")
    p.add_argument("--seed", type=int, default=0, help="seeds the sampler, the split and every trial's init")
    add_worker_args(p)
    g = p.add_argument_group("warm start (begin with the best configurations of an earlier study)")
    g.add_argument("--warm-start", metavar="STUDY", type=study_name_arg("--warm-start"), default=None,
                   help="enqueue the best complete configurations of STUDY, fitted to this space")
    g.add_argument("--warm-start-storage", metavar="URL", default=None,
                   help="storage of the --warm-start study (default: --storage)")
    g.add_argument("--warm-start-k", metavar="K", type=int, default=DEFAULT_WARM_START_K,
                   help="how many of its best configurations")
    g = p.add_argument_group("prior (an earlier study's trials in the sampler's history, not retrained)")
    g.add_argument("--prior", metavar="STUDY", type=study_name_arg("--prior"), default=None,
                   help="copy the finished trials of STUDY into this study's history so the sampler models "
                   "from the start; they never count toward --n-trials nor become V2. 'builtin': the "
                   "prior shipped for the default space")
    g.add_argument("--prior-storage", metavar="URL", default=None,
                   help="storage of the --prior study (default: --storage)")
    add_confirm_args(p)
    add_data_args(p)
    # Every trial, the baseline included, trains in this precision (one per study).
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32, bf16 (autocast matmuls), or auto = bf16 only where a start-up probe finds it faster")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.add_argument("--dry-run", action="store_true",
                   help="check every input and print the plan; touch no study")
    p.set_defaults(run=run)


def add_confirm_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "confirmation phase (repeats of the top configurations, so V2 is chosen from evidence)",
        "On 5,000 validation images the best trials lie within the split's noise of each other, so "
        "the launch ends by retraining the K best configurations with R other training seeds, as trials "
        "of the study (user attrs repeat_of, repeat_seed; never pruned). V2 is then, among the "
        "configurations tied with the best mean, the best confirmed one (run 2+ times). Repeats come on "
        "top of --n-trials; a resumed launch runs only the repeats still missing.")
    g.add_argument("--confirm-top", metavar="K", type=int, default=DEFAULT_CONFIRM_TOP,
                   help="configurations to repeat (3: the likeliest V2s; 6 trials with the "
                   "default seeds, small next to a search)")
    g.add_argument("--confirm-seeds", metavar="R", type=int, default=DEFAULT_CONFIRM_SEEDS,
                   help="other training seeds per configuration (2: three runs each, the fewest that "
                   "give a spread)")
    g.add_argument("--confirm-share", metavar="F", type=float, default=None,
                   help="with --timeout: the last fraction of the budget kept for the repeats (no search "
                   "trial starts after 1-F of it, and one then training stops unless at least half "
                   f"done and ending within the budget). Default: {DEFAULT_CONFIRM_SHARE:g}, stretched up to "
                   f"{MAX_CONFIRM_SHARE:g} while the best trial's own run is longer, so its repeats can "
                   "finish; a given F is not stretched. When the best trial's repeats cannot fit at all, the search "
                   "keeps the time. Without --timeout the repeats follow the N search trials")
    g.add_argument("--no-confirm", action="store_true", help="no confirmation phase (V2 = the best single trial)")


def add_worker_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("workers (several processes or machines on one study)")
    g.add_argument("--workers", default="auto",
                   help="worker processes on this machine: a number, or auto = as many as there are "
                   "cores and RAM for (1 on a GPU); threads are split between them; 1 = this process only")
    g.add_argument("--worker-index", type=int, default=0,
                   help="give each copy started by hand (or on another machine) its own index, so "
                   "their samplers draw different configurations")
    g.add_argument("--resume", action="store_true",
                   help="only join an existing study (an unknown name or a missing SQLite file is an error, "
                   "not a new study): "
                   "for workers on other machines")


def run(args: argparse.Namespace) -> int:
    # Everything is validated before the storage is touched: bad input writes nothing.
    settings = LaunchSettings.from_args(args)
    if args.prune_by is None:
        settings = _keep_stored_prune_by(settings)
    space, base = settings.space, settings.base
    pruner = settings.make_pruner()
    device = resolve_device(settings.device)
    plan = plan_workers(settings.workers, settings.threads, space, base, settings.n_images, device)
    check_connections(settings.storage, plan.workers)  # PostgreSQL: room for every worker's pool
    starts = _read_warm_start(settings)  # reads only: a bad source study writes nothing
    prior = _read_prior(settings)  # likewise
    if args.dry_run:
        study_line = _dry_run_study(settings)  # every check before the first line is printed
        load_data(settings, settings.seed)
        startup = f" ({settings.tpe_startup} random draws first)" if settings.sampler == "tpe" else ""
        print(f"study {settings.study!r} in {redact_url(settings.storage)}: {settings.n_trials} trials, sampler "
              f"{settings.sampler}{startup}, pruner {settings.pruner}, device {device}, "
              f"{plan.workers} worker(s) x {plan.threads} thread(s)")
        print("space (" + space.source + "):\n  " + "\n  ".join(space.describe()))
        print(_confirm_plan(settings, args.confirm_share))
        print(study_line)
        print("data: ok; dry run, nothing written")
        return 0
    _check_storage_writable(settings)  # before the data: a launch that cannot write stops at once
    data = load_data(settings, settings.seed)
    optuna.logging.set_verbosity(logging.WARNING)  # one line per trial comes from run_trials
    with storage_errors(settings.storage):
        study, created = open_study(settings, pruner)
        if prior:
            added = add_prior(study, prior)
            source = "the built-in prior (default space)" if settings.prior == BUILTIN else f"study {settings.prior!r}"
            print(f"prior: {added} finished trial(s) of {source} added to the sampler's history"
                  + (f" ({len(prior) - added} already in this study)" if added < len(prior) else ""))
        if starts:
            room = trials_missing(study, settings.n_trials)
            done = enqueue_warm_start(study, starts, limit=room)
            notes = [f"{done.present} already in this study"] if done.present else []
            if done.over:
                notes.append(f"{done.over} left out: the study needs only {room} more trial(s) to reach "
                             f"--n-trials {settings.n_trials}")
            print(f"warm start: queued {done.queued} configuration(s) of study {settings.warm_start!r}"
                  + (f" ({'; '.join(notes)})" if notes else ""))
    print(("created" if created else "resuming") + f" study {settings.study!r} in {redact_url(settings.storage)} "
          f"({len(data.train_y)} train / {len(data.val_y)} validation images, device {device}"
          + (f", {plan.workers} workers x {plan.threads} thread(s))" if plan.workers > 1 else ")"))
    prepare_kernels(device)  # here, once, before any worker or trial starts
    if plan.workers > 1:
        del data  # each worker loads its own copy
        code = run_workers(settings, plan, study)
        _print_summary(study)
        return code
    with storage_errors(settings.storage):
        summary = run_worker(settings, settings.worker_index, settings.threads, data=data,
                             progress=settings.progress)
    print(f"finished {summary.searched} trial(s) in {summary.seconds:.0f}s")
    _print_summary(study)
    return 0


def _confirm_plan(settings: LaunchSettings, share: float | None) -> str:
    plan, end = settings.confirm, settings.search_end
    if not plan.enabled:
        return "confirmation phase: off (--no-confirm)"
    if end is None:
        when = "after the search trials"
    elif share is not None:
        when = f"in the last {100 * share:g}% of --timeout"
    else:
        when = (f"in the last {100 * DEFAULT_CONFIRM_SHARE:g}% of --timeout, up to {100 * MAX_CONFIRM_SHARE:g}% "
                "when the best trial's run needs it")
    return (f"confirmation phase: the top {plan.top} configuration(s) x {plan.seeds} other seed(s), {when}; "
            "repeats come on top of --n-trials")


def _stored_study(settings: LaunchSettings) -> tuple[optuna.storages.BaseStorage, int] | None:
    """The storage and id of the study this launch would resume, read only; None when it
    would create it (no SQLite file yet, or no study of that name). With --resume the
    missing file or name is the error the launch itself gives."""
    try:
        storage = open_existing_storage(settings.storage)
    except MissingStorageError:
        if settings.resume:
            raise
        return None
    with storage_errors(settings.storage):
        try:
            return storage, storage.get_study_id_from_name(settings.study)
        except KeyError:
            if settings.resume:
                load_existing_study(settings.study, storage)  # words the unknown-name error
            return None


def _keep_stored_prune_by(settings: LaunchSettings) -> LaunchSettings:
    """A resumed study keeps the --prune-by it was created with when none is given, so the
    same command that made a study resumes it after the default changes. Reads only."""
    found = _stored_study(settings)
    if found is None:
        return settings
    storage, study_id = found
    with storage_errors(settings.storage):
        stored = storage.get_study_user_attrs(study_id).get("prune_by")
    if stored in PRUNE_BY and stored != settings.prune_by:
        return dataclasses.replace(settings, prune_by=stored)
    return settings


def _dry_run_study(settings: LaunchSettings) -> str:
    """What the launch would do with the study, checked as the real launch checks it
    (one of ours, same defining settings), reading only: a missing SQLite file is not made."""
    _check_storage_writable(settings)
    found = _stored_study(settings)
    if found is None:
        return "study: new (the launch creates it and runs the V1 baseline first)"
    with storage_errors(settings.storage):
        study = optuna.load_study(study_name=settings.study, storage=found[0])
        check_resumable(study, lambda stored: settings_differences(stored, settings))
        done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    return f"study: resumes (holds {done} finished trials; same settings)"


def _check_storage_writable(settings: LaunchSettings) -> None:
    """What the real launch would meet when it writes: a SQLite file it can create (its
    folder exists and takes files) or write, and an artifact folder it can make."""
    files = study_files(settings.storage)
    if files:
        db = files[0]
        if db.exists():
            check_writable_storage(settings.storage)
        else:
            folder = db.absolute().parent
            if not folder.is_dir():
                raise StudyError(f"cannot open storage {redact_url(settings.storage)}: the folder {folder} "
                                 "does not exist (lstm-search creates the database file, not its folder)")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise StudyError(f"cannot open storage {redact_url(settings.storage)}: permission denied "
                                 f"in {folder}, so the database file cannot be created")
    artifacts = artifact_dir_for(settings.storage, settings.artifacts)
    check_output_dir(artifacts, "the artifact folder (--artifacts)")


def _read_warm_start(settings: LaunchSettings) -> list[WarmStart]:
    if settings.warm_start is None:
        return []
    source = open_existing_study(settings.warm_start_storage or settings.storage, settings.warm_start)
    starts, notices = warm_start_configs(source, settings.space, settings.base, settings.warm_start_k)
    for notice in notices:
        print(notice)
    if not starts:
        raise UserInputError(f"--warm-start {settings.warm_start}: no complete trial of that study fits "
                             "this space (see the notices above); drop --warm-start or widen the space")
    return starts


def _read_prior(settings: LaunchSettings) -> list[FrozenTrial]:
    if settings.prior is None:
        return []
    builtin = settings.prior == BUILTIN
    source = open_existing_study(builtin_storage() if builtin else settings.prior_storage or settings.storage,
                                 BUILTIN_STUDY if builtin else settings.prior)
    check_compatible(source, settings.study_attrs())
    copies, notice = prior_trials(source, settings.space, settings.base)
    if notice:
        print(notice)
    if not copies:
        raise UserInputError(f"--prior {settings.prior}: no finished trial of that study fits this space; "
                             "drop --prior or widen the space")
    return copies


def open_study(settings: LaunchSettings, pruner: optuna.pruners.BasePruner) -> tuple[optuna.Study, bool]:
    """Create the study, or resume it after checking it is one of ours with the same settings."""
    if settings.resume:
        # A mistyped SQLite path must not become a new file (nor its artifact folder).
        storage = open_existing_storage(settings.storage, heartbeat=True)
        load_existing_study(settings.study, storage)  # an unknown name is an error, nothing is created
    else:
        storage = open_storage(settings.storage)
    open_artifact_store(settings.storage, settings.artifacts)  # before the study: a bad folder adds no study
    study, created = create_or_resume(
        settings.study, storage, make_sampler(settings.sampler, settings.seed, settings.tpe_startup), pruner,
        settings.space,
        PRESETS["v1"].with_overrides(seed=settings.seed, precision=settings.precision), settings.study_attrs(),
        differences=lambda stored: settings_differences(stored, settings),
    )
    if not created:
        for key in ("sampler", "pruner"):  # allowed to change: they pick trials, not what scores mean
            was = study.user_attrs.get(key)
            if was is not None and was != getattr(settings, key):
                print(f"note: study {settings.study!r} was created with --{key} {was}; this run uses "
                      f"{getattr(settings, key)}")
        sweep_stale_trials(study)  # a killed worker's baseline is re-queued by the heartbeat retry
        if requeue_lost_baseline(study, settings.space):
            print("the V1 baseline never finished (interrupted?); it is queued to run first")
    return study, created


def _print_summary(study: optuna.Study) -> None:
    trials = study.get_trials(deepcopy=False)
    priors = sum(is_prior(t) for t in trials)  # copies of another study's trials: not trained here
    count = {state: sum(t.state == state and not is_prior(t) for t in trials) for state in optuna.trial.TrialState}
    TS = optuna.trial.TrialState
    print(f"study holds {count[TS.COMPLETE]} complete, {count[TS.PRUNED]} pruned, {count[TS.FAIL]} failed"
          + (f", {count[TS.RUNNING]} running" if count[TS.RUNNING] else "")
          + (f", {count[TS.WAITING]} waiting" if count[TS.WAITING] else "")
          + (f" (and {priors} prior copies, not trained here)" if priors else ""))
    best = best_config(study, trials)
    if best is None:
        return
    print(f"best (V2): trial {best.number}, val acc {best.v2.text()} | {format_params(best.v2.params)}")
    others = [s for s in best.tied if s is not best.v2]
    if others:
        print(f"tied with V2 (within {TIE_Z:g} standard errors): "
              + ", ".join(f"trial {s.number} {s.text()}" for s in others))
