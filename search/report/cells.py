"""'Simple RNN or LSTM?': the cells' test runs and the comparison stored in the study.

compare-cells tunes each hand-written cell (LSTM, GRU, simple RNN) on the same budget
(search/cell_tuning.py). Here each cell's best config is retrained on the training
images and scored on the test set at several sequence lengths of the same images (14,
28, 56, 112 and optionally 784 steps), so the table shows where the plain RNN keeps up
and where it falls behind.

The result is kept as one study user attr (``cell_comparison``), written by compare-cells
and read by ``report``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import optuna
import torch

from model.classifier import build_model
from model.config import TrainConfig
from search.report.retrain import FinalData, run_final
from search.report.tables import CellResult

__all__ = [
    "CELLS_ATTR",
    "DEFAULT_STEPS",
    "Comparison",
    "compare_cells",
    "load_comparison",
    "store_comparison",
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

