"""K workers on one SQLite file: do very short trials ever hit 'database is locked'?

Writes tiny fake MNIST and a tiny space to a temp dir, runs
``lstm-search launch --workers K --n-trials N`` on a fresh studies.db, then prints
workers, trials, lock errors (in the workers' output), failed / stuck / lost trials and
the throughput. Very short trials (~0.2 s) put the storage under far more write load
than real ones (minutes each), so zero errors here leaves a wide margin.

    PYTHONPATH=. python benchmarks/bench_workers_sqlite.py --workers 4 --trials 200
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from tests.fakes import TINY_SPACE, write_fake_mnist

ROOT = Path(__file__).resolve().parents[1]



def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--storage", default=None, help="default: a fresh SQLite file in a temp dir")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        write_fake_mnist(tmp_path, n_train=200, n_test=50)
        (tmp_path / "tiny.toml").write_text(TINY_SPACE)
        storage = args.storage or f"sqlite:///{tmp_path / 'studies.db'}"
        cmd = [
            sys.executable, "-m", "search.cli", "launch", "--study", "bench", "--n-trials", str(args.trials),
            "--storage", storage, "--space", str(tmp_path / "tiny.toml"), "--pruner", "none", "--no-confirm",
            "--data-root", str(tmp_path), "--val-size", "50", "--workers", str(args.workers), "--no-progress",
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
        seconds = time.perf_counter() - start
        output = proc.stdout + proc.stderr
        study = optuna.load_study(study_name="bench", storage=storage)
        trials = study.get_trials(deepcopy=False)
        states = {s.name: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
    finished = states["COMPLETE"] + states["PRUNED"]
    locked = output.lower().count("database is locked")
    lost = max(0, args.trials - finished) + states["RUNNING"]
    print(f"workers           {args.workers}")
    print(f"trials asked      {args.trials}")
    print(f"trials finished   {finished} (complete {states['COMPLETE']}, pruned {states['PRUNED']})")
    print(f"trials failed     {states['FAIL']}")
    print(f"trials RUNNING    {states['RUNNING']} (stuck after the run)")
    print(f"lock errors       {locked}")
    print(f"trials lost       {lost}")
    print(f"exit code         {proc.returncode}")
    print(f"wall time         {seconds:.0f} s ({3600 * finished / seconds:.0f} trials/hour)")
    if proc.returncode != 0 or locked or lost or states["FAIL"]:
        print(output[-4000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
