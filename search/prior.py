"""A prior: an earlier study's finished trials in the sampler's history, not retrained.

``launch --prior STUDY [--prior-storage URL]`` copies the complete and pruned trials of
STUDY into this study as finished trials (Optuna's ``create_trial`` + ``add_trials``), so
TPE models from its first trial instead of after ten random ones. They cost no training.

- Each copy carries the user attr ``prior`` = "STUDY#NUMBER". Prior trials never count
  toward ``--n-trials`` and never become V2 (``search/trials.py`` ``finished_trials``,
  ``is_prior``): a configuration must be trained in this study to be reported.
- Scores are comparable only on the same validation images with the same steps, so a
  source with another ``--seed``, ``--val-size``, ``--subset``, ``--prune-by`` or
  ``--precision`` is refused with one line. Another space is fitted, not refused: a trial whose values all
  lie in this space (and agree with its fixed values) is copied with this space's
  distributions; the others are skipped, counted in one notice. Nothing is clipped: a
  clipped configuration is not the one that earned the score.
- A resume with the same flag copies nothing twice. The source study is only read.
- ``--prior builtin`` reads the prior shipped for the default space (``search/priors/``,
  built by ``benchmarks/build_prior.py`` from the committed full-data studies).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from model.config import TrainConfig, field_flag
from model.errors import UserInputError
from search.space import Categorical, FloatRange, IntRange, Param, SearchSpace

__all__ = ["BUILTIN", "PRIOR_ATTR", "add_prior", "builtin_storage", "check_compatible", "is_prior", "prior_trials"]

PRIOR_ATTR = "prior"  # trial user attr: "STUDY#NUMBER" the trial was copied from
BUILTIN = "builtin"
BUILTIN_STUDY = "default-space"
# What must match for two studies' scores to mean the same (search/settings.py DEFINING_KEYS
# less the space, which is fitted trial by trial).
_SAME = ("seed", "val_size", "subset", "prune_by", "precision")


def is_prior(trial: FrozenTrial) -> bool:
    return PRIOR_ATTR in trial.user_attrs


def builtin_storage() -> str:
    """The SQLite URL of the prior shipped with the package."""
    return "sqlite:///" + str(Path(__file__).parent / "priors" / "default-space.db")


def check_compatible(source: optuna.Study, mine: dict[str, Any]) -> None:
    """Refuse a source scored on other images or steps, naming each difference."""
    theirs = source.user_attrs
    # A key the source never stored (a study made before it was) is not compared.
    diffs = [f"{field_flag(key)} {theirs.get(key)} (this launch: {mine.get(key)})"
             for key in _SAME if key in theirs and theirs[key] != mine.get(key)]
    if diffs:
        raise UserInputError(f"--prior {source.study_name}: its scores are not comparable with this study's: "
                             f"{'; '.join(diffs)}; use a prior launched with the same values")


def prior_trials(source: optuna.Study, space: SearchSpace, base: TrainConfig) -> tuple[list[FrozenTrial], str | None]:
    """The source's finished trials that fit ``space``, as new trials, and a notice of skips."""
    copies, skipped = [], 0
    for t in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        params = _fit(t, space, base)
        if params is None or (t.state == TrialState.COMPLETE and not _finite(t.value)):
            skipped += 1
            continue
        copies.append(optuna.trial.create_trial(
            state=t.state, value=t.value if t.state == TrialState.COMPLETE else None, params=params,
            distributions={name: _distribution(space.params[name]) for name in params},
            intermediate_values=dict(t.intermediate_values),
            # a copy of a copy (the built-in prior) keeps the study that trained it
            user_attrs={PRIOR_ATTR: t.user_attrs.get(PRIOR_ATTR, f"{source.study_name}#{t.number}"),
                        "config": t.user_attrs.get("config", {})},
        ))
    notice = (f"prior: {skipped} trials of {source.study_name} skipped: their values lie outside this space"
              if skipped else None)
    return copies, notice


def add_prior(study: optuna.Study, copies: list[FrozenTrial]) -> int:
    """Add the copies not already in ``study`` (a resume adds nothing twice); how many."""
    have = {t.user_attrs[PRIOR_ATTR] for t in study.get_trials(deepcopy=False) if is_prior(t)}
    new = [t for t in copies if t.user_attrs[PRIOR_ATTR] not in have]
    study.add_trials(new)
    return len(new)


def _fit(trial: FrozenTrial, space: SearchSpace, base: TrainConfig) -> dict[str, Any] | None:
    stored = trial.user_attrs.get("config")
    values = dict(stored) if isinstance(stored, dict) else {}
    values.update(trial.params)
    if any(values.get(name, getattr(base, name)) != value for name, value in space.fixed.items()):
        return None
    params = {name: values.get(name, getattr(base, name)) for name in space.params}
    return params if all(_inside(space.params[n], v) for n, v in params.items()) else None


def _inside(spec: Param, value: Any) -> bool:
    if isinstance(spec, Categorical):
        return value in spec.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if isinstance(spec, IntRange) and value != int(value):
        return False
    on_grid = not spec.step or math.isclose((value - spec.low) / spec.step, round((value - spec.low) / spec.step))
    return spec.low <= value <= spec.high and on_grid


def _distribution(spec: Param) -> BaseDistribution:
    if isinstance(spec, Categorical):
        return CategoricalDistribution(spec.choices)
    if isinstance(spec, IntRange):
        return IntDistribution(spec.low, spec.high, log=spec.log, step=spec.step)
    assert isinstance(spec, FloatRange)
    return FloatDistribution(spec.low, spec.high, log=spec.log, step=spec.step)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
