"""Pruners over training progress, and the step a trial reports its accuracy at.

Two ways to say where a trial is when the pruner compares it with others:

- by epoch (``progress=False``): step = the epoch number. Trials of 12 and 30 epochs are
  compared after the same number of epochs, i.e. at different points of their learning-rate
  schedules: at epoch 3 a one-cycle run of 30 epochs is still warming up while one of 12 is
  already decaying, so early epochs rank such runs wrongly.
- by progress (``progress=True``): step = the percentage of the trial's own epochs done
  (1..100). Every trial is compared at the same point of its schedule: a pruner's rung at
  25 judges each trial after a quarter of its own training.

The default is by progress with the first rung at a third of each trial's epochs, chosen by
replaying both on the recorded learning-curve table (benchmarks/replay.py): by progress,
Hyperband pruned fewer configurations that would have finished among the table's best,
and reached them as fast. The figures are in benchmarks/RESULTS.md#prune-by-progress.
"""

from __future__ import annotations

import math

import optuna

from model.errors import UserInputError
from search.floor import FloorMixin

__all__ = [
    "DEFAULT_PRUNER",
    "DEFAULT_PRUNE_BY",
    "DEFAULT_STARTUP",
    "FIRST_PROGRESS",
    "FIRST_RUNG",
    "PRUNERS",
    "PRUNE_BY",
    "REDUCTION",
    "make_pruner",
    "report_epoch",
    "reported_step",
    "reports_progress",
    "rung_epochs",
]

PRUNERS = ("hyperband", "sha", "median", "none")
PRUNE_BY = ("epoch", "progress")  # what a pruner's step counts (see the module docstring)
# The launch's defaults (benchmarks/replay.py replays exactly these as "the default strategy").
DEFAULT_PRUNER = "hyperband"
DEFAULT_PRUNE_BY = "progress"
REDUCTION = 3  # Hyperband / successive halving keep the best third at each rung

# No trial is judged before this epoch (or before the space's shortest trial ends, if
# sooner). Epoch-1 accuracy ranks configurations wrongly: a one-cycle schedule is still
# warming up and random shifts slow the start (a shifted run can trail after epoch 1 and
# lead at the end), and a first search pruned exactly such trials at epoch 1
# (benchmarks/RESULTS-log.md#log-2026-11-22-search-quality). By epoch 3 the warm-up is
# mostly done.
FIRST_RUNG = 3
# By progress, the first rung is at this percentage of each trial's own epochs: at a
# quarter the rank of shifted runs is still unreliable, and the replay above pruned top
# configurations about twice as often there as at a third.
FIRST_PROGRESS = 33
PROGRESS_STEPS = 100
# Hyperband and successive halving can be told to prune nothing until this many trials have
# finished (complete or pruned): early in a study a rung holds a handful of values and
# keeps the best third, so a good configuration that starts slowly loses to whichever trial
# learned fastest. It does not pay, neither at full fidelity (the time saved reached a
# better configuration than the ones pruned early) nor on the replay (a guard of 5 or 10
# trials reached the table's best later): benchmarks/RESULTS.md#replay. So none by
# default; benchmarks/replay.py compares values (":sN").
DEFAULT_STARTUP = 0


def reported_step(epoch: int, epochs: int) -> int:
    """The step at which epoch ``epoch`` (1-based) of an ``epochs``-epoch trial is reported
    when pruning by progress: the percentage done, rounded up, so the last epoch is 100."""
    if not 1 <= epoch <= epochs:
        raise ValueError(f"epoch {epoch} outside 1..{epochs}")
    return math.ceil(PROGRESS_STEPS * epoch / epochs)


def report_epoch(trial: optuna.Trial, value: float, epoch: int, epochs: int, *, progress: bool,
                 ask: bool = True) -> bool:
    """Report epoch ``epoch`` (1-based) of an ``epochs``-epoch trial at its step (the epoch,
    or with ``progress`` its percentage) and return whether the pruner stops the trial there.

    The pruner is asked after the last epoch too (successive halving records a trial's rung
    only when asked), but a trial that has done all its epochs is never thrown away.
    ``ask=False`` reports without asking, for a trial that is never pruned (a repeat of the
    confirmation phase): asking would record it at the rungs other trials are judged by.
    The objective and benchmarks/replay.py both report through here."""
    trial.report(value, reported_step(epoch, epochs) if progress else epoch)
    return ask and trial.should_prune() and epoch < epochs


def reports_progress(study: optuna.Study) -> bool:
    """Whether the study's trials report at % of their epochs (launched with --prune-by
    progress), so that readers label the steps as percentages, not epochs."""
    return study.user_attrs.get("prune_by") == "progress"


def rung_epochs(min_epochs: int, max_epochs: int) -> list[int]:
    """The epochs at which the epoch-based Hyperband / SHA pruner judges trials."""
    first = max(1, min(FIRST_RUNG, min_epochs, max_epochs))
    rungs, r = [], first
    while r < max_epochs:
        rungs.append(r)
        r *= REDUCTION
    return rungs


def _reference_curves(study: optuna.Study) -> int:
    """Finished trials of any kind: the curves a rung pruner compares a trial against.
    Unlike trials.finished_trials (what --n-trials counts), repeats and prior copies count
    here: each holds real per-epoch values, which is what the start-up wait is waiting for."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


class _StartupMixin:
    """Asks the rung pruner as usual (it records the trial's value at the rung either
    way, so later trials compete against it) but prunes nothing before ``startup`` trials
    have finished. A subclass of Optuna's own pruner, not a wrapper: TPE treats a study
    pruned by Hyperband specially (it samples from the trial's bracket), by type."""

    startup: int = 0

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        prune = super().prune(study, trial)  # type: ignore[misc]
        return bool(prune) and (self.startup <= 0 or _reference_curves(study) >= self.startup)


class _Hyperband(_StartupMixin, FloorMixin, optuna.pruners.HyperbandPruner):
    pass


class _SuccessiveHalving(_StartupMixin, FloorMixin, optuna.pruners.SuccessiveHalvingPruner):
    pass


class _FlooredMedian(FloorMixin, optuna.pruners.MedianPruner):
    pass


class _FloorOnly(FloorMixin, optuna.pruners.NopPruner):
    pass


def make_pruner(
    name: str, max_epochs: int, min_epochs: int = 1, progress: bool = False, first: int | None = None,
    startup: int | None = None, floor: bool = False,
) -> optuna.pruners.BasePruner:
    """A pruner over epochs (max_epochs / min_epochs: the longest / shortest trial the space
    allows) or, with ``progress``, over the percentage of each trial's epochs done.

    ``first`` moves the first rung (an epoch, or a percentage with ``progress``) from the
    default FIRST_RUNG / FIRST_PROGRESS; ``startup`` (Hyperband and SHA) the number of
    finished trials before anything is pruned, from DEFAULT_STARTUP. benchmarks/replay.py
    uses both to compare choices. ``floor`` also prunes a trial below the V1 baseline's curve
    from a third of its epochs on (search/floor.py)."""
    if first is not None and first < 1:
        raise ValueError(f"first rung {first} must be >= 1")
    startup = DEFAULT_STARTUP if startup is None else startup
    if startup < 0:
        raise ValueError(f"startup {startup} must be >= 0")
    if progress:
        first, top = (FIRST_PROGRESS if first is None else first), PROGRESS_STEPS
    else:
        first = FIRST_RUNG if first is None else first
        first, top = max(1, min(first, min_epochs, max_epochs)), max_epochs
    if not 1 <= first <= top:
        raise ValueError(f"first rung {first} outside 1..{top}")
    if name in ("hyperband", "sha"):
        pruner = (_Hyperband(min_resource=first, max_resource=top, reduction_factor=REDUCTION) if name == "hyperband"
                  else _SuccessiveHalving(min_resource=first, reduction_factor=REDUCTION))
        pruner.startup = startup
    elif name == "median":
        pruner = (_FlooredMedian if floor else optuna.pruners.MedianPruner)(n_startup_trials=5, n_warmup_steps=first)
    elif name == "none":
        pruner = _FloorOnly() if floor else optuna.pruners.NopPruner()
    else:
        raise UserInputError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")
    if isinstance(pruner, FloorMixin):
        pruner.floor, pruner.progress_steps = floor, progress
    return pruner
