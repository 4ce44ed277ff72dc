"""'What mattered': fANOVA importances, and a sentence per top parameter read off the trials.

Optuna 5 defaults to PED-ANOVA; the report asks for fANOVA (a random forest over the
complete trials, Hutter et al. 2014), so the evaluator is always passed explicitly and
seeded, making the table and the figure agree run after run.

The sentences compare the best and the worst quarter of complete trials: the range of
values each quarter used for a numeric parameter, the counts of each choice for a
categorical one. They are computed, so they say only what the trials show.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import optuna
from optuna.trial import TrialState

from search.formatting import short_number
from search.report.collect import TrialRow

__all__ = [
    "Importance",
    "QuartileContrast",
    "categorical_params",
    "describe_contrast",
    "fanova_importances",
    "importance_params",
    "quartile_contrast",
]

MIN_TRIALS = 4  # a forest over fewer complete trials says nothing


class Importance(NamedTuple):
    param: str
    importance: float  # share of the explained variance, the column sums to 1


class QuartileContrast(NamedTuple):
    param: str
    quarter: int  # trials in each quarter
    best_values: list[Any]  # the parameter's values in the best quarter
    worst_values: list[Any]
    best_cutoff: float  # lowest validation accuracy inside the best quarter
    worst_cutoff: float  # highest inside the worst quarter
    categorical: bool  # counts of each choice instead of a range


def importance_params(study: optuna.Study) -> list[str]:
    """Every searched parameter. The enqueued V1 trial lacks those of its values that lie
    outside the space, and Optuna's non-default evaluators would then drop that parameter
    for all trials; naming the parameters makes it skip that one trial instead."""
    names: set[str] = set()
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        names.update(t.distributions)
    return sorted(names)


def fanova_importances(study: optuna.Study, seed: int = 0) -> list[Importance]:
    """fANOVA importances, largest first; empty when too few complete trials vary."""
    params = importance_params(study)
    usable = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if set(params) <= set(t.params)
    ]
    if not params or len(usable) < MIN_TRIALS:
        return []
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    values = optuna.importance.get_param_importances(study, evaluator=evaluator, params=params)
    return [Importance(k, float(v)) for k, v in values.items() if math.isfinite(v)]


def categorical_params(study: optuna.Study) -> set[str]:
    """Parameters drawn with suggest_categorical (even numeric choices like batch size)."""
    return {
        name
        for t in study.get_trials(deepcopy=False)
        for name, dist in t.distributions.items()
        if isinstance(dist, optuna.distributions.CategoricalDistribution)
    }


def quartile_contrast(
    rows: list[TrialRow], param: str, categorical: bool = False
) -> QuartileContrast | None:
    """The best and worst quarter (at least one trial each) of complete trials with ``param``."""
    scored = sorted(
        (r for r in rows if r.state == "COMPLETE" and r.value is not None and param in r.params),
        key=lambda r: r.value, reverse=True,
    )
    if len(scored) < 2:
        return None
    quarter = max(1, len(scored) // 4)
    best, worst = scored[:quarter], scored[-quarter:]
    return QuartileContrast(
        param=param,
        quarter=quarter,
        best_values=[r.params[param] for r in best],
        worst_values=[r.params[param] for r in worst],
        best_cutoff=min(r.value for r in best),
        worst_cutoff=max(r.value for r in worst),
        categorical=categorical,
    )


def describe_contrast(c: QuartileContrast, importance: float) -> str:
    """One sentence: importance, then what the best and worst quarters used."""
    return (
        f"**{c.param}** (importance {importance:.2f}): "
        f"the best {c.quarter} trial(s) (val acc ≥ {100 * c.best_cutoff:.2f}%) used "
        f"{_values(c.best_values, c.categorical)}; the worst {c.quarter} (val acc ≤ "
        f"{100 * c.worst_cutoff:.2f}%) used {_values(c.worst_values, c.categorical)}."
    )


def _values(values: list[Any], categorical: bool) -> str:
    """A numeric range, or each choice with its count ("adam ×3, rmsprop ×1")."""
    if not categorical and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        low, high = min(values), max(values)
        if low == high:
            return _fmt(low)
        return f"{_fmt(low)} to {_fmt(high)}"
    counts: dict[str, int] = {}
    for v in values:
        counts[_fmt(v)] = counts.get(_fmt(v), 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} ×{n}" for k, n in ordered)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return short_number(v)
    return str(v)
