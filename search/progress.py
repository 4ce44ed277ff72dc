"""What a run shows: one line per finished trial, and the progress bar's phase, count,
best configuration and budget end. Shared by the single-process run (search/runner.py)
and the launch that watches several workers (search/workers.py).
"""

from __future__ import annotations

import time

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from search.best import REPEAT_OF, REPEAT_SEED, best_config, binomial_se, format_score, val_size_of
from search.confirm import ConfirmPlan, SearchEnd, phase_counts
from search.formatting import short_number
from search.trials import finished_trials

__all__ = ["budget_end", "describe_trial", "format_params", "update_bar"]


def describe_trial(trial: FrozenTrial, val_size: int | None = None) -> str:
    """One line per finished trial, for the log above the progress bar; an accuracy carries
    ± one binomial standard error of the ``val_size`` validation images."""
    seconds = trial.user_attrs.get("trial_seconds")
    took = f" in {seconds:.0f}s" if seconds is not None else ""
    tag = " [V1 baseline]" if trial.user_attrs.get("baseline") else ""
    if REPEAT_OF in trial.user_attrs:
        tag += f" [repeat of trial {trial.user_attrs[REPEAT_OF]}, seed {trial.user_attrs.get(REPEAT_SEED)}]"
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        result = "val acc " + format_score(trial.value, binomial_se(trial.value, val_size))
    elif trial.state == TrialState.PRUNED:
        reason = trial.user_attrs.get("fail_reason")
        # One report per epoch; its step is the epoch or, with --prune-by progress, a percentage.
        done = len(trial.intermediate_values)
        total = (trial.user_attrs.get("config") or {}).get("epochs")
        result = f"pruned ({reason})" if reason else f"pruned after epoch {done}" + (f" of {total}" if total else "")
    elif trial.state == TrialState.FAIL:
        reason = trial.user_attrs.get("fail_reason")
        result = f"failed ({reason})" if reason else "failed"
    else:
        result = trial.state.name.lower()
    params = f" | {format_params(trial.params)}" if trial.params and REPEAT_OF not in trial.user_attrs else ""
    return f"trial {trial.number}{tag}: {result}{took}{params}"


def update_bar(bar: tqdm, study: optuna.Study, n_trials: int, ends: str | None,
               search_end: SearchEnd | None = None, plan: ConfirmPlan | None = None) -> None:
    """The bar's phase and count (search trials toward N; once N is reached or the search's
    share of the budget, ``search_end``, is over: repeats done of those ``plan`` asks for), the best
    configuration so far (± one standard error) and, with a time budget, when it ends."""
    if bar.disable:
        return
    trials = study.get_trials(deepcopy=False)
    searched = finished_trials(study)
    confirming = phase_counts(trials, plan, val_size_of(study)) or (0, 0)
    name = study.study_name
    if searched < n_trials and (search_end is None or time.time() < search_end.at(trials)):
        bar.set_description_str(f"{name} [search]", refresh=False)
        bar.total, bar.n = n_trials, min(searched, n_trials)
    else:
        bar.set_description_str(f"{name} [confirm]", refresh=False)
        bar.n, bar.total = confirming
    best = best_config(study, trials)
    postfix = {} if best is None else {"best": f"#{best.number} {best.v2.text()}"}
    if ends is not None:
        postfix["ends"] = ends
    bar.set_postfix(postfix, refresh=False)
    bar.refresh()


def budget_end(deadline: float | None) -> str | None:
    """The local clock time at which a time budget ends ("14:05", or "Tue 14:05" when not
    today), for progress bars; None without a budget."""
    if deadline is None:
        return None
    end = time.localtime(deadline)
    same_day = time.strftime("%F", end) == time.strftime("%F")
    return time.strftime("%H:%M" if same_day else "%a %H:%M", end)


def format_params(params: dict[str, object]) -> str:
    parts = []
    for key, value in params.items():
        parts.append(f"{key}={short_number(value)}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)
