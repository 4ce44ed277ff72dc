"""'Simple RNN or LSTM?' answered by measurement: the same config and budget for each
hand-written cell, scored once on the test set, results kept in the study for the report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna
import torch

from model.classifier import build_model
from model.config import CELLS, TrainConfig
from search.report.retrain import FinalData, run_final
from search.report.tables import CellResult

__all__ = ["CELLS_ATTR", "compare_cells", "load_comparison", "store_comparison"]

CELLS_ATTR = "cell_comparison"


def compare_cells(
    cfg: TrainConfig,
    data: FinalData,
    cells: Sequence[str] = CELLS,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] | None = None,
) -> list[CellResult]:
    """Train ``cfg`` once per cell (only the cell differs) and score each on the test set."""
    results = []
    for cell in cells:
        run_cfg = cfg.with_overrides(cell=cell)
        if log is not None:
            log(f"{cell}: training {run_cfg.epochs} epoch(s) on {data.train_y.numel():,} images")
        run = run_final(run_cfg, data, device=device)
        seconds = sum(r["seconds"] for r in run.epochs) / len(run.epochs)
        params = sum(p.numel() for p in build_model(run_cfg).parameters())
        results.append(CellResult(cell, run.test_acc, params, seconds, run_cfg.epochs, run.train_images))
        if log is not None:
            log(f"{cell}: test acc {100 * run.test_acc:.2f}%, {params:,} parameters, {seconds:.1f}s/epoch")
    return results


def store_comparison(study: optuna.Study, cfg: TrainConfig, results: list[CellResult]) -> None:
    study.set_user_attr(CELLS_ATTR, {"config": cfg.to_dict(), "results": [r._asdict() for r in results]})


def load_comparison(study: optuna.Study) -> tuple[dict[str, Any], list[CellResult]] | None:
    stored = study.user_attrs.get(CELLS_ATTR)
    if not isinstance(stored, dict):
        return None
    try:
        return stored["config"], [CellResult(**r) for r in stored["results"]]
    except (KeyError, TypeError):
        return None
