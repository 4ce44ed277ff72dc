"""Creating, resuming and loading a study: what a study must hold to be lstm-search's.

``create_or_resume`` gives a new study its settings, the V1 baseline as trial 0 and the
project's marker (after the settings and the baseline, so its presence says they are in
place). An existing study is resumed only if it is ours and its stored settings agree with
the launch's; otherwise StudyError before anything is written. ``requeue_lost_baseline``
and ``load_existing_study`` serve resumes and the commands that read a study. Opening the
storage is search/storage.py's job; counting trials is search/trials.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import optuna

from model.config import TrainConfig
from search.space import SearchSpace
from search.storage import StudyError
from search.trials import FINISHED

__all__ = [
    "OBJECTIVE_NAME",
    "PROJECT_MARKER",
    "check_ours",
    "check_resumable",
    "create_or_resume",
    "load_existing_study",
    "name_objective",
    "requeue_lost_baseline",
]

# Written last when a study is created: its presence says the study was made by
# lstm-search and that every setting before it is in place.
PROJECT_MARKER = "lstm_search"
_MARKER_WAIT_SECONDS = 10.0  # how long a copy started with the creator waits for the marker
OBJECTIVE_NAME = "val_accuracy"


def name_objective(study: optuna.Study) -> None:
    """Name the objective so optuna-dashboard says "val_accuracy" instead of "Objective 0"
    (at creation; `report` also names studies made before this); a set name is left alone."""
    if not study.metric_names:
        study.set_metric_names([OBJECTIVE_NAME])


def create_or_resume(
    name: str,
    storage: optuna.storages.BaseStorage,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    space: SearchSpace,
    baseline: TrainConfig,
    settings: dict[str, object],
    differences: Callable[[dict[str, Any]], list[str]] | None = None,
) -> tuple[optuna.Study, bool]:
    """Open study ``name`` (creating it if new). Returns (study, created).

    A new study records its settings and gets the V1 baseline enqueued as trial 0, so
    every study answers "how much better than V1?" from its own data. An existing one must
    be an lstm-search study (maximising, with the project's marker) whose stored settings
    ``differences`` finds nothing wrong with; otherwise StudyError, and nothing is written.
    """
    # Creating through the storage tells exactly one of several workers started at the
    # same moment that it made the study, so the baseline is enqueued once, not K times.
    try:
        storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], name)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        created = False
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    if created:
        for key, value in settings.items():
            study.set_user_attr(key, value)
        study.set_user_attr("baseline_config", baseline.to_dict())
        study.enqueue_trial(space.params_of(baseline), user_attrs={"baseline": "v1"})
        study.set_user_attr(PROJECT_MARKER, 1)
        name_objective(study)
        return study, created
    check_resumable(study, differences)
    return study, created


def check_resumable(study: optuna.Study, differences: Callable[[dict[str, Any]], list[str]] | None) -> None:
    """Refuse to resume a study that is not ours or whose stored settings ``differences``
    finds at odds with this launch (StudyError naming each difference)."""
    check_ours(study)
    diffs = differences(study.user_attrs) if differences is not None else []
    if diffs:
        raise StudyError(f"study {study.study_name!r} was created with other settings, so its trials would "
                         f"not be comparable: {'; '.join(diffs)}; launch with the study's settings or pick a "
                         "new --study name")


def check_ours(study: optuna.Study) -> None:
    """Refuse a study lstm-search did not make (e.g. by ``optuna create-study``).

    Such a study may minimise (Optuna's default), which would call the worst accuracy
    the best, and has no V1 baseline or stored settings to compare a resume against.
    """
    name = study.study_name
    if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MAXIMIZE:
        directions = ", ".join(d.name.lower() for d in study.directions)
        raise StudyError(f"study {name!r} is set to {directions}, but lstm-search maximises validation "
                         "accuracy: it was not made by lstm-search; pick another --study name")
    deadline = time.monotonic() + _MARKER_WAIT_SECONDS
    # A copy started together with the creator can see the study before its settings, or
    # with its settings but before the baseline is enqueued: wait for the marker, which the
    # creator sets last, unless the study already holds trials (a study of the first
    # release has none) or the wait is over.
    while PROJECT_MARKER not in study.user_attrs and not study.get_trials(deepcopy=False):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if not _is_ours(study.user_attrs):
        raise StudyError(f"study {name!r} was not made by lstm-search (it holds none of the settings "
                         "lstm-search stores); pick another --study name")


def _is_ours(attrs: dict[str, Any]) -> bool:
    # Studies of the first release have no marker, but always a baseline config.
    return PROJECT_MARKER in attrs or "baseline_config" in attrs


def requeue_lost_baseline(study: optuna.Study, space: SearchSpace) -> bool:
    """Enqueue the V1 baseline again if no copy of it finished, waits or runs.

    It is enqueued only at creation; a Ctrl-C during it records it FAIL and Optuna does
    not re-queue that (only a killed worker's trial, through the heartbeat). Returns
    whether it was enqueued.
    """
    stored = study.user_attrs.get("baseline_config")
    if stored is None:
        return False
    alive = (*FINISHED, optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
    if any(t.user_attrs.get("baseline") and t.state in alive for t in study.get_trials(deepcopy=False)):
        return False
    study.enqueue_trial(space.params_of(TrainConfig.from_dict(stored)), user_attrs={"baseline": "v1"})
    return True


def load_existing_study(name: str, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Load a study that must exist; the error lists the ones that do."""
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
    if name not in names:
        known = ", ".join(names) if names else "none yet"
        raise StudyError(f"no study named {name!r} in this storage (studies: {known})")
    return optuna.load_study(study_name=name, storage=storage)
