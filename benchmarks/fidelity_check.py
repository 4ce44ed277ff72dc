"""Is the learning-curve table's reduced fidelity representative? Rank correlation between
the full fidelity (55,000 training images) and the table's (a 10,000-image subset, the
same 5,000 validation images, the same epochs) on configurations measured at both.

The full-fidelity side is the complete trials of the issue-6 search (benchmarks/data/
issue6-2h-2026-11-22-trials.csv, its report's trials.csv, once reports/example's: the
default space, TPE + Hyperband, 2 hours on 2 cores). Each configuration is
retrained by the service at the table's fidelity: a study `fidelity-10k` in the table's
database gets them enqueued and `lstm-search launch` runs them (random sampler, no pruner,
one worker on one thread, exactly the recording command of record_curves.py).

    LSTM_SEARCH_DATA=../shared/mnist PYTHONPATH=. python benchmarks/fidelity_check.py --live runs/curves.db
    PYTHONPATH=. python benchmarks/fidelity_check.py --summary-only

Prints each configuration's two final validation accuracies and Spearman's rho (and
Kendall's tau) between them; writes benchmarks/data/fidelity.csv.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState
from scipy.stats import kendalltau, spearmanr

from benchmarks._common import banner
from benchmarks.record_curves import DATA, DB, _copy_sqlite, launch_command
from model.config import TrainConfig
from search.space import load_space

ROOT = Path(__file__).resolve().parents[1]

STUDY = "fidelity-10k"
FULL = DATA / "issue6-2h-2026-11-22-trials.csv"
OUT = DATA / "fidelity.csv"


def full_fidelity(path: Path = FULL) -> list[tuple[int, TrainConfig, float]]:
    """(trial number, config, final val acc) of every complete trial of the full-data study."""
    frame = pd.read_csv(path)
    done = frame[frame["state"] == "COMPLETE"]
    return [(int(r.number), TrainConfig.from_dict(ast.literal_eval(r.user_attrs_config)), float(r.value))
            for r in done.itertuples()]


def _run(storage: str, n: int, artifacts: Path) -> int:
    cmd = [a if a != "curves-random-10k" else STUDY for a in launch_command(storage, n, artifacts)]
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--live", type=Path, default=None, help="SQLite file to run on (copied back to the repo's)")
    p.add_argument("--summary-only", action="store_true", help="only compare what the database holds")
    args = p.parse_args()
    banner("fidelity check: 10k-image subset vs 55k images, same configurations")
    db = args.live or DB
    if args.live is not None and not db.exists() and DB.exists():
        _copy_sqlite(DB, db)
    storage = f"sqlite:///{db.resolve()}"
    configs = full_fidelity()
    space = load_space("default")
    if not args.summary_only:
        names = {s.study_name for s in optuna.get_all_study_summaries(storage)} if db.exists() else set()
        if STUDY not in names:  # created by the service (V1 = the full study's trial 0 runs first)
            code = _run(storage, 1, db.parent / "curves.artifacts")
            if code != 0:
                return code
            study = optuna.load_study(study_name=STUDY, storage=storage)
            for number, cfg, _ in configs:
                if len(space.params_of(cfg)) < len(space.params):  # else the sampler fills the gap
                    print(f"trial {number}: some values lie outside today's default space; skipped")
                    continue
                if not (number == 0 and cfg == TrainConfig(**study.user_attrs["baseline_config"])):
                    study.enqueue_trial(space.params_of(cfg), user_attrs={"full_trial": number})
        code = _run(storage, len(configs), db.parent / "curves.artifacts")
        if code not in (0, 130):
            return code
        if db != DB:
            _copy_sqlite(db, DB)
    study = optuna.load_study(study_name=STUDY, storage=storage)
    reduced = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        number = 0 if t.user_attrs.get("baseline") else t.user_attrs.get("full_trial")
        if number is not None:
            reduced[int(number)] = (t.value, sum(t.user_attrs.get("epoch_seconds", [])))
    rows = [{"full_trial": n, "hidden_size": c.hidden_size, "epochs": c.epochs, "schedule": c.schedule,
             "shift": c.shift, "val_acc_55k": full, "val_acc_10k": reduced[n][0], "seconds_10k": reduced[n][1]}
            for n, c, full in configs if n in reduced]
    frame = pd.DataFrame(rows)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(OUT, index=False, float_format="%.6g")
    print(frame.to_string(index=False))
    if len(frame) >= 3:
        rho = spearmanr(frame["val_acc_55k"], frame["val_acc_10k"]).statistic
        tau = kendalltau(frame["val_acc_55k"], frame["val_acc_10k"]).statistic
        print(f"\n{len(frame)} configurations: Spearman rho {rho:.2f}, Kendall tau {tau:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
