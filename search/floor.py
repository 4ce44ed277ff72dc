"""A floor under the pruner: a trial below the V1 baseline's curve is stopped.

Every study holds the V1 baseline's learning curve (trial 0). From ``FLOOR_FROM`` percent
of a trial's own epochs on, a trial whose validation accuracy is below the baseline's at
the same fraction of *its* epochs is pruned: it is losing to the configuration it is meant
to beat, at the same point of its schedule. Hyperband only compares trials with each
other, so early in a study (few values at a rung) it keeps such trials running.

The floor is a mixin of the rung pruners (``search/pruning.py`` builds them), not a
wrapper: TPE samples a Hyperband-pruned study's trials by their bracket, which it finds by
the pruner's type. Whether the launch uses it by default is decided by measurement
(benchmarks/floor_check.py; benchmarks/RESULTS.md#floor).
"""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = ["DEFAULT_MARGIN", "FLOOR_FROM", "FloorMixin", "baseline_curve", "below_floor", "progress_of"]

# How far below the baseline counts as below: in standard errors of the difference of two
# accuracies on the study's validation split (binomial), so a trial is not stopped for a
# gap that the split cannot tell from noise. Chosen by benchmarks/floor_check.py.
DEFAULT_MARGIN = 2.0
FLOOR_FROM = 33  # percent of a trial's own epochs: before a third, schedules and augmentation still rank runs wrongly


def progress_of(trial: FrozenTrial, step: int, progress_steps: bool) -> float | None:
    """How far (0..1] through its own epochs ``trial`` was when it reported ``step``."""
    if progress_steps:
        return step / 100
    epochs = (trial.user_attrs.get("config") or {}).get("epochs")
    return step / epochs if isinstance(epochs, int) and epochs > 0 else None


def baseline_curve(study: optuna.Study, progress_steps: bool) -> tuple[list[float], list[float]] | None:
    """The finished V1 baseline's validation accuracy by fraction of its epochs, or None."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("baseline") and t.intermediate_values:
            points = sorted((progress_of(t, s, progress_steps), v) for s, v in t.intermediate_values.items())
            if any(x is None for x, _ in points):
                return None
            return [float(x) for x, _ in points], [float(v) for _, v in points]  # type: ignore[arg-type]
    return None


def below_floor(study: optuna.Study, trial: FrozenTrial, progress_steps: bool,
                margin: float = DEFAULT_MARGIN) -> bool:
    """Whether ``trial``'s latest value lies ``margin`` standard errors below the
    baseline's at the same progress."""
    step = trial.last_step
    if step is None or trial.user_attrs.get("baseline"):
        return False
    done = progress_of(trial, step, progress_steps)
    if done is None or 100 * done < FLOOR_FROM:
        return False
    curve = baseline_curve(study, progress_steps)
    if curve is None:  # the baseline has not finished yet: no floor to compare with
        return False
    # Between two of the baseline's epochs, the straight line through them.
    floor = float(np.interp(done, curve[0], curve[1]))
    val_size = study.user_attrs.get("val_size") or 5000
    noise = math.sqrt(2 * floor * (1 - floor) / val_size)
    return trial.intermediate_values[step] < floor - margin * noise


class FloorMixin:
    """Prunes what the rung pruner prunes, and with ``floor`` on also a trial below V1."""

    floor: bool = False
    progress_steps: bool = True
    margin: float = DEFAULT_MARGIN

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        prune = super().prune(study, trial)  # type: ignore[misc]  # records the rung value either way
        return bool(prune) or (self.floor and below_floor(study, trial, self.progress_steps, self.margin))
