"""'Simple RNN or LSTM?' answered by experiment.

Each hand-written cell (LSTM, GRU, simple RNN) gets the same small tuning budget: a short
Optuna study of its own, run by the service's machinery (``Objective`` + ``run_trials``,
the same sampler and pruner as ``launch``), scored on the validation split. Each cell's
best config is then retrained on the training images and scored on the test set at
several sequence lengths of the same images (14, 28, 56, 112 and optionally 784 steps),
so the table shows where the plain RNN keeps up and where it falls behind.

The result is kept as one study user attr (``cell_comparison``) for ``report``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import optuna
import torch

from model.classifier import build_model
from model.config import TrainConfig
from model.data import MnistSplits
from search.best import best_config
from search.runner import run_trials
from search.objective import Objective
from search.report.retrain import FinalData, run_final
from search.report.tables import CellResult
from search.pruning import DEFAULT_PRUNE_BY, make_pruner, reports_progress
from search.samplers import make_sampler
from search.space import SearchSpace

__all__ = [
    "CELLS_ATTR",
    "DEFAULT_STEPS",
    "Comparison",
    "compare_cells",
    "load_comparison",
    "store_comparison",
    "tune_cell",
    "tuning_study",
]

CELLS_ATTR = "cell_comparison"
DEFAULT_STEPS = (14, 28, 56, 112)  # 784 (pixels) is opt-in: ~28x the cost of 28 steps
Log = Callable[[str], None]


class Comparison(NamedTuple):
    budget: dict[str, Any]  # trials per cell, space, tuning images: the same for every cell
    tuned: dict[str, dict[str, Any]]  # cell -> its best config (tuned at 28 steps)
    tuned_val: dict[str, float | None]  # cell -> that config's validation accuracy (None: untuned)
    results: list[CellResult]  # one per (cell, steps)

    def steps(self) -> list[int]:
        return sorted({r.steps for r in self.results})

    def cells(self) -> list[str]:
        return list(dict.fromkeys(r.cell for r in self.results))


def tune_cell(
    study: optuna.Study, cell: str, space: SearchSpace, base: TrainConfig, data: MnistSplits,
    trials: int, device: torch.device | str = "cpu", log: Log | None = None,
) -> tuple[TrainConfig, float]:
    """Run ``study`` (this cell's own) up to ``trials`` finished trials; its best config.

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


def tuning_study(storage: optuna.storages.BaseStorage, name: str, cell: str, space: SearchSpace,
                 base: TrainConfig, seed: int) -> optuna.Study:
    """The cell's tuning study, created or resumed: TPE and Hyperband as ``launch`` uses,
    compared by ``launch``'s default --prune-by, or by epoch in a study that began before
    its steps were stored (so a resumed study's steps keep one meaning)."""
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                sampler=make_sampler("tpe", seed), load_if_exists=True)
    prune_by = study.user_attrs.get("prune_by") or ("epoch" if study.trials else DEFAULT_PRUNE_BY)
    study.set_user_attr("prune_by", prune_by)
    study.pruner = make_pruner("hyperband", space.max_epochs(base), space.min_epochs(base),
                               progress=prune_by == "progress")
    if not study.metric_names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(["val_accuracy"])
    study.set_user_attr("cell", cell)
    return study


def compare_cells(
    tuned: dict[str, TrainConfig],
    data: Callable[[int], FinalData],
    steps: Sequence[int] = DEFAULT_STEPS,
    device: torch.device | str = "cpu",
    log: Log | None = None,
) -> list[CellResult]:
    """Retrain each cell's config at each number of steps and score it on the test set."""
    results = []
    for cell, cfg in tuned.items():
        for n in steps:
            run_cfg = cfg.with_overrides(steps=n)
            run_data = data(run_cfg.seed)
            if log is not None:
                log(f"{cell} at {n} steps: training {run_cfg.epochs} epoch(s) on {run_data.train_y.numel():,} images")
            run = run_final(run_cfg, run_data, device=device)
            seconds = sum(r["seconds"] for r in run.epochs) / len(run.epochs)
            params = sum(p.numel() for p in build_model(run_cfg).parameters())
            results.append(CellResult(cell, run.test_acc, params, seconds, run_cfg.epochs, run.train_images, n))
            if log is not None:
                log(f"{cell} at {n} steps: test acc {100 * run.test_acc:.2f}%, {seconds:.1f}s/epoch")
    return results


def store_comparison(study: optuna.Study, comparison: Comparison) -> None:
    study.set_user_attr(CELLS_ATTR, {
        "budget": comparison.budget, "tuned": comparison.tuned, "tuned_val": comparison.tuned_val,
        "results": [r._asdict() for r in comparison.results],
    })


def load_comparison(study: optuna.Study) -> Comparison | None:
    """The stored comparison; one stored by the untuned ``compare-cells`` of before
    (one config, 28 steps) reads as a comparison with a zero-trial budget."""
    stored = study.user_attrs.get(CELLS_ATTR)
    if not isinstance(stored, dict):
        return None
    try:
        results = [CellResult(**r) for r in stored["results"]]
        if "tuned" not in stored:  # the older layout: {"config": ..., "results": ...}
            config = stored["config"]
            return Comparison({"trials": 0}, {r.cell: {**config, "cell": r.cell} for r in results},
                              {r.cell: None for r in results}, results)
        return Comparison(stored["budget"], stored["tuned"], stored["tuned_val"], results)
    except (KeyError, TypeError):
        return None

