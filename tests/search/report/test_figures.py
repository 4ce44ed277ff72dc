"""The figures' data choices (which images, which counts) and the layout faults seen by eye."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from search.report import figures
from search.report.figures import confusion_matrix, grid_indices


def test_grid_prefers_the_first_mistake_of_each_digit() -> None:
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 3])
    wrong = np.zeros(len(labels), dtype=bool)
    wrong[[10, 12]] = True  # a missed 0 and a missed 3
    assert grid_indices(labels, wrong) == [10, 1, 2, 12, 4, 5, 6, 7, 8, 9]


def test_grid_needs_every_digit() -> None:
    with pytest.raises(ValueError, match="digit 9"):
        grid_indices(np.arange(9), np.zeros(9, dtype=bool))


def test_confusion_counts_true_rows_predicted_columns() -> None:
    counts = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0]), classes=3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_slice_colour_bar_overlaps_no_panel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The bar once sat on the last panel and hid its category labels."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: 0.98 + 0.01 * t.suggest_float("lr", 1e-4, 1e-2, log=True)
                   + 0.0 * t.suggest_int("hidden_size", 128, 512, log=True)
                   + 0.001 * ["adam", "adamw", "rmsprop"].index(t.suggest_categorical(
                       "optimizer", ["adam", "adamw", "rmsprop"])), n_trials=12)
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path, tight=True: drawn.append(fig) or path)
    figures.slice_figure(study, ["lr", "hidden_size", "optimizer"], tmp_path / "slice.png")
    fig = drawn[0]
    fig.canvas.draw()
    *panels, bar = fig.axes
    assert len(panels) == 3
    for panel in panels:
        assert panel.get_position().x1 <= bar.get_position().x0
    # every log axis carries labelled ticks, even a range inside one decade (128-512)
    assert any(t.get_text() for t in panels[1].get_xticklabels())
