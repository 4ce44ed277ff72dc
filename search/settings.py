"""The launch as a frozen plan: every setting of one ``lstm-search launch``, checked once.

``LaunchSettings.from_args`` validates the command line before anything is read or written
(bad input: one line, exit 2, no study touched). The value is then all a worker needs: it
is pickled to spawned workers unchanged, so they never re-run the command line.

Part of it defines what a study *is*: trials are only comparable if they searched the same
space and were scored on the same validation images. Those settings (``DEFINING_KEYS``)
are stored in the study's user attrs at creation (``study_attrs``) and compared on every
resume (``settings_differences``); a difference is refused. The sampler, the pruner and
the hardware (threads, workers, device, data folder) may change on resume: they decide
which configurations are tried next and how fast, not what a trial's score means.

The bounds every command shares live here too: ``check_range``'s one wording of a numeric
flag's bounds, and ``check_data_flags`` for --val-size, --subset and --threads; and
``load_data``, the one reading of the data flags (a launch's settings or train's flags).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

import optuna

from model.config import TrainConfig, check_seed, field_flag
from model.data import MNIST_TRAIN_IMAGES, MnistSplits, load_splits
from model.errors import UserInputError
from search.confirm import (
    DEFAULT_CONFIRM_SEEDS,
    DEFAULT_CONFIRM_SHARE,
    DEFAULT_CONFIRM_TOP,
    MAX_CONFIRM_SHARE,
    ConfirmPlan,
    SearchEnd,
)
from search.names import check_study_name
from search.pruning import DEFAULT_PRUNE_BY, PRUNE_BY, PRUNERS, make_pruner
from search.samplers import DEFAULT_TPE_STARTUP, SAMPLERS
from search.space import SearchSpace, load_space
from search.warm_start import DEFAULT_WARM_START_K

__all__ = [
    "DEFINING_KEYS",
    "MAX_CONSECUTIVE_FAILURES",
    "MAX_N_TRIALS",
    "MAX_THREADS",
    "MAX_TIMEOUT_SECONDS",
    "DataFlags",
    "LaunchSettings",
    "check_data_flags",
    "check_range",
    "load_data",
    "settings_differences",
]

MAX_N_TRIALS = 1_000_000_000  # far beyond any study; bounds what the storage and the bar must hold
MAX_TIMEOUT_SECONDS = 10 * 365 * 24 * 3600.0  # ten years: a longer "budget" is a typo
MAX_THREADS = 4096  # torch would try to start them all; more is a typo
MAX_CONSECUTIVE_FAILURES = 5  # FAIL trials in a row that stop a launch (e.g. every score NaN)
# The study-defining settings, as stored in the study's user attrs (keys kept from the
# first release, which stored them for reports without comparing them).
# prune_by too: steps counted in epochs and in percent cannot share one pruner's rungs.
# precision too: a trial trained in bf16 is not the same experiment as one in fp32. The
# launch fixes no other TrainConfig field (seed and precision make up its base config);
# the space file fixes the rest, and space_description holds that.
DEFINING_KEYS = ("space_description", "seed", "val_size", "subset", "prune_by", "precision")


@dataclass(frozen=True)
class LaunchSettings:
    study: str
    storage: str
    artifacts: str | None
    n_trials: int
    deadline: float | None  # time.time() at which the budget ends; shared by every worker
    space: SearchSpace
    sampler: str
    pruner: str
    prune_by: str  # "epoch" or "progress": what the steps a trial reports at count
    seed: int
    data_root: str | None
    val_size: int
    subset: int | None
    device: str
    precision: str  # TrainConfig.precision of every trial, the baseline included
    threads: int | None
    workers: str
    worker_index: int
    resume: bool
    progress: bool
    warm_start: str | None = None  # an earlier study whose best configurations run first
    warm_start_storage: str | None = None  # its storage (default: --storage)
    warm_start_k: int = DEFAULT_WARM_START_K
    floor: bool = False  # also prune trials below V1's curve (search/floor.py)
    prior: str | None = None  # an earlier study whose finished trials join the sampler's history
    prior_storage: str | None = None  # its storage (default: --storage; "builtin" for --prior builtin)
    tpe_startup: int = DEFAULT_TPE_STARTUP  # random draws before TPE models (search/samplers.py)
    # The confirmation phase (search/confirm.py); top 0 turns it off.
    confirm_top: int = DEFAULT_CONFIRM_TOP
    confirm_seeds: int = DEFAULT_CONFIRM_SEEDS
    search_end: SearchEnd | None = None  # with --timeout: when search trials end and repeats begin

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LaunchSettings:
        """Validate the parsed command line; raises UserInputError naming the first bad value."""
        check_study_name(args.study)
        if getattr(args, "warm_start", None) is not None:
            check_study_name(args.warm_start, "--warm-start")
        check_range("--n-trials", args.n_trials, 1, MAX_N_TRIALS)
        deadline = None
        if args.timeout is not None:
            if not math.isfinite(args.timeout) or not 0 < args.timeout <= MAX_TIMEOUT_SECONDS:
                raise UserInputError(
                    f"--timeout must be a number of seconds between 0 and {MAX_TIMEOUT_SECONDS:.0f} "
                    f"(got {args.timeout}); leave it out for no time limit"
                )
            # One absolute deadline for the whole command, handed to spawned workers
            # unchanged, so a restarted worker gets no fresh budget. Data loading counts.
            deadline = time.time() + args.timeout
        check_seed(args.seed)
        # The score is validation accuracy: without validation images every trial is NaN.
        check_data_flags(args, min_val_size=1)
        check_range("--worker-index", args.worker_index, 0, 1_000_000)
        warm_k = getattr(args, "warm_start_k", DEFAULT_WARM_START_K)
        check_range("--warm-start-k", warm_k, 1, 10_000)
        tpe_startup = getattr(args, "tpe_startup", DEFAULT_TPE_STARTUP)
        check_range("--tpe-startup", tpe_startup, 0, 10_000)
        confirm_top, confirm_seeds, search_end = _confirm_args(args, deadline)
        # None: not given; the launch then keeps a resumed study's own (or the default).
        prune_by = DEFAULT_PRUNE_BY if args.prune_by is None else args.prune_by
        if args.sampler not in SAMPLERS or args.pruner not in PRUNERS or prune_by not in PRUNE_BY:
            # argparse checks; library callers too
            raise UserInputError(f"unknown sampler {args.sampler!r}, pruner {args.pruner!r} "
                                 f"or --prune-by {args.prune_by!r}")
        return cls(
            study=args.study, storage=args.storage, artifacts=args.artifacts, n_trials=args.n_trials,
            deadline=deadline, space=load_space(args.space), sampler=args.sampler, pruner=args.pruner,
            prune_by=prune_by,
            seed=args.seed, data_root=args.data_root, val_size=args.val_size, subset=args.subset,
            device=args.device, precision=args.precision, threads=args.threads, workers=args.workers,
            worker_index=args.worker_index, resume=args.resume, progress=not args.no_progress,
            warm_start=getattr(args, "warm_start", None), warm_start_storage=getattr(args, "warm_start_storage", None),
            warm_start_k=warm_k, floor=getattr(args, "floor", False),
            prior=getattr(args, "prior", None), prior_storage=getattr(args, "prior_storage", None),
            tpe_startup=tpe_startup,
            confirm_top=confirm_top, confirm_seeds=confirm_seeds, search_end=search_end,
        )

    @property
    def confirm(self) -> ConfirmPlan:
        return ConfirmPlan(top=self.confirm_top, seeds=self.confirm_seeds)

    @property
    def base(self) -> TrainConfig:
        """What every trial starts from before the space's values are applied."""
        return TrainConfig(seed=self.seed, precision=self.precision)

    @property
    def progress_steps(self) -> bool:
        """Whether trials report at % of their own epochs (and the pruner counts in %)."""
        return self.prune_by == "progress"

    def make_pruner(self) -> optuna.pruners.BasePruner:
        """The study's pruner over this space's epoch range, counting as ``prune_by`` says."""
        space, base = self.space, self.base
        return make_pruner(self.pruner, space.max_epochs(base), space.min_epochs(base),
                           progress=self.progress_steps, floor=self.floor)

    @property
    def n_images(self) -> int:
        """Images one process holds in memory (at most: the real data may be smaller)."""
        train = MNIST_TRAIN_IMAGES - self.val_size
        return min(self.subset or train, train) + self.val_size

    def study_attrs(self) -> dict[str, Any]:
        """User attrs written at creation: the defining part plus what reports show."""
        return {
            "space": self.space.source, "space_description": self.space.describe(),
            "sampler": self.sampler, "pruner": self.pruner, "prune_by": self.prune_by, "seed": self.seed,
            "val_size": self.val_size, "subset": self.subset, "precision": self.precision,
        }


def settings_differences(stored: dict[str, Any], settings: LaunchSettings) -> list[str]:
    """How this launch differs from the study's stored defining settings, one phrase each.

    Keys the study does not hold (a study made before they were stored) are not compared.
    """
    mine = settings.study_attrs()
    diffs = []
    for key in DEFINING_KEYS:
        if key not in stored or stored[key] == mine[key]:
            continue
        if key == "space_description":
            was = stored.get("space", "?")
            diffs.append(f"the space ({settings.space.source}: {'; '.join(mine[key])}) differs from the "
                         f"study's ({was}: {'; '.join(stored[key])})")
        else:
            diffs.append(f"{field_flag(key)} {_show(mine[key])} (the study was created with {_show(stored[key])})")
    return diffs


def _show(value: object) -> str:
    return "not given" if value is None else str(value)


def _confirm_args(args: argparse.Namespace, deadline: float | None) -> tuple[int, int, SearchEnd | None]:
    """--confirm-top, --confirm-seeds, --confirm-share (--no-confirm: top 0) checked, and when
    search trials stop so the last share of a --timeout is left for repeats: a given share
    is fixed; the default one (None) stretches up to MAX_CONFIRM_SHARE (SearchEnd)."""
    top = 0 if getattr(args, "no_confirm", False) else getattr(args, "confirm_top", DEFAULT_CONFIRM_TOP)
    seeds = getattr(args, "confirm_seeds", DEFAULT_CONFIRM_SEEDS)
    share = getattr(args, "confirm_share", None)
    check_range("--confirm-top", top, 0, 1000)
    check_range("--confirm-seeds", seeds, 1, 100)
    if share is not None and not (math.isfinite(share) and 0 <= share < 1):
        raise UserInputError(f"--confirm-share must be a fraction >= 0 and < 1 of --timeout (got {share})")
    if deadline is None:
        return top, seeds, None
    if top == 0:  # no phase: the search has the whole budget
        return top, seeds, SearchEnd.fixed(deadline, deadline)
    if share is not None:
        return top, seeds, SearchEnd.fixed(deadline, deadline - share * args.timeout)
    return top, seeds, SearchEnd(deadline=deadline, latest=deadline - DEFAULT_CONFIRM_SHARE * args.timeout,
                                 earliest=deadline - MAX_CONFIRM_SHARE * args.timeout)


def check_data_flags(args: argparse.Namespace, min_val_size: int = 0) -> None:
    """--val-size, --subset and --threads within their bounds, for every command that
    trains, before any work: ``min_val_size`` is 1 where a validation score is needed
    (launch), 0 where not (train, report, compare-cells)."""
    val_size = getattr(args, "val_size", 0)
    if hasattr(args, "val_size"):
        check_range("--val-size", val_size, min_val_size, MNIST_TRAIN_IMAGES - 1)
    if args.subset is not None:
        check_range("--subset", args.subset, 1, MNIST_TRAIN_IMAGES - val_size)
    if args.threads is not None:
        check_range("--threads", args.threads, 1, MAX_THREADS)


def check_range(flag: str, value: int, low: int, high: int) -> None:
    """The one wording of a numeric flag's bounds, for every command."""
    if not low <= value <= high:
        raise UserInputError(f"{flag} must be >= {low} and <= {high} (got {value})")


class DataFlags(Protocol):
    """What names the training data: a launch's LaunchSettings, or train's parsed flags."""

    data_root: str | None
    val_size: int
    subset: int | None


def load_data(flags: DataFlags, seed: int) -> MnistSplits:
    """The train / validation split the data flags name, split with ``seed``."""
    return load_splits(flags.data_root, val_size=flags.val_size, subset=flags.subset, seed=seed)
