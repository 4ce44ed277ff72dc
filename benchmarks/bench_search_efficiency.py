"""Search efficiency: TPE + Hyperband vs RandomSampler without pruning, same wall budget.

Each (strategy, seed) runs an in-memory study of the service's Objective over one search
space for --budget seconds of wall time on reduced data (a stratified --subset of the
training split, validation of --val-size), one after the other in this process. Reported:
best validation accuracy of finished trials at checkpoints of the budget (median over
seeds), trials finished (complete + pruned), and the time each run needed to first reach
each --target (median over seeds; a run that never reaches it counts as the full budget,
shown with '>'), then the ratio random / TPE+Hyperband per target.

    PYTHONPATH=. python benchmarks/bench_search_efficiency.py --data-root ../shared/mnist
"""

from __future__ import annotations

import argparse
import time

import optuna
import torch

from benchmarks._common import banner, median
from model.config import PRESETS
from model.data import load_splits
from search.objective import Objective
from search.pruning import make_pruner
from search.samplers import make_sampler
from search.space import load_space

STRATEGIES = {"tpe+hyperband": ("tpe", "hyperband"), "random": ("random", "none")}


def run_one(strategy: str, seed: int, args: argparse.Namespace, data, space) -> list[tuple[float, float]]:
    """(seconds since start, best val acc so far) after each finished trial."""
    sampler_name, pruner_name = STRATEGIES[strategy]
    base = PRESETS["v1"].with_overrides(seed=seed)
    study = optuna.create_study(
        direction="maximize",
        sampler=make_sampler(sampler_name, seed),
        pruner=make_pruner(pruner_name, space.max_epochs(base), space.min_epochs(base)),
    )
    objective = Objective(space, base, data, torch.device("cpu"))
    start = time.perf_counter()
    curve: list[tuple[float, float]] = []
    best = 0.0

    def record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal best
        if trial.state == optuna.trial.TrialState.COMPLETE and trial.value is not None:
            best = max(best, trial.value)
        curve.append((time.perf_counter() - start, best))

    study.optimize(objective, timeout=args.budget, callbacks=[record], catch=())
    return curve


def best_at(curve: list[tuple[float, float]], t: float) -> float:
    return max((b for s, b in curve if s <= t), default=0.0)


def first_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((s for s, b in curve if b >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="MNIST folder (default: $LSTM_SEARCH_DATA, else ./data)")
    parser.add_argument("--space", default="quick")
    parser.add_argument("--budget", type=float, default=120.0, help="wall seconds per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--subset", type=int, default=5000)
    parser.add_argument("--val-size", type=int, default=2000)
    parser.add_argument("--target", type=float, nargs="+", default=[0.90, 0.94, 0.96])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    banner("search efficiency: TPE + Hyperband vs random without pruning")
    total = args.budget * args.seeds * len(STRATEGIES)
    print(f"# space {args.space}, subset {args.subset}, val {args.val_size}, budget {args.budget:.0f} s "
          f"x {args.seeds} seeds x {len(STRATEGIES)} strategies = {total / 60:.1f} min")
    data = load_splits(args.data_root, val_size=args.val_size, subset=args.subset, download=False)
    space = load_space(args.space)
    curves: dict[str, list[list[tuple[float, float]]]] = {k: [] for k in STRATEGIES}
    for seed in range(args.seeds):
        for strategy in STRATEGIES:  # alternate so load changes hit both alike
            curve = run_one(strategy, seed, args, data, space)
            curves[strategy].append(curve)
            reached = ", ".join(
                f"{t:.2f} at {'never' if (r := first_reach(curve, t)) is None else f'{r:.0f} s'}"
                for t in args.target
            )
            print(f"  {strategy:14s} seed {seed}: {len(curve)} trials, best {best_at(curve, args.budget):.4f}, "
                  f"reached {reached}", flush=True)
    marks = [args.budget * f for f in (0.25, 0.5, 0.75, 1.0)]
    print("strategy | trials (median) | " + " | ".join(f"best@{m:.0f}s" for m in marks)
          + " | " + " | ".join(f"time to {t:.2f}" for t in args.target))
    reach_med: dict[tuple[str, float], float] = {}
    for strategy, runs in curves.items():
        cells = []
        for target in args.target:
            reaches = [first_reach(c, target) for c in runs]
            med = median([args.budget if r is None else r for r in reaches])
            reach_med[strategy, target] = med
            never = sum(r is None for r in reaches)
            cells.append(f"{'>' if never > len(runs) // 2 else ''}{med:.0f} s ({never}/{len(runs)} never)")
        print(f"{strategy} | {median([len(c) for c in runs]):.0f} | "
              + " | ".join(f"{median([best_at(c, m) for c in runs]):.4f}" for m in marks)
              + " | " + " | ".join(cells))
    for target in args.target:
        ratio = reach_med["random", target] / reach_med["tpe+hyperband", target]
        print(f"time-to-{target:.2f} ratio random / (TPE+Hyperband): {ratio:.2f}x "
              "(runs that never reach it count as the full budget)")

if __name__ == "__main__":
    main()
