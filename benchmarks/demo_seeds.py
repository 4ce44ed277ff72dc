"""The README's first command, run with several `--seed` values: does its V2 beat V1 on test?

Issue 13 asks that the demo (the README's first command, a search then its report, under
10 minutes on 2 cores) show the search helping, on 3 of 3 seeds. Each seed runs the same two
commands as the README, in a fresh folder (a new ./studies.db), with `--seed S` added to the
launch; the report's V1 and V2 then train with that seed on 10,000 training images (as the
README's `report --subset 10000`) and are scored on the test set. Prints one line per seed
(V1 and V2 test accuracy, the V2 trial, wall time of the search and of the report) and the
count of seeds where V2 > V1.

    LSTM_SEARCH_DATA=../shared/mnist PYTHONPATH=. python benchmarks/demo_seeds.py            # seeds 0 1 2
    LSTM_SEARCH_DATA=../shared/mnist PYTHONPATH=. python benchmarks/demo_seeds.py --seeds 3 4

The install step of the README's command is not timed here: it depends on whether pip
finds torch in its cache. Nor is the C++ kernels' one-time build unless their cache is empty:
point ``LSTM_SEARCH_CACHE`` at an empty folder to time a fresh clone's first run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import optuna

from benchmarks._common import banner
from search.report.collect import best_config, resolve_baseline
from search.report.retrain import cache_key, cached_run

ROOT = Path(__file__).resolve().parents[1]

# The README's first command after the install, split into its two service calls.
LAUNCH = ["launch", "--study", "demo", "--space", "quick", "--subset", "10000", "--n-trials", "20", "--timeout", "240"]
REPORT = ["report", "--study", "demo", "--seeds", "1", "--subset", "10000"]


def _run(args: list[str], cwd: Path, log: Path) -> float:
    start = time.perf_counter()
    with open(log, "a", encoding="utf-8") as f:
        f.write("$ lstm-search " + " ".join(args) + "\n")
        f.flush()
        code = subprocess.call([sys.executable, "-m", "search.cli", *args], cwd=cwd, stdout=f,
                               stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"demo_seeds.py: `lstm-search {' '.join(args)}` exited {code}; see {log}")
    return time.perf_counter() - start


def run_seed(seed: int, workdir: Path, keep: Path | None) -> dict[str, float | int]:
    log = (keep or workdir) / f"demo-seed{seed}.log"
    search_s = _run([*LAUNCH, "--seed", str(seed)], workdir, log)
    report_s = _run(REPORT, workdir, log)
    if keep is not None:
        shutil.copy(workdir / "studies.db", keep / f"studies-seed{seed}.db")
    study = optuna.load_study(study_name="demo", storage=f"sqlite:///{workdir / 'studies.db'}")
    v1_cfg, _ = resolve_baseline(study, "v1")
    v2_cfg, v2_trial = best_config(study)
    v1 = cached_run(study, cache_key(v1_cfg, None))
    v2 = cached_run(study, cache_key(v2_cfg, None))
    if v1 is None or v2 is None:
        raise SystemExit(f"demo_seeds.py: the report of seed {seed} stored no final run; see {log}")
    if keep is not None:
        shutil.copytree(workdir / "reports" / "demo", keep / f"report-seed{seed}", dirs_exist_ok=True)
    return {"seed": seed, "v1": v1.test_acc, "v2": v2.test_acc, "v2_trial": v2_trial,
            "search_s": search_s, "report_s": report_s}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="launch --seed values")
    p.add_argument("--keep", type=Path, default=None, help="copy each seed's log and report here")
    args = p.parse_args(argv)
    banner("the README's demo (quick space, 10k images, 20 trials or 240 s, report --seeds 1 --subset 10000) per seed")
    print("$ lstm-search " + " ".join(LAUNCH) + " --seed S && lstm-search " + " ".join(REPORT), flush=True)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    wins, rows = 0, []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix=f"demo-seed{seed}-") as tmp:
            row = run_seed(seed, Path(tmp), args.keep)
        rows.append(row)
        wins += row["v2"] > row["v1"]
        print(f"seed {seed}: V1 {100 * row['v1']:.2f}%  V2 {100 * row['v2']:.2f}% (trial {row['v2_trial']})  "
              f"V2 - V1 {100 * (row['v2'] - row['v1']):+.2f} pp  search {row['search_s'] / 60:.1f} min  "
              f"report {row['report_s'] / 60:.1f} min  total {(row['search_s'] + row['report_s']) / 60:.1f} min",
              flush=True)
    print(f"V2 > V1 on {wins} of {len(rows)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
