"""The table of paired runs (benchmarks/data/paired_runs.csv): its columns, reading, appending.

One row per arm of a pair: the configuration a strategy returned after its budget, its
validation accuracy in the study, and its test accuracy after one final run on
``train_images`` training images. ``paired_runs.py`` writes it, ``paired_summary.py``
reads it. A row is identified by (pair, strategy, space, budget_min, train_images,
v2_rule): appending a row whose key is already there does nothing, which is what lets a
run resume.

``v2_rule`` names the rule of search/best.py that chose the arm's V2. Rows scored under an
earlier rule keep its name and show what the change did: ``most-runs`` (the best mean among
the configurations with the most runs, ties one-sided), then ``tied-best`` (the most-run
configuration among those tied with the best mean).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "STRATEGIES", "V2_RULE", "append_row", "read_rows", "row_key"]

COLUMNS = ("pair", "strategy", "space", "budget_min", "train_images", "v2_rule", "config", "val_acc", "test_acc",
           "started", "ended", "cpu", "load_avg")
# The arms paired_runs.py can run (its ARM_OPTIONS): the default launch, a random sweep,
# and the default with fewer random draws before TPE models (--tpe-startup 3 or 5).
STRATEGIES = ("default", "sweep", "tpe3", "tpe5")
# search/best.py: the best confirmed (2+ runs) configuration among those tied with the best mean
V2_RULE = "confirmed-best"

Key = tuple[int, str, str, float, int, str]


def row_key(row: Mapping[str, Any]) -> Key:
    """(pair, strategy, space, budget_min, train_images, v2_rule), the same whether the
    values are read from the file (strings) or about to be written (numbers)."""
    return (int(row["pair"]), str(row["strategy"]), str(row["space"]), float(row["budget_min"]),
            int(row["train_images"]), str(row["v2_rule"]))


def read_rows(path: Path) -> list[dict[str, str]]:
    """Every row of the table; none when the file does not exist yet. A file with other
    columns is refused: mixing layouts would pair the wrong values."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise SystemExit(f"{path}: columns {reader.fieldnames} are not {list(COLUMNS)}; "
                             "write to another --csv")
        return list(reader)


def append_row(path: Path, row: Mapping[str, Any]) -> bool:
    """Append ``row`` (the header first if the file is new); False, and nothing written,
    when a row with its key is already there."""
    missing = set(COLUMNS) - set(row)
    if missing:
        raise ValueError(f"row lacks columns {sorted(missing)}")
    if row_key(row) in {row_key(r) for r in read_rows(path)}:
        return False
    new = not path.exists() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="raise")
        if new:
            writer.writeheader()
        writer.writerow({k: row[k] for k in COLUMNS})
    return True
