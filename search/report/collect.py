"""Read what a report needs out of a study into plain rows, once, and pick V1 and V2.

The tables and the sentences work on these NamedTuples, so they can be tested on
hand-made rows and never have to know how Optuna stores a trial. Optuna's own plots, the
per-trial curves and fANOVA read the study itself (figures.py, importance.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from model.config import PRESETS, TrainConfig
from model.errors import ConfigError, UserInputError
from search.best import Best
from search.best import best_config as best_of

__all__ = [
    "BASELINE_CHOICES",
    "StudySummary",
    "TrialRow",
    "best_config",
    "collect_trials",
    "config_from_choice",
    "resolve_baseline",
    "summarize",
]

BASELINE_CHOICES = ("v1", "template")


class TrialRow(NamedTuple):
    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    value: float | None  # final validation accuracy (complete trials only)
    params: dict[str, Any]  # the searched values Optuna recorded
    seconds: float | None  # wall time from start to finish
    baseline: bool  # the enqueued V1 trial


class StudySummary(NamedTuple):
    name: str
    n_trials: int
    complete: int
    pruned: int
    failed: int
    other: int  # running or waiting when the report was made
    total_seconds: float  # sum of the finished trials' wall times
    wall_seconds: float  # first start to last finish (less than the sum with parallel workers)
    best_number: int | None
    best_value: float | None
    sampler: str
    pruner: str
    space: str
    subset: int | None  # training images per trial, None = all but the validation set
    val_size: int | None
    best: Best | None = None  # V2 and the configurations tied with it (search/best.py)


def collect_trials(study: optuna.Study) -> list[TrialRow]:
    return [_row(t) for t in study.get_trials(deepcopy=False)]


def summarize(study: optuna.Study, rows: list[TrialRow]) -> StudySummary:
    """Counts, times and the best trial; sampler and pruner as `launch` recorded them."""
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.datetime_start and t.datetime_complete]
    wall = 0.0
    if finished:
        first = min(t.datetime_start for t in finished)
        last = max(t.datetime_complete for t in finished)
        wall = (last - first).total_seconds()
    best = best_of(study, trials)
    attrs = study.user_attrs
    return StudySummary(
        name=study.study_name,
        n_trials=len(rows),
        complete=sum(r.state == "COMPLETE" for r in rows),
        pruned=sum(r.state == "PRUNED" for r in rows),
        failed=sum(r.state == "FAIL" for r in rows),
        other=sum(r.state not in ("COMPLETE", "PRUNED", "FAIL") for r in rows),
        total_seconds=sum(r.seconds or 0.0 for r in rows),
        wall_seconds=wall,
        best_number=None if best is None else best.number,
        best_value=None if best is None else best.mean,
        sampler=str(attrs.get("sampler", type(study.sampler).__name__)),
        pruner=str(attrs.get("pruner", type(study.pruner).__name__)),
        space=str(attrs.get("space", "unknown")),
        subset=attrs.get("subset"),
        val_size=attrs.get("val_size"),
        best=best,
    )


def best_config(study: optuna.Study) -> tuple[TrainConfig, int]:
    """V2 (search/best.py: the best confirmed configuration tied with the best mean): its
    first trial's full config (user attr ``config``) and that trial's number."""
    best = best_of(study)
    if best is None:
        raise UserInputError(
            f"study {study.study_name!r} has no complete trial yet; run `lstm-search launch` first"
        )
    config = best.v2.config
    if not isinstance(config, dict):
        raise UserInputError(f"trial {best.number} of study {study.study_name!r} has no recorded config")
    return TrainConfig.from_dict(config), best.number


def resolve_baseline(study: optuna.Study, choice: str, flag: str = "--baseline") -> tuple[TrainConfig, str]:
    """V1 for the report and where it came from: the study's own baseline (``v1``), the
    lab's template, or a JSON file of TrainConfig fields (missing fields default)."""
    return config_from_choice(choice, study.user_attrs.get("baseline_config"), flag)


def config_from_choice(choice: str, stored: object = None, flag: str = "--baseline") -> tuple[TrainConfig, str]:
    """``v1`` (``stored``, the study's baseline, else the preset), ``template``, or a JSON file;
    errors name ``flag``, the option the user typed."""
    if choice == "v1":
        if isinstance(stored, dict):
            return TrainConfig.from_dict(stored), "the study's V1 baseline (trial 0)"
        return PRESETS["v1"], "the v1 preset (the study records no baseline)"
    if choice == "template":
        return PRESETS["template"], "the lab's template"
    path = Path(os.path.expanduser(choice))
    if not path.is_file():
        raise UserInputError(
            f"{flag} must be {' or '.join(BASELINE_CHOICES)} or a JSON file of config fields; "
            f"{path} does not exist"
        )
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserInputError(f"{flag} {path} is not readable JSON ({exc})") from None
    if not isinstance(values, dict):
        raise UserInputError(f"{flag} {path} must hold a JSON object of config fields")
    try:
        return TrainConfig.from_dict(values), f"{path.name}"
    except (ConfigError, TypeError) as exc:
        raise UserInputError(f"{flag} {path}: {exc}") from None


def _row(t: FrozenTrial) -> TrialRow:
    seconds = None
    if t.datetime_start and t.datetime_complete:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds()
    return TrialRow(
        number=t.number,
        state=t.state.name,
        value=t.value if t.state == TrialState.COMPLETE else None,
        params=dict(t.params),
        seconds=seconds,
        baseline=bool(t.user_attrs.get("baseline")),
    )
