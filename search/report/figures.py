"""The report's PNG figures, drawn with matplotlib's Agg backend (no display needed).

Each function draws one figure, saves it and closes it, so a report never leaks figures.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: reports are made on headless machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from model.data import MNIST_MEAN, MNIST_STD  # noqa: E402
from search.report.retrain import FinalRun  # noqa: E402

__all__ = [
    "confusion_figure",
    "confusion_matrix",
    "curves_figure",
    "digit_grid_figure",
    "grid_indices",
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
    """Optuna's own matplotlib plots: optimization history, intermediate values (pruned
    trials end early), and fANOVA importances (the same seeded evaluator as the table)."""
    written: dict[str, Path] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        vis = optuna.visualization.matplotlib
        ax = vis.plot_optimization_history(study, target_name="validation accuracy")
        written["history"] = _save(ax.figure, out / "optimization_history.png")
        ax = vis.plot_intermediate_values(study)
        ax.set(xlabel="epoch", ylabel="validation accuracy")
        ax.set_title("Validation accuracy per epoch (pruned trials stop early)")
        legend = ax.get_legend()
        if legend is not None and len(study.trials) > 12:
            legend.remove()  # one entry per trial is unreadable past a dozen
        written["intermediate"] = _save(ax.figure, out / "intermediate_values.png")
        if params:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=importance_seed)
            ax = vis.plot_param_importances(study, evaluator=evaluator, params=params,
                                            target_name="validation accuracy")
            ax.set_title("Hyperparameter importances (fANOVA)", loc="left")  # replaces Optuna's
            written["importances"] = _save(ax.figure, out / "param_importances.png")
    return written


def _save(fig: Figure, path: Path, tight: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return path
