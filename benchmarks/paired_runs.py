"""Paired runs: the default launch against a random sweep on the same budget, scored on test.

For each seed (one pair), two studies run AT ONCE on this machine, each as one launch
with one worker on one thread (`--workers 1 --threads 1`), so both arms share the machine
equally and see the same load at the same time:

    default: lstm-search launch --timeout BUDGET ...
    sweep:   lstm-search launch --timeout BUDGET ... --sampler random --pruner none --no-confirm

`--arms` pairs two other arms the same way, e.g. `--arms tpe3 default`: the default with
3 random draws before TPE models (`--tpe-startup 3`) against the default's 10.

Both get the same `--seed` (the pair's), `--space`, `--subset` and `--val-size`, hence the
same training/validation split. When both budgets are spent, the configuration each arm
returns (its study's V2, search/best.py) is trained once more on `--train-images` training
images (default: all 60,000) with the pair's seed and scored on the 10,000 test images by
the service's own final run (search/report/retrain.py, cached in the study). When both arms
return the same configuration, the run is trained once and shared: same configuration, seed
and threads give the same test score. One row per arm is appended to the CSV
(benchmarks/paired_csv.py).

    PYTHONPATH=. python benchmarks/paired_runs.py --budget-min 45 --seeds 0 1 2 3
    PYTHONPATH=. python benchmarks/paired_runs.py --budget-min 10 --space quick --subset 10000 --seeds 0 1 2 3

An arm is named by its strategy and seed, so pairings share it: `--arms tpe3 default` after
the default-vs-sweep pairs of the same seeds reuses their default arms and runs tpe3 alone
(run two seeds' tpe3 arms at once, in two commands, to load the machine as a pair did).

Resumable: an arm already in the CSV is skipped; an arm whose search was interrupted
resumes its study with the budget it has left (the launch's wall time is saved every few
seconds beside the study); a final run already in the study is not trained again. Then
`PYTHONPATH=. python benchmarks/paired_summary.py` prints the paired edge.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from benchmarks._common import banner, cpu_model
from benchmarks.paired_csv import STRATEGIES, V2_RULE, append_row, read_rows, row_key
from model.data import MNIST_TRAIN_IMAGES
from model.device import resolve_device
from model.errors import UserInputError
from search.best import best_config as best_of
from search.report.collect import best_config
from search.report.retrain import FinalRun, cache_key, cached_run, load_final_data, run_final, store_run
from search.space import BUILTIN_SPACES

ROOT = Path(__file__).resolve().parents[1]

CSV = ROOT / "benchmarks" / "data" / "paired_runs.csv"
STUDIES = ROOT / "benchmarks" / "data" / "paired"
# What makes an arm a sweep; the default arm passes no sampler or pruner at all, so it
# measures whatever `launch` does with no options.
ARM_OPTIONS = {
    "default": [],
    "sweep": ["--sampler", "random", "--pruner", "none", "--no-confirm"],  # a plain loop: no repeats
    "tpe3": ["--tpe-startup", "3"],
    "tpe5": ["--tpe-startup", "5"],
}
N_TRIALS = 1_000_000  # the budget ends a launch, never a trial count
POLL_S = 5.0


@dataclass(frozen=True)
class Arm:
    pair: int  # also the seed of the split, the sampler, every trial and the final run
    strategy: str
    budget_min: float
    subset: int | None
    val_size: int
    space: str = "default"  # a built-in space (search/spaces/)

    @property
    def name(self) -> str:
        space = "" if self.space == "default" else f"-{self.space}"  # the default's names predate --space
        return (f"paired-{self.strategy}{space}-{self.budget_min:g}m-{self.subset or 'all'}-v{self.val_size}"
                f"-p{self.pair}")

    def key(self, train_images: int) -> tuple[int, str, str, float, int, str]:
        """Its row's key in the CSV (benchmarks/paired_csv.py)."""
        return self.pair, self.strategy, self.space, self.budget_min, train_images, V2_RULE

    def storage(self, folder: Path) -> str:
        return f"sqlite:///{folder / self.name}.db"

    def state_path(self, folder: Path) -> Path:
        return folder / f"{self.name}.json"


def launch_command(arm: Arm, folder: Path, seconds: float, data_root: str | None, device: str) -> list[str]:
    """The `lstm-search launch` of one arm for ``seconds`` more; the two arms of a pair
    differ only in the sampler and pruner options (and the study's name). It runs from the
    repository root, so a folder inside it is named relative to it: the launch's log, which is
    committed with the study, then holds no path of this machine."""
    where = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
    cmd = [sys.executable, "-m", "search.cli", "launch", "--study", arm.name, "--storage", arm.storage(where),
           "--n-trials", str(N_TRIALS), "--timeout", f"{seconds:.0f}", "--seed", str(arm.pair),
           "--val-size", str(arm.val_size), "--workers", "1", "--threads", "1", "--device", device,
           "--space", arm.space, "--no-progress", *ARM_OPTIONS[arm.strategy]]
    if arm.subset:
        cmd += ["--subset", str(arm.subset)]
    if data_root:
        cmd += ["--data-root", data_root]
    return cmd


def read_state(arm: Arm, folder: Path) -> dict[str, Any]:
    path = arm.state_path(folder)
    if path.exists():
        return json.loads(path.read_text())
    return {"searched": False, "seconds": 0.0, "started": None, "ended": None, "load_sum": 0.0, "load_n": 0}


def write_state(arm: Arm, folder: Path, state: dict[str, Any]) -> None:
    path = arm.state_path(folder)
    path.with_suffix(".tmp").write_text(json.dumps(state))
    path.with_suffix(".tmp").replace(path)  # a kill mid-write leaves the previous state


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def search(arms: list[Arm], folder: Path, budget_s: float, data_root: str | None, device: str) -> None:
    """Run the launches of ``arms`` that have budget left, all at once, until each ends."""
    states = {arm: read_state(arm, folder) for arm in arms}
    running: dict[Arm, subprocess.Popen[bytes]] = {}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for arm, state in states.items():
        left = budget_s - state["seconds"]
        if state["searched"] or left < 1:
            continue
        print(f"{arm.name}: searching for {left / 60:.1f} min" + (" (resumed)" if state["seconds"] else ""))
        state["started"] = state["started"] or now()
        with (folder / f"{arm.name}.log").open("ab") as log:  # the launch keeps its own copy
            running[arm] = subprocess.Popen(launch_command(arm, folder, left, data_root, device), cwd=ROOT,
                                            env=env, stdout=log, stderr=subprocess.STDOUT)
    failed = wait(running, states, folder)
    if failed:
        raise SystemExit("paired_runs.py: " + "; ".join(failed))


def wait(running: dict[Arm, subprocess.Popen[bytes]], states: dict[Arm, dict[str, Any]], folder: Path) -> list[str]:
    """Poll the launches until all have ended, adding the wall time and load to each arm's
    state (saved at every poll, so a kill loses seconds, not the budget spent). Ctrl-C
    passes to the launches, which stop cleanly; the arms then resume on the next run."""
    failed, interrupted, last = [], False, time.monotonic()
    while running:
        try:
            time.sleep(POLL_S)
        except KeyboardInterrupt:
            interrupted = True
            for proc in running.values():
                proc.send_signal(signal.SIGINT)
        tick, load = time.monotonic(), os.getloadavg()[0]
        for arm in list(running):
            state, code = states[arm], running[arm].poll()
            state["seconds"] += tick - last
            state["load_sum"] += load
            state["load_n"] += 1
            if code is not None:
                del running[arm]
                state["ended"] = now()
                state["searched"] = code == 0 and not interrupted
                if code != 0 and not interrupted:
                    failed.append(f"{arm.name} exited {code} (see {folder / arm.name}.log)")
            write_state(arm, folder, state)
        last = tick
    if interrupted:
        raise SystemExit("paired_runs.py: interrupted; run the same command again to resume")
    return failed


def shared_run(arm: Arm, folder: Path, key: str) -> FinalRun | None:
    """The final run ``key`` already trained for another arm of the same pair, if any."""
    for strategy in STRATEGIES:
        other = Arm(arm.pair, strategy, arm.budget_min, arm.subset, arm.val_size, arm.space)
        if other != arm and Path(other.storage(folder).removeprefix("sqlite:///")).exists():
            run = cached_run(optuna.load_study(study_name=other.name, storage=other.storage(folder)), key)
            if run is not None:
                return run
    return None


def score(arm: Arm, folder: Path, train_images: int, data_root: str | None, device: str) -> dict[str, Any]:
    """The CSV row of a searched arm: its V2 trained once on ``train_images`` images with
    the pair's seed and scored on test (cached in the study: a rerun does not retrain; taken
    from the other arm's study when that arm returned the same configuration)."""
    study = optuna.load_study(study_name=arm.name, storage=arm.storage(folder))
    try:
        cfg, number = best_config(study)
    except UserInputError as exc:
        raise SystemExit(f"paired_runs.py: {arm.name}: {exc} (raise --budget-min)") from None
    cfg = cfg.with_overrides(seed=arm.pair)
    subset = None if train_images >= MNIST_TRAIN_IMAGES else train_images
    key = cache_key(cfg, subset)
    run = cached_run(study, key)
    how = "cached"
    if run is None and (run := shared_run(arm, folder, key)) is not None:
        how = "the other arm's run: same configuration and seed"
        store_run(study, key, run)
    if run is None:  # the report's own final run, cached in the study the same way
        run = run_final(cfg, load_final_data(data_root, subset, seed=cfg.seed), device=device, log=print)
        how = f"trained now, {run.seconds / 60:.1f} min"
        store_run(study, key, run)
    best = best_of(study)
    val = 100 * best.v2.mean if best is not None else float("nan")
    state = read_state(arm, folder)
    print(f"{arm.name}: V2 = trial {number}, val {val:.2f}%, test {100 * run.test_acc:.2f}% ({how})")
    return {
        "pair": arm.pair, "strategy": arm.strategy, "space": arm.space, "budget_min": f"{arm.budget_min:g}",
        "train_images": train_images, "v2_rule": V2_RULE,
        "config": json.dumps(cfg.to_dict(), sort_keys=True), "val_acc": f"{val:.2f}",
        "test_acc": f"{100 * run.test_acc:.2f}", "started": state["started"], "ended": state["ended"],
        "cpu": cpu_model(), "load_avg": f"{state['load_sum'] / max(1, state['load_n']):.2f}",
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="paired_runs.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-min", type=float, required=True, help="each arm's search budget (launch --timeout)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="one pair per seed")
    p.add_argument("--arms", nargs=2, choices=STRATEGIES, default=["default", "sweep"], metavar="ARM",
                   help=f"the two arms of each pair, of {', '.join(STRATEGIES)} (default: default sweep)")
    p.add_argument("--space", choices=BUILTIN_SPACES, default="default", help="search space of both arms")
    p.add_argument("--subset", type=int, default=None, help="training images of the search (launch --subset)")
    p.add_argument("--val-size", type=int, default=5000, help="validation images (launch --val-size)")
    p.add_argument("--train-images", type=int, default=MNIST_TRAIN_IMAGES,
                   help="training images of each V2's final run, scored on test")
    p.add_argument("--csv", type=Path, default=CSV,
                   help="table to append to (default: benchmarks/data/paired_runs.csv)")
    p.add_argument("--studies", type=Path, default=STUDIES,
                   help="folder of the arms' SQLite studies, states and logs (default: benchmarks/data/paired/)")
    p.add_argument("--data-root", default=None, help="MNIST folder (default: $LSTM_SEARCH_DATA, else ./data)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="of the searches and final runs")
    p.add_argument("--final-threads", type=int, default=os.cpu_count() or 1, help="threads of the final runs")
    args = p.parse_args(argv)
    args.studies = args.studies.resolve()  # the launches run from the repository root
    if args.budget_min <= 0:
        p.error(f"--budget-min must be > 0 (got {args.budget_min:g})")
    if not 1 <= args.train_images <= MNIST_TRAIN_IMAGES:
        p.error(f"--train-images must be 1-{MNIST_TRAIN_IMAGES} (got {args.train_images})")
    if args.subset is not None and args.subset < 10:
        p.error(f"--subset must be >= 10 (got {args.subset})")
    if args.arms[0] == args.arms[1]:
        p.error(f"--arms must name two different arms (got {args.arms[0]} twice)")
    if any(s < 0 for s in args.seeds) or len(set(args.seeds)) != len(args.seeds):
        p.error(f"--seeds must be distinct and >= 0 (got {args.seeds})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    banner(f"paired runs: {args.arms[0]} vs {args.arms[1]}, {args.budget_min:g} minutes each, one worker on one thread")
    # A kill (SIGTERM) stops cleanly as Ctrl-C does: passed to the launches, states saved.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    device = str(resolve_device(args.device))
    args.studies.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        arms = [Arm(seed, s, args.budget_min, args.subset, args.val_size, args.space) for s in args.arms]
        done = {row_key(r) for r in read_rows(args.csv)}
        todo = [a for a in arms if a.key(args.train_images) not in done]
        if not todo:
            print(f"pair {seed}: both arms already in {args.csv}")
            continue
        if len(todo) < len(arms):
            print(f"pair {seed}: only {todo[0].strategy} left; it searches alone if its search is unfinished")
        search(todo, args.studies, 60 * args.budget_min, args.data_root, device)
        torch.set_num_threads(max(1, args.final_threads))  # the searches are over: the final runs may use them all
        for arm in todo:
            append_row(args.csv, score(arm, args.studies, args.train_images, args.data_root, device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
