"""Read-only counts over a study's trials: what ``--n-trials N`` counts, the best single
trial trained here, and how many trials a study holds.

Kept apart from the storage and from the create/resume policy so that the objective, the
runner and the worker supervisor can ask these questions without importing either. The
best *configuration* (V2, over repeats) is search/best.py's; ``best_trial`` here is one run.
"""

from __future__ import annotations

import math

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.best import is_repeat
from search.prior import is_prior

__all__ = ["FINISHED", "best_trial", "existing_trial_count", "finished_trials"]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def finished_trials(study: optuna.Study) -> int:
    """Finished (complete or pruned) search trials: what ``--n-trials N`` counts. Repeats of
    the confirmation phase (search/confirm.py) come on top of N, and prior copies
    (search/prior.py) were not trained here."""
    return sum(not is_repeat(t) and not is_prior(t) for t in study.get_trials(deepcopy=False, states=FINISHED))


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The study's best complete trial trained here (never a prior copy), or None before one."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if not is_prior(t) and t.value is not None and math.isfinite(t.value)]
    return max(complete, key=lambda t: t.value, default=None)


def existing_trial_count(storage: optuna.storages.BaseStorage, name: str) -> int:
    """Trials of every state a study already holds (0 if it does not exist).

    Used to offset the sampler's seed on resume (search/samplers.py): a sampler reseeded
    with the same seed would otherwise redraw the very configurations the study tried.
    """
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.study_name == name:
            return summary.n_trials
    return 0
