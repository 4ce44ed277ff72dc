"""The figures' data choices (which images, which counts); the drawing itself is checked by eye."""

from __future__ import annotations

import numpy as np
import pytest

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
