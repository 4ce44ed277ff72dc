"""The report's tables as pandas DataFrames (rendered with ``DataFrame.to_markdown``)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, NamedTuple

import pandas as pd

from search.formatting import short_number
from search.report.collect import StudySummary
from search.report.importance import Importance
from search.report.retrain import FinalRun

__all__ = [
    "CellResult",
    "cells_table",
    "epochs_table",
    "forced_gates_table",
    "format_value",
    "hyperparameter_table",
    "importance_table",
    "seeds_table",
    "summary_table",
    "to_markdown",
    "tuned_cells_table",
]

# The lab's table: these rows always, in the lab's words and order. Every other field of
# the config type appears (in declaration order) only when V1 and V2 differ in it, so a
# field added to TrainConfig later shows up without anyone editing this module.
LAB_ROWS = (
    ("batch size", "batch_size"),
    ("learning rate", "lr"),
    ("hidden size", "hidden_size"),
    ("epoch", "epochs"),
    ("optimizer", "optimizer"),
)
# Nicer words for some fields; any other field is labelled with its name, spaces for "_".
LABELS = {
    "weight_decay": "weight decay",
    "schedule": "LR schedule",
    "grad_clip": "gradient clip",
    "forget_bias": "forget-gate bias",
    "recurrent_init": "recurrent init",
    "shift": "random shift (pixels)",
    "rotate": "random rotation (degrees)",
    "scale": "random scaling (fraction)",
    "ema": "EMA decay of the weights",
}
_OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "sgd": "SGD"}
_SCHEDULES = {"none": "constant", "cosine": "cosine annealing", "onecycle": "one-cycle"}


class CellResult(NamedTuple):
    """One row of the 'simple RNN or LSTM?' comparison."""

    cell: str
    test_acc: float
    parameters: int
    epoch_seconds: float  # mean wall time of an epoch (training and test scoring)
    epochs: int
    train_images: int
    steps: int = 28  # time steps the images were read in (28 = rows)


def format_value(field: str, value: Any) -> str:
    if field == "optimizer":
        return _OPTIMIZERS.get(value, str(value))
    if field == "schedule":
        return _SCHEDULES.get(value, str(value))
    if field == "grad_clip":
        return "off" if value == 0 else f"{value:g} (max norm)"
    if field == "cell":
        return str(value).upper()
    if isinstance(value, float):
        return short_number(value)
    return str(value)


def hyperparameter_table(v1: Any, v2: Any) -> pd.DataFrame:
    """``Hyper-parameter | V1 | V2`` as the lab hands it in, built from the config's
    dataclass fields: the lab's rows, then each other field where V1 and V2 differ."""
    lab = [name for _, name in LAB_ROWS]
    differing = [f.name for f in fields(v1) if f.name not in lab and getattr(v1, f.name) != getattr(v2, f.name)]
    labels = {name: label for label, name in LAB_ROWS} | LABELS
    return pd.DataFrame(
        [(labels.get(name, name.replace("_", " ")), format_value(name, getattr(v1, name)),
          format_value(name, getattr(v2, name))) for name in lab + differing],
        columns=["Hyper-parameter", "V1", "V2"],
    )


def epochs_table(v1: FinalRun, v2: FinalRun) -> pd.DataFrame:
    """Per-epoch loss, test accuracy and lr of both runs side by side (blank past an
    end when one trained longer)."""
    frames = []
    for name, run in (("V1", v1), ("V2", v2)):
        df = pd.DataFrame(run.epochs).set_index("epoch")
        df = pd.DataFrame({
            f"{name} train loss": df["train_loss"].map("{:.4f}".format),
            f"{name} test loss": df["test_loss"].map("{:.4f}".format),
            f"{name} test acc": df["test_acc"].map(lambda a: f"{100 * a:.2f}%"),
            f"{name} lr": df["lr"].map("{:.2e}".format),
        })
        frames.append(df)
    table = pd.concat(frames, axis=1).fillna("")
    table.index.name = "epoch"
    return table.reset_index()


def seeds_table(v1_runs: list[FinalRun], v2_runs: list[FinalRun]) -> pd.DataFrame:
    """Every final run's test accuracy: one row per seed, V1 and V2 side by side."""
    rows = []
    for k in range(max(len(v1_runs), len(v2_runs))):
        row = [k + 1]
        for runs in (v1_runs, v2_runs):
            row += ([runs[k].config.get("seed", ""), f"{100 * runs[k].test_acc:.2f}%"] if k < len(runs) else ["", ""])
        rows.append(row)
    return pd.DataFrame(rows, columns=["run", "V1 seed", "V1 test acc", "V2 seed", "V2 test acc"])


def forced_gates_table(forced: dict[str, float]) -> pd.DataFrame:
    """Test accuracy with each gate forced (``"f=0"`` -> acc), the unforced model first."""
    base = forced["none"]
    rows = [("none (as trained)", f"{100 * base:.2f}%", "")]
    rows += [(key.replace("=", " = "), f"{100 * acc:.2f}%", f"{100 * (acc - base):+.2f}")
             for key, acc in forced.items() if key != "none"]
    return pd.DataFrame(rows, columns=["gate forced", "test accuracy", "change (points)"])


def summary_table(s: StudySummary) -> pd.DataFrame:
    if s.best is not None:
        best = f"{s.best.v2.text()} (trial {s.best.number}; ± one standard error)"
    else:
        best = "none complete" if s.best_value is None else f"{100 * s.best_value:.2f}% (trial {s.best_number})"
    images = "all but the validation set" if s.subset is None else f"{s.subset:,} (--subset)"
    rows = [
        ("trials", f"{s.n_trials}"),
        ("complete / pruned / failed", f"{s.complete} / {s.pruned} / {s.failed}"),
        ("total trial time", _duration(s.total_seconds)),
        ("wall time (first start to last finish)", _duration(s.wall_seconds)),
        ("best validation accuracy (V2)", best),
        ("sampler", s.sampler),
        ("pruner", s.pruner),
        ("search space", s.space),
        ("training images per trial", images),
        ("validation images", "unknown" if s.val_size is None else f"{s.val_size:,}"),
    ]
    if s.other:
        rows.insert(2, ("running or waiting", str(s.other)))
    return pd.DataFrame(rows, columns=["Study", s.name])


def importance_table(importances: list[Importance]) -> pd.DataFrame:
    return pd.DataFrame(
        [(i.param, f"{i.importance:.3f}") for i in importances], columns=["parameter", "fANOVA importance"]
    )


def cells_table(results: list[CellResult]) -> pd.DataFrame:
    """Test accuracy of each cell (rows) at each number of steps (columns)."""
    steps = sorted({r.steps for r in results})
    cells = list(dict.fromkeys(r.cell for r in results))
    acc = {(r.cell, r.steps): r.test_acc for r in results}
    rows = [[cell.upper(), *(f"{100 * acc[cell, n]:.2f}%" if (cell, n) in acc else "" for n in steps)]
            for cell in cells]
    return pd.DataFrame(rows, columns=["cell", *(f"{n} steps ({784 // n} px)" for n in steps)])


def tuned_cells_table(tuned: dict[str, dict[str, Any]], tuned_val: dict[str, float | None],
                      results: list[CellResult]) -> pd.DataFrame:
    """Each cell's tuned config in brief, its validation score, size and speed at 28 steps."""
    rows = []
    for cell, cfg in tuned.items():
        at = {r.steps: r for r in results if r.cell == cell}
        ref = at.get(28) or next(iter(at.values()), None)
        val = tuned_val.get(cell)
        rows.append((
            cell.upper(), "untuned" if val is None else f"{100 * val:.2f}%", cfg["hidden_size"],
            format_value("lr", cfg["lr"]), format_value("optimizer", cfg["optimizer"]), cfg["epochs"],
            "" if ref is None else f"{ref.parameters:,}",
            "" if ref is None else f"{ref.epoch_seconds:.1f} ({ref.steps} steps)",
        ))
    return pd.DataFrame(rows, columns=["cell", "best val acc (tuning)", "hidden size", "lr", "optimizer",
                                       "epochs", "parameters", "seconds / epoch"])


def to_markdown(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, disable_numparse=True)


def _duration(seconds: float) -> str:
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {sec:02d}s" if hours else f"{minutes}m {sec:02d}s"
