"""The report's PNG figures, drawn with matplotlib's Agg backend (no display needed).

Each ``*_figure`` function draws one figure (``study_figures`` Optuna's few), saves it and
closes it, so a report never leaks figures; ``grid_indices`` and ``confusion_matrix`` are
the numbers two of them draw.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: reports are made on headless machines

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import optuna
from matplotlib.figure import Figure

from model.data import MNIST_MEAN, MNIST_STD
from search.best import best_config
from search.pruning import reports_progress
from search.report.retrain import FinalRun
from search.report.tables import CellResult

__all__ = [
    "cells_steps_figure",
    "confusion_figure",
    "confusion_matrix",
    "curves_figure",
    "digit_grid_figure",
    "gates_figure",
    "grid_indices",
    "intermediate_error_figure",
    "slice_figure",
    "study_figures",
]

DPI = 110
_COLORS = {"V1": "tab:blue", "V2": "tab:orange"}


def curves_figure(v1: FinalRun, v2: FinalRun, path: Path) -> Path:
    """Loss (train solid, test dashed) and test accuracy per epoch, V1 against V2."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for name, run in (("V1", v1), ("V2", v2)):
        ep = [r["epoch"] for r in run.epochs]
        color = _COLORS[name]
        ax_loss.plot(ep, [r["train_loss"] for r in run.epochs], "-o", color=color, ms=3, label=f"{name} train")
        ax_loss.plot(ep, [r["test_loss"] for r in run.epochs], "--s", color=color, ms=3, label=f"{name} test")
        ax_acc.plot(ep, [100 * r["test_acc"] for r in run.epochs], "-o", color=color, ms=3,
                    label=f"{name} ({100 * run.test_acc:.2f}%)")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _save(fig, path)


def grid_indices(labels: np.ndarray, wrong: np.ndarray) -> list[int]:
    """For each digit 0-9, the first test image that V1 or V2 gets wrong, or the first
    image of that digit when both get every one right (so mistakes show if there are any)."""
    chosen = []
    for digit in range(10):
        of_digit = np.flatnonzero(labels == digit)
        if of_digit.size == 0:
            raise ValueError(f"no test image of digit {digit}")
        missed = of_digit[wrong[of_digit]]
        chosen.append(int(missed[0] if missed.size else of_digit[0]))
    return chosen


def digit_grid_figure(
    images: np.ndarray, labels: np.ndarray, v1: FinalRun, v2: FinalRun, path: Path
) -> tuple[Path, list[int]]:
    """Ten test images, one per digit, titled with the true label and both predictions;
    a wrong prediction is red and marked with a cross."""
    p1, p2 = np.array(v1.predicted()), np.array(v2.predicted())
    indices = grid_indices(labels, (p1 != labels) | (p2 != labels))
    fig, axes = plt.subplots(2, 5, figsize=(10, 4.8))
    for ax, i in zip(axes.flat, indices):
        ax.imshow(images[i] * MNIST_STD + MNIST_MEAN, cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        true = int(labels[i])
        ax.set_title(f"#{i}  true {true}", fontsize=9)
        for row, (name, pred) in enumerate((("V1", int(p1[i])), ("V2", int(p2[i])))):
            ok = pred == true
            ax.text(0.5, -0.10 - 0.14 * row, f"{name}: {pred} {'✓' if ok else '✗'}",
                    transform=ax.transAxes, ha="center", va="top", fontsize=9,
                    color="black" if ok else "red", fontweight="normal" if ok else "bold")
        if not (p1[i] == true and p2[i] == true):
            for spine in ax.spines.values():
                spine.set(color="red", linewidth=2)
    fig.suptitle("One test image per digit (the first one V1 or V2 misclassifies, if any)", fontsize=10)
    fig.subplots_adjust(hspace=0.55, bottom=0.12)
    return _save(fig, path, tight=False), indices


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int = 10) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return counts


def confusion_figure(labels: np.ndarray, run: FinalRun, path: Path, name: str = "V2") -> Path:
    counts = confusion_matrix(labels, np.array(run.predicted()))
    fig, ax = plt.subplots(figsize=(6.2, 5.4))
    # Log colour scale: the diagonal (~1000) would otherwise wash out the few mistakes.
    shown = ax.imshow(counts + 1, cmap="Blues", norm=matplotlib.colors.LogNorm())
    for (t, p), n in np.ndenumerate(counts):
        if n:
            ax.text(p, t, str(n), ha="center", va="center", fontsize=8,
                    color="white" if t == p else "red")  # off the diagonal = a mistake
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted digit", ylabel="true digit",
           title=f"Confusion matrix of {name} on the {counts.sum():,} test images "
                 f"({100 * run.test_acc:.2f}% correct)")
    ax.title.set_fontsize(9)
    fig.colorbar(shown, ax=ax, label="images + 1 (log scale)")
    return _save(fig, path)


def study_figures(
    study: optuna.Study, out: Path, params: list[str], importance_seed: int = 0
) -> dict[str, Path]:
    """Optuna's optimization history and fANOVA importances (the same seeded evaluator as
    the table), and the validation error per epoch of every trial."""
    written: dict[str, Path] = {}
    vis = optuna.visualization.matplotlib
    ax = vis.plot_optimization_history(study, target_name="validation accuracy")
    written["history"] = _save(ax.figure, out / "optimization_history.png")
    written["intermediate"] = intermediate_error_figure(study, out / "intermediate_values.png")
    if params:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=importance_seed)
        ax = vis.plot_param_importances(study, evaluator=evaluator, params=params,
                                        target_name="validation accuracy")
        ax.set_title("Hyperparameter importances (fANOVA)", loc="left")  # replaces Optuna's
        written["importances"] = _save(ax.figure, out / "param_importances.png")
    return written


def intermediate_error_figure(study: optuna.Study, path: Path) -> Path:
    """Validation error (1 - accuracy) per epoch of every trial, on a log scale.

    Accuracy on a linear axis spans the first epochs' 30% to the best trials' 99.4%,
    which squeezes the 97-99.5% band where trials actually differ into a few pixels; on
    a log error axis 3% and 0.6% are as far apart as 30% and 6%.
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    best = _best_number(study)
    states = optuna.trial.TrialState
    err_all: list[float] = []
    for t in study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED)):
        if not t.intermediate_values:
            continue
        steps = sorted(t.intermediate_values)
        err = [max(1 - t.intermediate_values[s], 1e-4) for s in steps]  # 100% right: off the log axis
        err_all += err
        if t.number == best:
            ax.plot(steps, err, "-o", color="tab:red", ms=3, lw=2, zorder=3, label=f"best (trial {t.number})")
        elif t.state == states.PRUNED:
            ax.plot(steps, err, "-", marker=".", color="tab:gray", alpha=0.35, lw=0.8, ms=3)
        else:
            ax.plot(steps, err, "-", color="tab:blue", alpha=0.55, lw=1)
    ax.plot([], [], "-", color="tab:blue", label="complete")
    ax.plot([], [], "-", color="tab:gray", label="pruned")
    xlabel = "% of the trial's epochs done" if reports_progress(study) else "epoch"
    ax.set(xlabel=xlabel, ylabel="validation error (1 - accuracy), log scale", yscale="log",
           title="Validation error per epoch of every trial (pruned trials stop early)")
    _error_ticks(ax, err_all)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.xaxis.get_major_locator().set_params(integer=True)
    return _save(fig, path)


def slice_figure(study: optuna.Study, params: list[str], path: Path) -> Path:
    """Final validation accuracy against each parameter's value, one panel per parameter,
    over all complete trials; error on a log axis for the same reason as above."""
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False, states=(states.COMPLETE,))
    fig, axes = plt.subplots(1, len(params), figsize=(4.2 * len(params), 3.8), squeeze=False)
    for ax, name in zip(axes[0], params):
        have = [t for t in trials if name in t.params and t.value is not None]
        values = [t.params[name] for t in have]
        err = [max(1 - t.value, 1e-4) for t in have]
        dist = next((t.distributions[name] for t in have), None)
        categorical = isinstance(dist, optuna.distributions.CategoricalDistribution)
        if categorical:
            choices = [str(c) for c in dist.choices]
            xs = [choices.index(str(v)) for v in values]
            ax.set_xticks(range(len(choices)), choices)
        else:
            xs = values
            if getattr(dist, "log", False):
                ax.set_xscale("log")
                # 1-2-5 ticks: a range inside one decade (hidden 128-512) has no decade tick to label
                ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        shown = ax.scatter(xs, err, c=[t.number for t in have], cmap="viridis", s=18)
        ax.set(xlabel=name, yscale="log", title=name)
        _error_ticks(ax, err, as_accuracy=True)
        ax.invert_yaxis()  # better trials higher up
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation accuracy (log error axis)")
    fig.suptitle(f"Slice plot: final validation accuracy of the {len(trials)} complete trials", fontsize=10)
    # Margins first: the colour bar then takes its room from the panels. Set after it, they
    # would put the panels back where the bar is drawn (it hid the last panel's labels).
    fig.subplots_adjust(bottom=0.16, top=0.86)
    fig.colorbar(shown, ax=axes[0].tolist(), label="trial number")
    return _save(fig, path, tight=False)


def gates_figure(means: dict[str, list[float]], path: Path) -> Path:
    """Mean i, f, o (left axis, 0-1) and mean |c| (right axis) per time step."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    steps = range(1, len(means["f"]) + 1)
    for key, label, color in (("i", "input gate i", "tab:green"), ("f", "forget gate f", "tab:blue"),
                              ("o", "output gate o", "tab:orange")):
        ax.plot(steps, means[key], "-o", ms=3, color=color, label=label)
    ax.set(xlabel="time step (image row)", ylabel="mean gate activation", ylim=(0, 1))
    ax_c = ax.twinx()
    ax_c.plot(steps, means["abs_c"], "--", color="black", label="mean |c| (right axis)")
    ax_c.set_ylabel("mean |c|")
    ax_c.grid(False)  # one grid (the gates') is enough
    lines = ax.get_legend_handles_labels()
    more = ax_c.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    ax.set_title("V2's gates per time step, averaged over the test images and hidden units", fontsize=10)
    return _save(fig, path)


# Ticks of a log error axis: 0.1% to 90% error, labelled as error or as accuracy.
_ERROR_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.9)


def _error_ticks(ax: plt.Axes, errors: list[float], as_accuracy: bool = False) -> None:
    """Readable labels for a log-scaled error y axis (Matplotlib's are 2x10^-2 and such)."""
    if errors:
        ax.set_ylim(min(errors) / 1.3, min(1.0, max(errors) * 1.3))
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(_ERROR_TICKS))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _: f"{100 * (1 - v):.4g}%" if as_accuracy else f"{100 * v:.4g}%"))


def cells_steps_figure(results: list[CellResult], path: Path) -> Path:
    """Test accuracy against the number of steps the images were read in, one line per cell."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    errors = []
    for cell in dict.fromkeys(r.cell for r in results):
        rows = sorted((r for r in results if r.cell == cell), key=lambda r: r.steps)
        err = [max(1 - r.test_acc, 1e-4) for r in rows]
        errors += err
        ax.plot([r.steps for r in rows], err, "-o", ms=4, label=cell.upper())
    ax.set_xscale("log")
    steps = sorted({r.steps for r in results})
    ax.set_xticks(steps, [f"{n}\n({784 // n} px)" for n in steps])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set(xlabel="time steps per image (pixels per step)", yscale="log")
    _error_ticks(ax, errors, as_accuracy=True)
    ax.invert_yaxis()  # better higher up
    ax.set_ylabel("test accuracy (log error axis)")
    ax.set_title("Simple RNN vs gated cells: test accuracy by sequence length", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _best_number(study: optuna.Study) -> int | None:
    best = best_config(study)  # V2 (search/best.py), None before any complete trial
    return None if best is None else best.number


def _save(fig: Figure, path: Path, tight: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return path
