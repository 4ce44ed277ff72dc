"""The confirmation phase: repeats of the top configurations, as trials of the same study.

On 5,000 validation images the best few trials of a search lie within the split's noise of
each other, so the single best value is partly luck (and overstates its test accuracy).
A launch therefore ends by retraining the top ``top`` configurations (of those the split
cannot tell from the best) with ``seeds`` other training seeds each. A repeat is an
ordinary trial, enqueued with the original's parameters and user attrs ``repeat_of`` (the
original's number) and ``repeat_seed``; the objective trains the original's stored config
with that seed and never prunes it (a confirmation runs its full epochs; only the time
budget stops it). search/best.py then ranks configurations by their mean over the runs.

Resume-safe and shared by all workers: a worker with no repeat waiting reads the study and
enqueues the next (trial, seed) pair that neither ran nor waits nor runs, just before it
trains it, and only if the original's own run fits the time left; a killed or interrupted
repeat is queued again. Enqueuing one at a time, not the whole plan up front, keeps a
worker from starting a repeat the budget then cuts. Two processes that enqueue the same pair at the same
moment leave two copies; the later one is not trained (``duplicate_of``).
Repeats do not count toward ``--n-trials`` (N counts search trials); they come on top.

With ``--timeout`` the phase gets the budget's last share (``SearchEnd``): 20%, stretched up
to half when the best search trial's own run is longer, so that its repeats can finish, and
none when they cannot (the search then keeps the time).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from model.config import MAX_SEED
from search.best import REPEAT_OF, REPEAT_SEED, ConfigScore, is_repeat, tied_with, val_size_of
from search.prior import is_prior

__all__ = [
    "DEFAULT_CONFIRM_SEEDS", "DEFAULT_CONFIRM_SHARE", "DEFAULT_CONFIRM_TOP", "MAX_CONFIRM_SHARE", "ConfirmPlan",
    "SearchEnd", "candidates",
    "duplicate_of", "enqueue_repeats", "phase_counts", "repeat_seeds", "run_seconds", "running_repeats",
    "waiting_repeats",
]

# 3 configurations x 2 more seeds: 6 trials, about a fifth of a 2-hour, 2-worker run of the
# default space, and 3 runs per configuration give a spread to set against the split's error.
DEFAULT_CONFIRM_TOP = 3
DEFAULT_CONFIRM_SEEDS = 2
DEFAULT_CONFIRM_SHARE = 0.2  # of a --timeout, kept for the phase
# Stretched no further: the search keeps at least half of the budget to find what to confirm.
MAX_CONFIRM_SHARE = 0.5
# A repeat trains while the other workers train too, as its original did, but may still run
# a little slower (data loading, a busier neighbour); 10% keeps it from being cut at the end.
RUN_MARGIN = 1.1
_ALIVE = (TrialState.WAITING, TrialState.RUNNING)


@dataclass(frozen=True)
class ConfirmPlan:
    top: int = DEFAULT_CONFIRM_TOP  # configurations to repeat (0: no phase)
    seeds: int = DEFAULT_CONFIRM_SEEDS  # other training seeds per configuration

    @property
    def enabled(self) -> bool:
        return self.top > 0 and self.seeds > 0


@dataclass(frozen=True)
class SearchEnd:
    """When search trials stop and the confirmation phase begins, in a --timeout that ends
    at ``deadline`` (all three are time.time() values).

    Sized by the best search trial's own run times RUN_MARGIN, since its repeats decide V2
    and enqueue_repeats confirms nothing ranked below a #1 it cannot repeat:
    - it fits the time after ``latest`` (the budget's last share): at ``latest``;
    - it fits only from an earlier moment, no earlier than ``earliest`` and not before #1
      finished: from that moment (seen: a 45-minute launch's #1 trained for 14.5 minutes,
      longer than its 9-minute share). A given --confirm-share fixes ``earliest == latest``;
    - it fits from no such moment: the phase could repeat nothing, so the search goes on to
      ``deadline`` (seen: a #1 that finished at minute 33 after a 15-minute run stopped the
      search 12 minutes early for a phase that then had nothing to do);
    - its repeats have begun (from ``earliest`` on, so in this launch): the phase began with
      the first of them, so the other workers join it rather than search on to ``latest``
      and leave #1's other repeats to run one after another. Repeats from an earlier launch
      size nothing: ``latest``.
    """

    deadline: float
    latest: float
    earliest: float

    def at(self, trials: Sequence[FrozenTrial]) -> float:
        """The phase's start given the study's ``trials`` so far (it moves as #1 changes)."""
        best = candidates(trials, 1)
        if not best:
            return self.latest  # nothing to size it by
        repeats = [t for t in trials if t.user_attrs.get(REPEAT_OF) == best[0].number]
        if repeats:  # #1 is being confirmed: nothing left to size by
            first = min((t.datetime_start.timestamp() for t in repeats if t.datetime_start is not None),
                        default=self.latest)
            return min(first, self.latest) if first >= self.earliest else self.latest
        start = self.deadline - RUN_MARGIN * run_seconds(best[0])
        if start >= self.latest:
            return self.latest
        known = best[0].datetime_complete
        if start >= self.earliest and (known is None or known.timestamp() <= start):
            return start
        return self.deadline

    def over(self, study: optuna.Study) -> bool:
        """Whether the search has ended by now; reads ``study`` only from ``earliest`` on
        (``at`` is never earlier), so a trial's epoch ends cost nothing before that."""
        now = time.time()
        return now >= self.earliest and now >= self.at(study.get_trials(deepcopy=False))

    @classmethod
    def fixed(cls, deadline: float, at: float) -> SearchEnd:
        return cls(deadline=deadline, latest=at, earliest=at)


def candidates(trials: Sequence[FrozenTrial], top: int, val_size: int | None = None) -> list[FrozenTrial]:
    """The configurations worth confirming: the ``top`` best search trials by their own value
    (repeats, the V1 baseline and prior copies left out), keeping only those tied with the
    best one when the split's size gives the error (``val_size``). Repeats of a clearly worse
    configuration cannot make it V2 (search/best.py), so they would only take time from the
    search. A prior copy was trained in another study: this one has no run of it to confirm
    and no run time to size its repeats by."""
    pool = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None
            and math.isfinite(t.value) and not is_repeat(t) and not t.user_attrs.get("baseline")
            and not is_prior(t) and isinstance(t.user_attrs.get("config"), dict)]
    pool.sort(key=lambda t: (-t.value, t.number))
    if pool and val_size:
        first = _single(pool[0], val_size)
        pool = [t for t in pool if tied_with(first, _single(t, val_size))]
    return pool[:top]


def _single(trial: FrozenTrial, val_size: int) -> ConfigScore:
    return ConfigScore(number=trial.number, runs=(trial.number,), values=(float(trial.value),), params={},
                       config=None, epoch_seconds=None, val_size=val_size)


def repeat_seeds(trial: FrozenTrial, seeds: int) -> list[int]:
    """The training seeds of ``trial``'s repeats: its own seed + 1, + 2, ... (as the
    report's final runs count seeds)."""
    own = int(trial.user_attrs["config"].get("seed", 0))
    return [(own + j) % (MAX_SEED + 1) for j in range(1, seeds + 1)]


def enqueue_repeats(study: optuna.Study, plan: ConfirmPlan, trials: Sequence[FrozenTrial] | None = None,
                    seconds_left: float | None = None, limit: int | None = None) -> int:
    """Enqueue the repeats of the top configurations that are not done, waiting or running
    (at most ``limit`` of them).

    Candidates come in rank order (``candidates``). Returns how many were enqueued. Done:
    complete, or pruned for any reason but the time budget (a diverging seed would diverge
    again); a failed or budget-cut repeat is queued again.
    With ``seconds_left`` (the time budget's rest), a configuration whose own run took longer,
    or whose run time is not recorded, is not repeated: a repeat cut by the budget adds no
    run, only spends the workers' time.
    Nor, then, is any configuration ranked below it, unless it already has a repeat: the V2
    rule prefers a confirmed configuration among tied ones, so confirming a lower one would
    hand it V2 over a better one for having been cheaper to repeat (seen: a 45-minute launch
    repeated its #2, 99.20%, because its #1, 99.38%, took longer than the time left).
    """
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    covered = {_key(t) for t in trials if is_repeat(t) and (t.state in _ALIVE or _done(t))}
    queued = 0
    for original in candidates(trials, plan.top, val_size_of(study)):
        seeds = [seed for seed in repeat_seeds(original, plan.seeds) if (original.number, seed) not in covered]
        if seconds_left is not None and seeds and not 0 < run_seconds(original) <= seconds_left:  # unknown: no fit
            if len(seeds) == plan.seeds:  # never repeated: nothing below it may overtake it by repeats
                return queued
            continue
        for seed in seeds:
            if limit is not None and queued >= limit:
                return queued
            study.enqueue_trial(dict(original.params), user_attrs={REPEAT_OF: original.number, REPEAT_SEED: seed})
            queued += 1
    return queued


def run_seconds(trial: FrozenTrial) -> float:
    """How long ``trial`` trained (its recorded time, else the sum of its epochs' times)."""
    seconds = trial.user_attrs.get("trial_seconds")
    if isinstance(seconds, (int, float)) and math.isfinite(seconds):
        return float(seconds)
    return float(sum(trial.user_attrs.get("epoch_seconds", [])))


def duplicate_of(trials: Sequence[FrozenTrial], trial_number: int, key: tuple[int, int]) -> int | None:
    """A lower-numbered copy of the repeat ``key`` that waits, runs or is done (two workers
    enqueued it at once): that copy counts, this one is not trained."""
    for t in trials:
        if t.number < trial_number and is_repeat(t) and _key(t) == key and (t.state in _ALIVE or _done(t)):
            return t.number
    return None


def phase_counts(trials: Sequence[FrozenTrial], plan: ConfirmPlan | None = None,
                 val_size: int | None = None) -> tuple[int, int] | None:
    """(repeats done, repeats planned), else None when none is planned: the progress bar's
    count in the confirmation phase. Planned: those the study holds, and with ``plan`` those
    it will enqueue one by one (the budget may cut the phase before them)."""
    keys = {_key(t) for t in trials if is_repeat(t)}
    if plan is not None and plan.enabled:
        keys |= {(c.number, seed) for c in candidates(trials, plan.top, val_size)
                 for seed in repeat_seeds(c, plan.seeds)}
    if not keys:
        return None
    done = {_key(t) for t in trials if is_repeat(t) and _done(t)}
    return len(done), len(keys)


def waiting_repeats(trials: Sequence[FrozenTrial]) -> int:
    return sum(t.state == TrialState.WAITING and is_repeat(t) for t in trials)


def running_repeats(trials: Sequence[FrozenTrial]) -> int:
    return sum(t.state == TrialState.RUNNING and is_repeat(t) for t in trials)


def _key(t: FrozenTrial) -> tuple[int, int]:
    return int(t.user_attrs[REPEAT_OF]), int(t.user_attrs.get(REPEAT_SEED, -1))


def _done(t: FrozenTrial) -> bool:
    if t.state == TrialState.COMPLETE:
        return True
    reason = str(t.user_attrs.get("fail_reason", ""))
    return t.state == TrialState.PRUNED and not reason.startswith("time budget")
