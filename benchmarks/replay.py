"""Replay search strategies (sampler x pruner) on the recorded learning-curve table.

A tabular benchmark in the manner of LCBench / YAHPO Gym: the curves in
benchmarks/data/curves.csv (recorded by benchmarks/record_curves.py with the service itself)
stand in for training. Each replayed trial asks the strategy's real Optuna sampler for a
configuration of the default space, maps it to the NEAREST recorded configuration, and
reports that configuration's recorded validation curve epoch by epoch to the strategy's
real pruner (the service's own `make_sampler` / `make_pruner`). K workers run side by
side on a simulated clock that advances by the recorded seconds of each epoch, as the
service's K processes do.

Why nearest neighbour and not a surrogate: with ~100 recorded configurations in 12
dimensions a fitted surrogate would mostly report its own smoothing, while nearest
neighbour keeps every replayed curve a real one (its warm-up, its late jump under a
one-cycle schedule, its noise): what a pruner sees is exactly what it would have seen.
The price is that the search runs over the recorded set, like LCBench's tabular mode.

    PYTHONPATH=. python benchmarks/replay.py                       # the default comparison (< 10 min, 2 cores)
    PYTHONPATH=. python benchmarks/replay.py --seeds 50 --strategies random/none tpe/hyperband tpe/hyperband-progress

Prints, per strategy: the median and spread (25-75%) of the time to reach the table's
top-1% validation accuracy (and the median time to its top 5%: the top-1% target is one
configuration whose lead is often inside the validation noise), the final regret at
several budgets, and how often a trial mapped to a top-5% configuration was pruned; per
rung, the Spearman rank correlation between the rung's value and the final value, split by
LR schedule and shift.

What it measures, and what it does not: how a strategy's draws land on the ROWS of this
table and how its pruner treats their real curves. That is sound for choosing a pruner's
rungs (the curves are real). It is not what the search buys at full fidelity, and it no
longer prints a `speedup`: a sampled configuration replays its nearest row, where a
differing categorical value weighs as much as a whole range, so the replayed numeric
values follow the sampled ones only loosely (printed: Spearman per parameter); the top
rows lie within one standard error of the validation estimate of each other (printed);
and on about 100 rows a sampler that concentrates keeps landing on the same few. The
search's gain is measured by benchmarks/paired_runs.py (real runs, paired, on test).
The last line names the table and the medians of time to a top-5% row, labelled as such.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import optuna
import pandas as pd
from scipy.stats import spearmanr

from benchmarks._common import banner, train_flop_per_sample
from model.config import TrainConfig, config_fields
from search.objective import search_config
from search.pruning import (
    DEFAULT_PRUNE_BY,
    DEFAULT_PRUNER,
    DEFAULT_STARTUP,
    make_pruner,
    report_epoch,
    rung_epochs,
)
from search.samplers import DEFAULT_SAMPLER, make_sampler
from search.space import Categorical, SearchSpace, load_space
from search.study import create_or_resume

ROOT = Path(__file__).resolve().parents[1]

TABLE = ROOT / "benchmarks" / "data" / "curves.csv"
# What `lstm-search launch` does with no options, spelled sampler/pruner[-progress][:sN].
DEFAULT_STRATEGY = (f"{DEFAULT_SAMPLER}/{DEFAULT_PRUNER}" + ("-progress" if DEFAULT_PRUNE_BY == "progress" else "")
                    + (f":s{DEFAULT_STARTUP}" if DEFAULT_STARTUP else ""))
BASELINE_STRATEGY = "random/none"
# The default comparison: the baseline, each half of the default alone, the former default
# (by epoch), the first rung it replaced (25%), and the default.
STRATEGIES = tuple(dict.fromkeys(("random/none", "tpe/none", "random/hyperband", "tpe/hyperband",
                                  "random/hyperband-progress", "tpe/hyperband-progress@25", DEFAULT_STRATEGY)))
BUDGET_FRACTIONS = (0.25, 0.5, 1.0)


class Table(NamedTuple):
    """The recorded curves: one entry per configuration."""

    configs: list[dict[str, Any]]
    val_acc: list[np.ndarray]  # (epochs,) per configuration
    seconds: list[np.ndarray]  # (epochs,) per configuration
    baseline: int | None  # index of the V1 baseline, if recorded

    @property
    def final(self) -> np.ndarray:
        return np.array([curve[-1] for curve in self.val_acc])

    def full_seconds(self) -> np.ndarray:
        return np.array([s.sum() for s in self.seconds])


def load_table(path: Path = TABLE) -> Table:
    frame = pd.read_csv(path).sort_values(["trial", "epoch"])
    configs, acc, measured, baseline = [], [], [], None
    for i, (_, rows) in enumerate(frame.groupby("trial", sort=True)):
        first = rows.iloc[0]
        cfg = {k: first[k] for k in config_fields()}
        configs.append({k: (v.item() if hasattr(v, "item") else v) for k, v in cfg.items()})
        acc.append(rows["val_acc"].to_numpy(dtype=float))
        measured.append(float(rows["epoch_seconds"].median()))
        if bool(first.get("baseline", False)):
            baseline = i
    # Epoch times were taken on a shared, loaded machine (one H=193 trial measured 4x the
    # seconds per epoch of an H=156 one). The clock uses a cost model instead: an epoch
    # costs k x the matmul FLOP of one sample at that hidden size, k the median measured
    # ratio over the table; batch size's smaller effect on speed is left out.
    flop = np.array([train_flop_per_sample(int(c["hidden_size"])) for c in configs])
    k = float(np.median(np.array(measured) / flop))
    secs = [np.full(len(a), k * f) for a, f in zip(acc, flop)]
    return Table(configs, acc, secs, baseline)


def table_space(space: SearchSpace, table: Table) -> SearchSpace:
    """The part of ``space`` that the table varies.

    A parameter that every recorded configuration holds at one value (rotate and scale,
    which joined the default space after the table was recorded) cannot change which
    curve a trial replays; it is fixed at that value rather than left to the sampler, which
    would model it as if it mattered and search the rest less well than it really does.
    """
    held = {name: table.configs[0][name] for name in space.params
            if all(cfg[name] == table.configs[0][name] for cfg in table.configs)}
    params = {k: v for k, v in space.params.items() if k not in held}
    return replace(space, params=params, fixed={**space.fixed, **held})


class Encoder:
    """Configurations -> points in [0, 1]^d for nearest-neighbour lookup.

    Ranges map linearly (or log-linearly) onto [0, 1]; a categorical parameter adds 1 to
    the squared distance when values differ, the same as opposite ends of a range.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def encode(self, values: dict[str, Any]) -> tuple[np.ndarray, list[Any]]:
        numeric, labels = [], []
        for name, spec in self.space.params.items():
            v = values[name]
            if isinstance(spec, Categorical):
                labels.append(v)
                continue
            lo, hi = float(spec.low), float(spec.high)
            x = float(v)
            if spec.log:
                x, lo, hi = math.log(max(x, lo)), math.log(lo), math.log(hi)
            numeric.append(0.0 if hi == lo else (x - lo) / (hi - lo))
        return np.array(numeric), labels


class NearestTable:
    def __init__(self, table: Table, space: SearchSpace) -> None:
        self.encoder = Encoder(space)
        points = [self.encoder.encode(cfg) for cfg in table.configs]
        self.numeric = np.stack([p[0] for p in points])
        self.labels = np.array([p[1] for p in points], dtype=object)

    def nearest(self, params: dict[str, Any]) -> int:
        x, labels = self.encoder.encode(params)
        d = ((self.numeric - x) ** 2).sum(axis=1)
        d = d + (self.labels != np.array(labels, dtype=object)).sum(axis=1)
        return int(np.argmin(d))


def mapping_fidelity(table: Table, space: SearchSpace, draws: int = 400, seed: int = 0) -> dict[str, float]:
    """Spearman between each numeric parameter as a random draw sampled it and as the
    nearest row (the one the replay reports) holds it: how much of a sampler's choice of
    that parameter reaches the replayed curve (1 = all of it)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    nearest = NearestTable(table, space)
    sampled, replayed = [], []
    for _ in range(draws):
        cfg = space.suggest(study.ask(), TrainConfig())
        values = {name: getattr(cfg, name) for name in space.params}
        sampled.append(values)
        replayed.append(table.configs[nearest.nearest(values)])
    return {name: float(spearmanr([v[name] for v in sampled], [r[name] for r in replayed]).statistic)
            for name, spec in space.params.items() if not isinstance(spec, Categorical)}


def tied_with_best(final: np.ndarray, val_images: int) -> tuple[int, float]:
    """How many rows end within one standard error of the best row's validation accuracy
    (binomial, on ``val_images`` images), and that standard error: rows the validation
    split cannot tell apart from the best, so a 'top-1%' target among them is chance."""
    best = float(final.max())
    se = math.sqrt(best * (1 - best) / val_images)
    return int((final >= best - se).sum()), se


def parse_strategy(strategy: str) -> tuple[str, str, bool, int | None, int | None]:
    """"sampler/pruner[-progress][@first][:sN]" -> (sampler, pruner, by progress, first
    rung, startup).

    "tpe/hyperband" is the launch's `--sampler tpe --pruner hyperband`; "-progress" is
    `--prune-by progress`; "@N" moves the first rung to epoch N (or N% with -progress);
    ":sN" lets nothing be pruned before N trials have finished (search/pruning.py).
    """
    try:
        sampler, pruner = strategy.split("/")
        pruner, _, startup = pruner.partition(":s")
        pruner, _, first = pruner.partition("@")
        progress = pruner.endswith("-progress")
        return (sampler, pruner.removesuffix("-progress"), progress, int(first) if first else None,
                int(startup) if startup else None)
    except ValueError:
        raise SystemExit(f"replay.py: strategy {strategy!r} is not sampler/pruner[-progress][@N][:sN], "
                         "e.g. tpe/hyperband-progress:s5") from None


@dataclass
class RunResult:
    time_to_target: float  # simulated seconds; inf if never reached
    time_to_top5: float  # the same for the looser top-5% target
    regret: list[float]  # at each budget
    top_started: int  # trials mapped to a top-5% configuration
    top_pruned: int  # ... and pruned
    trials: int


def replay_study(strategy: str, seed: int, table: Table, space: SearchSpace) -> tuple[optuna.Study, bool]:
    """A study with the strategy's real sampler and pruner, made as the service makes one
    (V1 enqueued as trial 0, its config stored) when the table recorded V1; and whether the
    strategy counts steps by progress."""
    sampler_name, base_pruner, progress, first, startup = parse_strategy(strategy)
    epochs = [len(c) for c in table.val_acc]
    pruner = make_pruner(base_pruner, max(epochs), min(epochs), progress=progress, first=first, startup=startup)
    sampler = make_sampler(sampler_name, seed)
    # A fixed name: Hyperband assigns trials to brackets by a hash of the study name, so an
    # unnamed study (a random name) made replays of one seed differ from run to run.
    name = f"replay-{strategy}-{seed}"
    if table.baseline is None:
        return optuna.create_study(study_name=name, direction="maximize", sampler=sampler, pruner=pruner), progress
    v1 = TrainConfig.from_dict(table.configs[table.baseline])
    study, _ = create_or_resume(name, optuna.storages.InMemoryStorage(), sampler, pruner, space, v1, settings={})
    return study, progress


def replay_trial(trial: optuna.Trial, row: int, table: Table, progress: bool, start: float) -> tuple[float, bool]:
    """Report row ``row``'s recorded curve to the trial epoch by epoch as the objective
    reports a training run's; returns the simulated clock when it stops, and whether pruned."""
    curve, secs = table.val_acc[row], table.seconds[row]
    t, n = start, len(curve)
    for e in range(n):
        t += secs[e]
        if report_epoch(trial, float(curve[e]), e + 1, n, progress=progress):
            return t, True
    return t, False


def replay_once(
    strategy: str, seed: int, table: Table, space: SearchSpace, workers: int, budget: float,
    target: float, budgets: Sequence[float], top5: float,
) -> RunResult:
    study, progress = replay_study(strategy, seed, table, space)
    nearest = NearestTable(table, space)
    clock = [0.0] * workers
    best_by_time: list[tuple[float, float]] = []  # (time, value) of each complete trial
    started = pruned_top = 0
    first_hit = first_top5 = math.inf
    while min(clock) < budget:
        w = int(np.argmin(clock))
        trial = study.ask()
        cfg = search_config(trial, space, TrainConfig())  # the objective's own draw, V1 included
        is_v1 = bool(trial.user_attrs.get("baseline"))
        row = table.baseline if is_v1 else nearest.nearest({name: getattr(cfg, name) for name in space.params})
        is_top = table.val_acc[row][-1] >= top5
        started += is_top
        clock[w], pruned = replay_trial(trial, row, table, progress, clock[w])
        if pruned:
            pruned_top += is_top
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        value = float(table.val_acc[row][-1])
        study.tell(trial, value)
        best_by_time.append((clock[w], value))
        first_hit = min(first_hit, clock[w]) if value >= target else first_hit
        first_top5 = min(first_top5, clock[w]) if value >= top5 else first_top5
    best_acc = float(table.final.max())
    regret = [best_acc - max((v for when, v in best_by_time if when <= b), default=0.0) for b in budgets]
    return RunResult(first_hit, first_top5, regret, started, pruned_top, len(study.trials))


def _worker(job: tuple[Any, ...]) -> tuple[str, int, RunResult]:
    strategy, seed, table, space, workers, budget, target, budgets, top5 = job
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    return strategy, seed, replay_once(strategy, seed, table, space, workers, budget, target, budgets, top5)


def rung_correlations(table: Table) -> pd.DataFrame:
    """Spearman between the value at each rung and the final value, overall and per group."""
    epochs = [len(c) for c in table.val_acc]
    rows = []
    groups: list[tuple[str, Any]] = [("all", None)]
    for key in ("schedule", "shift"):
        groups += [(key, v) for v in sorted({c[key] for c in table.configs})]
    rungs = [("epoch", r) for r in rung_epochs(min(epochs), max(epochs))]
    rungs += [("progress", p) for p in (25, 33, 50)]
    for kind, r in rungs:
        for key, v in groups:
            pairs = []
            for cfg, curve in zip(table.configs, table.val_acc):
                if key != "all" and cfg[key] != v:
                    continue
                n = len(curve)
                e = r if kind == "epoch" else max(1, math.ceil(r * n / 100))
                if e < n:
                    pairs.append((curve[e - 1], curve[-1]))
            rho = spearmanr(*zip(*pairs)).statistic if len(pairs) >= 5 else float("nan")
            label = f"epoch {r}" if kind == "epoch" else f"{r}% of epochs"
            rows.append({"rung": label, "group": "all" if key == "all" else f"{key}={v}",
                         "n": len(pairs), "spearman": rho})
    return pd.DataFrame(rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", type=Path, default=TABLE, help="learning-curve CSV (record_curves.py)")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), help="sampler/pruner pairs")
    # 40: at 20, one strategy's median time to the best configuration moved several-fold
    # between two runs of different bracket hashes.
    p.add_argument("--seeds", type=int, default=40, help="replays per strategy")
    p.add_argument("--workers", type=int, default=2, help="simulated parallel workers (the service's default here)")
    # 2x: at 1x a plain random sweep reaches the top-1% target in only about half of the
    # seeds, so medians of time to target were censored (infinite).
    p.add_argument("--budget-factor", type=float, default=2.0,
                   help="budget = this x the time to train every recorded configuration once, over the workers")
    p.add_argument("--jobs", type=int, default=2, help="processes running replays")
    p.add_argument("--val-images", type=int, default=5000, help="validation images the table was scored on")
    return p.parse_args(argv)


def describe_table(args: argparse.Namespace, table: Table, space: SearchSpace, budgets: list[float]) -> None:
    """What the replays run on: the table, its targets, the budget, how faithful the lookup is
    and how well each rung ranks the curves."""
    final, target, top5 = table.final, *targets(table)
    shown = args.table.relative_to(ROOT) if args.table.is_relative_to(ROOT) else args.table
    print(f"table: {shown}: {len(final)} configurations, {sum(len(c) for c in table.val_acc)} epochs; best final "
          f"val acc {100 * final.max():.2f}%, top-1% target {100 * target:.2f}%, top-5% {100 * top5:.2f}%")
    print(f"simulated {args.workers} workers, budget {budgets[-1] / 3600:.2f} h of table time "
          f"(regret at {', '.join(f'{b / 3600:.2f} h' for b in budgets)}), {args.seeds} seeds per strategy")
    held = [name for name in load_space("default").params if name not in space.params]
    print(f"searched: {', '.join(space.params)}" + (f"; held fixed by the table: {', '.join(held)}" if held else ""))
    tied, se = tied_with_best(final, args.val_images)
    print(f"rows within one standard error ({100 * se:.2f} pp on {args.val_images} validation images) of the "
          f"best: {tied} of {len(final)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line per lookup study
    fidelity = mapping_fidelity(table, space)
    print("Spearman(sampled value, value of the replayed nearest row), 400 random draws: "
          + ", ".join(f"{name} {rho:.2f}" for name, rho in fidelity.items()) + "\n")
    pivot = rung_correlations(table).pivot_table(index="group", columns="rung", values="spearman", sort=False)
    print("Spearman(value at rung, final value), by group (n per cell in the CSV):")
    print(pivot.to_string(float_format=lambda v: f"{v:.2f}"))
    print()


def targets(table: Table) -> tuple[float, float]:
    """The top-1% and top-5% final validation accuracy of the table's rows."""
    return float(np.quantile(table.final, 0.99)), float(np.quantile(table.final, 0.95))


def summary_row(strategy: str, rs: list[RunResult]) -> dict[str, Any]:
    """One strategy's line: medians over its seeds."""
    ttt = np.array([r.time_to_target for r in rs])
    # Runs that never reach the target count as infinitely slow (censored), so the median
    # is an observed value, not an interpolation with infinity.
    q25, q50, q75 = (np.quantile(ttt, q, method="inverted_cdf") / 60 for q in (0.25, 0.5, 0.75))
    row = {"strategy": strategy, "reached": f"{np.isfinite(ttt).sum()}/{len(ttt)}",
           "ttt median min": q50, "ttt 25-75%": f"{q25:.0f}-{q75:.0f}"}
    # The top-1% target is one or two configurations whose lead over the next is often
    # below the validation set's noise; the top-5% time says whether a strategy gets
    # among the best at all.
    row["top5% ttt min"] = np.quantile([r.time_to_top5 for r in rs], 0.5, method="inverted_cdf") / 60
    for i, f in enumerate(BUDGET_FRACTIONS):
        row[f"regret@{f:g} pp"] = 100 * float(np.median([r.regret[i] for r in rs]))
    row["top5% pruned"] = f"{sum(r.top_pruned for r in rs)}/{sum(r.top_started for r in rs)}"
    row["trials"] = float(np.median([r.trials for r in rs]))
    return row


def print_summary(rows: list[dict[str, Any]], rows_in_table: int, seconds: float) -> None:
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"\n(replays took {seconds:.0f} s; ttt = time to target in minutes of "
          "table time; regret in percentage points of validation accuracy, median over seeds)")
    top5_min = {row["strategy"]: row["top5% ttt min"] for row in rows}
    if BASELINE_STRATEGY in top5_min:
        print(f"(ratio of median times to a top-5% row, {BASELINE_STRATEGY} / each, on this table's rows only: "
              + ", ".join(f"{name} {top5_min[BASELINE_STRATEGY] / top5_min[name]:.2f}"
                          for name in top5_min if name != BASELINE_STRATEGY) + ")")
    print(f"replay of {rows_in_table} recorded rows (nearest-row lookup; not the search's gain at full fidelity, "
          "see benchmarks/paired_runs.py): median minutes to a top-5% row "
          + ", ".join(f"{name} {minutes:.1f}" for name, minutes in top5_min.items()))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    banner("search strategies replayed on the learning-curve table")
    table = load_table(args.table)
    space = table_space(load_space("default"), table)
    target, top5 = targets(table)
    budget = args.budget_factor * table.full_seconds().sum() / args.workers
    budgets = [f * budget for f in BUDGET_FRACTIONS]
    describe_table(args, table, space, budgets)
    jobs = [(s, seed, table, space, args.workers, budget, target, budgets, top5)
            for s in args.strategies for seed in range(args.seeds)]
    start = time.perf_counter()
    with mp.get_context("fork").Pool(args.jobs) as pool:
        results = pool.map(_worker, jobs, chunksize=1)
    by_strategy: dict[str, list[RunResult]] = {}
    for strategy, _, r in results:
        by_strategy.setdefault(strategy, []).append(r)
    rows = [summary_row(strategy, by_strategy[strategy]) for strategy in args.strategies]
    print_summary(rows, len(table.final), time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
