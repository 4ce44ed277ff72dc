"""A floor under Hyperband, measured on recorded curves: top configurations lost, minutes saved.

Run from the repository root:

    PYTHONPATH=. python benchmarks/floor_check.py                      # every table below
    PYTHONPATH=. python benchmarks/floor_check.py --orders 40 --seed 0

Each table is a study whose trials were never pruned (random sampling, `--pruner none`), so
every configuration's whole validation curve and its epoch times are known. The trials are
fed, in a random order after the V1 baseline, to a fresh study with the service's own
pruner (search/pruning.py `make_pruner`, by progress, as the launch does), one after the
other, reporting each recorded epoch; a pruned trial costs the epochs it ran. Strategies:
no pruning, the floor alone, Hyperband alone, Hyperband with the floor. For each, over
`--orders` random orders: worker-minutes spent, and how often a top configuration was
pruned: one of the table's best 5%, or one tied with the best (within two standard errors
of the validation split). No sampler is involved: every strategy sees the same trials, so
the difference is the pruner's alone.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from benchmarks._common import banner
from search.pruning import make_pruner, reported_step

TABLES = {  # name -> (storage, study): studies whose trials all ran to the end
    "10k images": ("sqlite:///benchmarks/data/curves.db", "curves-random-10k"),
    "full data, 45-min sweeps": ("sqlite:///benchmarks/data/random-none-45m-full-2026-11-30.db",
                                 "random-none-45m-full-2026-11-30"),
    "full data, 45-min sweeps (EMA)": ("sqlite:///benchmarks/data/random-none-45m-ema-2026-11-30.db",
                                       "random-none-45m-ema-2026-11-30"),
}
# name -> (pruner, floor margin in standard errors, None: no floor)
STRATEGIES = {"none": ("none", None), "floor@0": ("none", 0.0), "floor@1": ("none", 1.0), "floor@2": ("none", 2.0),
              "hyperband": ("hyperband", None), "hyperband+floor@0": ("hyperband", 0.0),
              "hyperband+floor@1": ("hyperband", 1.0), "hyperband+floor@2": ("hyperband", 2.0)}


@dataclass(frozen=True)
class Curve:
    number: int
    baseline: bool
    acc: list[float]  # validation accuracy after each epoch
    seconds: list[float]  # each epoch's time


def load_table(storage: str, study_name: str) -> tuple[list[Curve], int]:
    """The complete trials' curves (the baseline first) and the validation split's size."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    curves = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        steps = sorted(t.intermediate_values)
        seconds = t.user_attrs.get("epoch_seconds", [])
        if len(seconds) != len(steps):
            continue  # a trial whose curve was not stored whole
        curves.append(Curve(t.number, bool(t.user_attrs.get("baseline")),
                            [t.intermediate_values[s] for s in steps], list(seconds)))
    curves.sort(key=lambda c: (not c.baseline, c.number))
    if not curves or not curves[0].baseline:
        raise SystemExit(f"floor_check.py: {study_name} has no finished V1 baseline")
    return curves, int(study.user_attrs.get("val_size") or 5000)


def run_order(curves: list[Curve], strategy: str, val_size: int, name: str) -> tuple[float, set[int]]:
    """Worker-minutes and the trial numbers pruned, feeding ``curves`` in this order."""
    pruner_name, margin = STRATEGIES[strategy]
    longest = max(len(c.acc) for c in curves)
    shortest = min(len(c.acc) for c in curves)
    pruner = make_pruner(pruner_name, longest, shortest, progress=True, floor=margin is not None)
    if margin is not None:
        pruner.margin = margin  # type: ignore[attr-defined]
    # Named, not random: Hyperband picks each trial's bracket from a hash of the study's name.
    study = optuna.create_study(study_name=name, direction="maximize", pruner=pruner)
    study.set_user_attr("val_size", val_size)  # the floor's noise margin reads it
    minutes, pruned = 0.0, set()
    for c in curves:
        trial = study.ask()
        trial.set_user_attr("config", {"epochs": len(c.acc)})
        if c.baseline:
            trial.set_user_attr("baseline", "v1")
        for e, acc in enumerate(c.acc, start=1):
            trial.report(acc, reported_step(e, len(c.acc)))
            if e < len(c.acc) and trial.should_prune():
                minutes += sum(c.seconds[:e]) / 60
                pruned.add(c.number)
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            minutes += sum(c.seconds) / 60
            study.tell(trial, c.acc[-1])
    return minutes, pruned


def top_sets(curves: list[Curve], val_size: int) -> tuple[set[int], set[int]]:
    """The table's best 5% (at least one) and the trials tied with the best (2 SE)."""
    ranked = sorted((c for c in curves if not c.baseline), key=lambda c: c.acc[-1], reverse=True)
    top5 = {c.number for c in ranked[:max(1, math.ceil(0.05 * len(ranked)))]}
    best = ranked[0].acc[-1]
    # Two configurations' difference: sqrt(2) x the binomial standard error of one.
    band = 2 * math.sqrt(2 * best * (1 - best) / val_size)
    return top5, {c.number for c in ranked if c.acc[-1] >= best - band}


def measure(label: str, curves: list[Curve], val_size: int, orders: int, seed: int) -> None:
    top5, tied = top_sets(curves, val_size)
    rng = random.Random(seed)
    results: dict[str, list[tuple[float, set[int]]]] = {s: [] for s in STRATEGIES}
    for order in range(orders):
        rest = curves[1:]
        rng.shuffle(rest)
        for strategy in STRATEGIES:
            results[strategy].append(run_order([curves[0], *rest], strategy, val_size, f"order-{order}"))
    print(f"\n## {label}: {len(curves) - 1} configurations + V1, {orders} orders, "
          f"top 5% = {len(top5)}, tied with the best (2 SE of {val_size} images) = {len(tied)}")
    print("| strategy | worker-min, mean ± sd | saved vs none | pruned trials | top-5% pruned | tied-best pruned |")
    print("|---|---|---|---|---|---|")
    none = statistics.mean(m for m, _ in results["none"])
    for strategy, rs in results.items():
        mins = [m for m, _ in rs]
        mean, sd = statistics.mean(mins), statistics.stdev(mins) if len(mins) > 1 else 0.0
        print(f"| {strategy} | {mean:.1f} ± {sd:.1f} | {100 * (1 - mean / none):.0f}% "
              f"| {statistics.mean(len(p) for _, p in rs):.1f} "
              f"| {sum(len(p & top5) for _, p in rs)}/{orders * len(top5)} "
              f"| {sum(len(p & tied) for _, p in rs)}/{orders * len(tied)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=40, help="random trial orders per table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    args = parser.parse_args()
    banner("floor under Hyperband on recorded curves")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for label in args.tables:
        curves, val_size = load_table(*TABLES[label])
        measure(label, curves, val_size, args.orders, args.seed)


if __name__ == "__main__":
    main()
