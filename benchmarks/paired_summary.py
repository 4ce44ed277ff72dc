"""What the default search buys over a random sweep: the paired edge on test, per budget.

Reads the table of benchmarks/paired_runs.py and prints, for each series (the two arms
compared, search space, budget, and the V2 rule that scored it: rows of the rule before its
fix are printed apart, marked "old V2 rule"): the number of complete pairs (both arms scored
with the same final-run images), the mean test edge (the first arm minus the second:
default minus sweep, tpe3 or tpe5 minus default; percentage points) with a 95%
bootstrap interval that resamples pairs (seeded, so the same table prints the same
interval), the Student t interval beside it (a percentile bootstrap of a few pairs is too
narrow: it cannot see beyond the spread of the pairs it has), the share of pairs the
first arm won (ties counted apart), and the mean validation edge.

    PYTHONPATH=. python benchmarks/paired_summary.py
    PYTHONPATH=. python benchmarks/paired_summary.py --csv my_runs.csv --resamples 20000

The last line is `paired edge X pp [lo, hi] n=N` for the 45-minute budget (--headline) of
the default space under the current rule; with no such pair yet it is
`paired edge nan pp [nan, nan] n=0`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import stats

from benchmarks.paired_csv import V2_RULE, read_rows

ROOT = Path(__file__).resolve().parents[1]

CSV = ROOT / "benchmarks" / "data" / "paired_runs.csv"
HEADLINE_BUDGET = 45.0
# The comparisons printed, first arm minus second (arms: benchmarks/paired_csv.py).
COMPARISONS = (("default", "sweep"), ("tpe3", "default"), ("tpe5", "default"))


class Series(NamedTuple):
    space: str
    budget: float  # minutes
    rule: str  # benchmarks/paired_csv.py V2_RULE, or the older rule's name
    arms: tuple[str, str] = COMPARISONS[0]  # the edge is the first minus the second

    def title(self) -> str:
        old = "" if self.rule == V2_RULE else f", old V2 rule ({self.rule})"
        versus = "" if self.arms == COMPARISONS[0] else f"{self.arms[0]} vs {self.arms[1]}, "
        return f"{versus}space {self.space}, budget {self.budget:g} min{old}"


class Pair(NamedTuple):
    pair: int
    train_images: int
    test_edge: float  # the series' first arm minus its second, percentage points
    val_edge: float


class Interval(NamedTuple):
    mean: float
    lo: float
    hi: float


def paired_edges(rows: Sequence[dict[str, str]]) -> dict[Series, list[Pair]]:
    """Series -> its complete pairs. A pair is complete when both arms are in the table
    with the same train_images (their test scores are then comparable)."""
    arms: dict[tuple[Series, int, int], dict[str, dict[str, str]]] = {}
    for row in rows:
        series = Series(row["space"], float(row["budget_min"]), row["v2_rule"])
        arms.setdefault((series, int(row["pair"]), int(row["train_images"])), {})[row["strategy"]] = row
    edges: dict[Series, list[Pair]] = {}
    for first, second in COMPARISONS:
        for (series, pair, images), by in sorted(arms.items(), key=lambda item: (item[0][0].rule != V2_RULE, item[0])):
            if {first, second} <= by.keys():
                a, b = by[first], by[second]
                test, val = (float(a[k]) - float(b[k]) for k in ("test_acc", "val_acc"))
                edges.setdefault(series._replace(arms=(first, second)), []).append(Pair(pair, images, test, val))
    return edges


def bootstrap_mean(values: Sequence[float], resamples: int = 10_000, seed: int = 0, level: float = 0.95) -> Interval:
    """The mean of ``values`` and its percentile bootstrap interval: ``resamples`` draws of
    len(values) pairs with replacement (whole pairs, so each pair's two arms stay together)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    # Rounding: resampling a constant gives exactly the constant, never a sliver around it.
    return Interval(float(x.mean()), min(float(lo), float(x.mean())), max(float(hi), float(x.mean())))


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """The mean of ``values`` and its Student t interval (nan bounds below 2 values)."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        mean = float(x.mean()) if x.size else float("nan")
        return Interval(mean, float("nan"), float("nan"))
    half = stats.t.ppf(1 - (1 - level) / 2, df=x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return Interval(float(x.mean()), float(x.mean() - half), float(x.mean() + half))


def headline(pairs: Sequence[Pair], resamples: int, seed: int) -> str:
    ci = bootstrap_mean([p.test_edge for p in pairs], resamples, seed)
    return f"paired edge {ci.mean:+.2f} pp [{ci.lo:+.2f}, {ci.hi:+.2f}] n={len(pairs)}".replace("+nan", "nan")


def describe(series: Series, pairs: Sequence[Pair], resamples: int, seed: int) -> str:
    ci = bootstrap_mean([p.test_edge for p in pairs], resamples, seed)
    t = t_interval([p.test_edge for p in pairs])
    won = sum(p.test_edge > 0 for p in pairs)
    tied = sum(p.test_edge == 0 for p in pairs)
    images = ", ".join(f"{i:,}" for i in sorted({p.train_images for p in pairs}))
    return (f"{series.title()}: {len(pairs)} pair{'s' * (len(pairs) != 1)} (final runs on {images} images); "
            f"test edge {ci.mean:+.2f} pp, 95% CI [{ci.lo:+.2f}, {ci.hi:+.2f}] (t: [{t.lo:+.2f}, {t.hi:+.2f}]); "
            f"{series.arms[0]} won {won}/{len(pairs)} ({100 * won / len(pairs):.0f}%, {tied} tied); "
            f"val edge {np.mean([p.val_edge for p in pairs]):+.2f} pp")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="paired_summary.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", type=Path, default=CSV,
                   help="paired_runs.py's table (default: benchmarks/data/paired_runs.csv)")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--headline", type=float, default=HEADLINE_BUDGET,
                   help="budget (minutes) of the last line: the default space, the current V2 rule")
    args = p.parse_args(argv)
    if args.resamples < 1:
        p.error(f"--resamples must be >= 1 (got {args.resamples})")
    edges = paired_edges(read_rows(args.csv))
    print("edge = default launch minus random sweep (--sampler random --pruner none), or the named arms' "
          "first minus second; test accuracy of each arm's V2 after one final run, percentage points; "
          "CI: bootstrap over pairs")
    for series, pairs in edges.items():
        print(describe(series, pairs, args.resamples, args.seed))
    top = edges.get(Series("default", args.headline, V2_RULE), [])
    if not top:
        print(f"no {args.headline:g}-minute pairs yet (benchmarks/paired_runs.py --budget-min {args.headline:g})")
    print(headline(top, args.resamples, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
