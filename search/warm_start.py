"""Warm starts: begin a study with the best configurations of an earlier one.

``launch --warm-start OTHER [--warm-start-storage URL] [--warm-start-k K]`` enqueues the
best K complete trials of study OTHER (any storage: a laptop's SQLite file, a cluster's
PostgreSQL) as the first trials of this launch, so a search moved to more data or more
machines does not start over. Each configuration is fitted to the *new* space: a value
outside a range is clipped to it (a notice says so), a value that is not among a
categorical's choices skips that configuration (a notice says so); parameters the old
study did not search take the value its trial trained with. Nothing here writes to the
source study.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from model.config import TrainConfig
from search.best import rank_configs, val_size_of
from search.space import Categorical, FloatRange, IntRange, Param, SearchSpace

__all__ = ["DEFAULT_WARM_START_K", "Queued", "WarmStart", "enqueue_warm_start", "trials_missing", "warm_start_configs"]

DEFAULT_WARM_START_K = 5
WARM_START_ATTR = "warm_start"  # trial user attr: "STUDY#NUMBER" it was copied from


class WarmStart(NamedTuple):
    params: dict[str, Any]  # in the new space, ready for enqueue_trial
    origin: str  # "study#number"


def warm_start_configs(
    source: optuna.Study, space: SearchSpace, base: TrainConfig, k: int = DEFAULT_WARM_START_K
) -> tuple[list[WarmStart], list[str]]:
    """The best ``k`` complete trials of ``source`` that fit ``space``, and one notice per change.

    A trial's values come from its stored config (all fields, as trained) where it has
    one, else from its params; a field neither holds takes ``base``'s value.
    """
    trials = source.get_trials(deepcopy=False)
    if source.direction == optuna.study.StudyDirection.MAXIMIZE:
        # The best configurations as search/best.py ranks them (V2 first; a repeated
        # configuration once, by its mean), each through its first trial's config.
        by_number = {t.number: t for t in trials}
        complete = [by_number[s.number] for s in rank_configs(trials, val_size_of(source))]
    else:
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None
                    and math.isfinite(t.value)]
        complete.sort(key=lambda t: t.value)
    chosen: list[WarmStart] = []
    notices: list[str] = []
    seen: set[tuple[tuple[str, Any], ...]] = set()
    for trial in complete:
        if len(chosen) == k:
            break
        origin = f"{source.study_name}#{trial.number}"
        fitted = _fit(trial, space, base, origin, notices)
        if fitted is None:
            continue
        key = tuple(sorted(fitted.items()))
        if key in seen:  # two old configurations that clip to the same new one
            notices.append(f"warm start: {origin} skipped: the same as a better one once fitted to the space")
            continue
        seen.add(key)
        chosen.append(WarmStart(fitted, origin))
    return chosen, notices


class Queued(NamedTuple):
    queued: int  # enqueued now
    present: int  # already in the study (a resume with the same flag)
    over: int  # left out: the launch needs no more trials to reach --n-trials


def enqueue_warm_start(study: optuna.Study, starts: list[WarmStart], limit: int | None = None) -> Queued:
    """Enqueue the configurations, best first (each once: a resume with the same flag adds
    nothing), at most ``limit`` of them: a launch to N trials runs no more than the trials
    it still misses, so a warm start never makes it run past --n-trials (nor leaves
    queued trials that a later resume would run first whatever it was asked)."""
    trials = study.get_trials(deepcopy=False)
    known = [t.system_attrs.get("fixed_params") or t.params for t in trials]
    fresh = [s for s in starts if s.params not in known]
    queued = over = 0
    for start in fresh:
        if limit is not None and queued >= limit:
            over += 1
            continue
        before = _waiting(study)
        study.enqueue_trial(start.params, user_attrs={WARM_START_ATTR: start.origin}, skip_if_exists=True)
        queued += _waiting(study) - before
    return Queued(queued, len(starts) - len(fresh), over)


def trials_missing(study: optuna.Study, n_trials: int) -> int:
    """Trials a launch to ``n_trials`` may still start: N less those finished, running or
    already queued (the V1 baseline of a new study among them)."""
    alive = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    return max(0, n_trials - len(study.get_trials(deepcopy=False, states=alive)))


def _waiting(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def _fit(trial: FrozenTrial, space: SearchSpace, base: TrainConfig, origin: str,
         notices: list[str]) -> dict[str, Any] | None:
    stored = trial.user_attrs.get("config")
    values = dict(stored) if isinstance(stored, dict) else {}
    values.update(trial.params)
    fitted: dict[str, Any] = {}
    for name, spec in space.params.items():
        value = values.get(name, getattr(base, name))
        if isinstance(spec, Categorical):
            if value not in spec.choices:
                notices.append(f"warm start: {origin} skipped: {name}={value!r} is not one of "
                               f"{list(spec.choices)} in the new space")
                return None
            fitted[name] = value
            continue
        new = _clip(spec, value)
        if new != value:
            notices.append(f"warm start: {origin}: {name}={value!r} clipped to {new!r} (outside the new space)")
        fitted[name] = new
    return fitted


def _clip(spec: Param, value: Any) -> Any:
    assert isinstance(spec, (FloatRange, IntRange))
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return spec.low  # not a number at all: the range's low end, with a notice
    clipped = min(max(value, spec.low), spec.high)
    if spec.step:
        steps = round((clipped - spec.low) / spec.step)
        clipped = min(spec.low + steps * spec.step, spec.high)
    return round(clipped) if isinstance(spec, IntRange) else float(clipped)
