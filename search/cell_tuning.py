"""compare-cells' tuning: each hand-written cell gets a short Optuna study of its own.

Every cell is searched over the same space with the same budget, by the service's own
machinery (``Objective`` + ``run_trials``), with launch's default sampler and pruner
(``SAMPLER`` / ``PRUNER``), and scored on the validation split; its best config is what
search/report/cells.py then retrains and tests at several sequence lengths.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna
import torch

from model.config import TrainConfig
from model.data import MnistSplits
from search.best import best_config
from search.objective import Objective
from search.pruning import DEFAULT_PRUNE_BY, DEFAULT_PRUNER, make_pruner, reports_progress
from search.runner import run_trials
from search.samplers import DEFAULT_SAMPLER, make_sampler
from search.space import SearchSpace
from search.study import name_objective

__all__ = ["PRUNER", "SAMPLER", "tune_cell", "tuning_study"]

# The tuning studies search as launch does by default, so each cell is tuned the way a
# search would tune it; the comparison's stored budget names these.
SAMPLER = DEFAULT_SAMPLER
PRUNER = DEFAULT_PRUNER


def tuning_study(storage: optuna.storages.BaseStorage, name: str, cell: str, space: SearchSpace,
                 base: TrainConfig, seed: int) -> optuna.Study:
    """The cell's tuning study, created or resumed: ``SAMPLER`` and ``PRUNER``, compared
    by ``launch``'s default --prune-by, or by epoch in a study that began before its steps
    were stored (so a resumed study's steps keep one meaning)."""
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                sampler=make_sampler(SAMPLER, seed), load_if_exists=True)
    prune_by = study.user_attrs.get("prune_by") or ("epoch" if study.trials else DEFAULT_PRUNE_BY)
    study.set_user_attr("prune_by", prune_by)
    study.pruner = make_pruner(PRUNER, space.max_epochs(base), space.min_epochs(base),
                               progress=prune_by == "progress")
    name_objective(study)
    study.set_user_attr("cell", cell)
    return study


def tune_cell(
    study: optuna.Study, cell: str, space: SearchSpace, base: TrainConfig, data: MnistSplits,
    trials: int, device: torch.device | str = "cpu", log: Callable[[str], None] | None = None,
) -> tuple[TrainConfig, float]:
    """Run ``study`` (this cell's own) up to ``trials`` finished trials; its best config
    and that config's validation accuracy.

    The space's fixed ``cell`` (if any) is replaced by ``cell``: every cell is searched
    over the same ranges. Resumes: trials already finished count towards the budget.
    """
    cell_space = SearchSpace(space.params, {**space.fixed, "cell": cell}, space.source)
    objective = Objective(cell_space, base.with_overrides(cell=cell), data, torch.device(device),
                          progress_steps=reports_progress(study))
    run_trials(study, objective, trials, progress=False, echo=log)
    best = best_config(study)  # search/best.py, as for V2
    if best is None:
        raise ValueError(f"no trial of {study.study_name!r} completed")  # the caller words it
    return TrainConfig.from_dict(best.v2.config or {}), float(best.mean)
