"""Run a study until it holds N finished trials (complete or pruned), with a progress bar.

"N trials" counts finished trials in the study, not trials run by this process, so the
same command resumes an interrupted study to N in total and workers share one target.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import torch
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from search.objective import Objective
from search.study import FINISHED, finished_trials

__all__ = ["RunSummary", "format_params", "run_trials"]


@dataclass(frozen=True)
class RunSummary:
    ran: int  # trials this call finished
    complete: int
    pruned: int
    failed: int
    seconds: float
    best_value: float | None
    best_number: int | None


def run_trials(
    study: optuna.Study,
    objective: Objective,
    n_trials: int,
    timeout: float | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> RunSummary:
    """Optimize until the study has ``n_trials`` finished trials or ``timeout`` passes."""
    start = time.perf_counter()
    before = finished_trials(study)
    bar = tqdm(
        total=n_trials, initial=min(before, n_trials), unit="trial", desc=study.study_name,
        disable=not progress, dynamic_ncols=True,
    )
    write = echo or bar.write

    def on_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        bar.n = min(finished_trials(study), n_trials)
        best = _best_value(study)
        if best is not None:
            bar.set_postfix(best=f"{100 * best:.2f}%")
        bar.refresh()
        write(describe_trial(trial))

    try:
        if before < n_trials:
            study.optimize(
                objective,
                timeout=timeout,
                callbacks=[MaxTrialsCallback(n_trials, states=FINISHED), on_trial],
                catch=(MemoryError, torch.OutOfMemoryError),
                gc_after_trial=True,
            )
    finally:
        bar.close()
    trials = study.get_trials(deepcopy=False)
    best = _best_trial(study)
    return RunSummary(
        ran=finished_trials(study) - before,
        complete=sum(t.state == TrialState.COMPLETE for t in trials),
        pruned=sum(t.state == TrialState.PRUNED for t in trials),
        failed=sum(t.state == TrialState.FAIL for t in trials),
        seconds=time.perf_counter() - start,
        best_value=None if best is None else best.value,
        best_number=None if best is None else best.number,
    )


def describe_trial(trial: FrozenTrial) -> str:
    """One line per finished trial, for the log above the progress bar."""
    seconds = trial.user_attrs.get("trial_seconds")
    took = f" in {seconds:.0f}s" if seconds is not None else ""
    tag = " [V1 baseline]" if trial.user_attrs.get("baseline") else ""
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        result = f"val acc {100 * trial.value:.2f}%"
    elif trial.state == TrialState.PRUNED:
        reason = trial.user_attrs.get("fail_reason")
        last = trial.last_step
        result = f"pruned ({reason})" if reason else f"pruned after epoch {last}"
    else:
        result = trial.state.name.lower()
    return f"trial {trial.number}{tag}: {result}{took} | {format_params(trial.params)}"


def format_params(params: dict[str, object]) -> str:
    parts = []
    for key, value in params.items():
        parts.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


def _best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def _best_value(study: optuna.Study) -> float | None:
    best = _best_trial(study)
    return None if best is None else best.value
