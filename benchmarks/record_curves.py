"""Record the learning-curve table that `benchmarks/replay.py` replays search strategies on.

The service itself records it: `lstm-search launch --sampler random --pruner none` over the
default space at a reduced fidelity (a stratified 10,000-image training subset; the 5,000-image
validation split and every configuration's epoch count are kept), one worker on one thread so
that each epoch's seconds are comparable. Then every finished trial's per-epoch curve is
exported as one long CSV (a row per trial and epoch, the config's fields repeated).

Run by hand, not in CI (about 2 minutes of one core per configuration; hours in all):

    LSTM_SEARCH_DATA=../shared/mnist PYTHONPATH=. python benchmarks/record_curves.py             # run/resume, export
    PYTHONPATH=. python benchmarks/record_curves.py --export-only                              # CSV from the database

The study lives in benchmarks/data/curves.db, committed with the CSV, so a later session
resumes it with the same command (the random sampler is reseeded by the trial count, so a
resumed run draws new configurations). `--live PATH` runs on a copy outside the repository
and copies it back (SQLite's backup API) before exporting, so a commit never catches the
file half-written.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from model.config import TrainConfig, config_fields

ROOT = Path(__file__).resolve().parents[1]

DATA = ROOT / "benchmarks" / "data"
DB = DATA / "curves.db"
CSV = DATA / "curves.csv"
STUDY = "curves-random-10k"
SUBSET = 10_000
# Per-epoch columns; named apart from the config's fields (the config's "lr" is the peak).
CURVE_COLUMNS = ("val_acc", "val_loss", "train_loss", "epoch_lr", "epoch_seconds")


def launch_command(storage: str, n_trials: int, artifacts: Path) -> list[str]:
    """The exact service command that records the table. Steps are epochs (--prune-by
    epoch), as the committed study was made with: the table's rows are per epoch."""
    return [
        sys.executable, "-m", "search.cli", "launch", "--study", STUDY, "--storage", storage,
        "--artifacts", str(artifacts), "--sampler", "random", "--pruner", "none", "--prune-by", "epoch",
        "--no-confirm",  # one curve per configuration: repeats would weigh some twice
        "--n-trials", str(n_trials), "--subset", str(SUBSET), "--workers", "1", "--threads", "1",
        "--seed", "0", "--no-progress",
    ]


def export(storage: str, out: Path = CSV) -> pd.DataFrame:
    """One row per (trial, epoch) of every COMPLETE trial: the curve and the full config."""
    study = optuna.load_study(study_name=STUDY, storage=storage)
    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        # Fields added to TrainConfig after a trial ran take their defaults (what it trained with).
        cfg = TrainConfig.from_dict(t.user_attrs["config"]).to_dict()
        curves = {
            "val_acc": [t.intermediate_values[e] for e in sorted(t.intermediate_values)],
            "val_loss": t.user_attrs.get("val_loss", []),
            "train_loss": t.user_attrs.get("train_loss", []),
            "epoch_lr": t.user_attrs.get("lr", []),
            "epoch_seconds": t.user_attrs.get("epoch_seconds", []),
        }
        n = len(curves["val_acc"])
        if n != cfg["epochs"] or any(len(v) != n for v in curves.values()):
            continue  # an incomplete record (never expected for a COMPLETE trial)
        for e in range(n):
            row = {"trial": t.number, "epoch": e + 1, "baseline": bool(t.user_attrs.get("baseline"))}
            row.update({name: curves[name][e] for name in CURVE_COLUMNS})
            row.update({name: cfg[name] for name in config_fields()})
            rows.append(row)
    frame = pd.DataFrame(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False, float_format="%.6g")
    return frame


def _copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite file that another process may be writing."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    with sqlite3.connect(src) as a, sqlite3.connect(tmp) as b:
        a.backup(b)
    shutil.move(tmp, dst)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-trials", type=int, default=120, help="finished trials the study should hold")
    p.add_argument("--live", type=Path, default=None,
                   help="run on this SQLite file (copied from the committed one if absent) and copy back")
    p.add_argument("--export-only", action="store_true", help="only write the CSV from the database")
    args = p.parse_args()
    db = DB
    if args.live is not None:
        db = args.live
        if not db.exists() and DB.exists():
            _copy_sqlite(DB, db)
    storage = f"sqlite:///{db.resolve()}"
    if not args.export_only:
        cmd = launch_command(storage, args.n_trials, db.parent / "curves.artifacts")
        print("$", " ".join(cmd), flush=True)
        code = subprocess.call(cmd, cwd=ROOT)
        if code not in (0, 130):
            return code
    if db != DB:
        _copy_sqlite(db, DB)
    frame = export(f"sqlite:///{DB}")
    print(f"wrote {CSV.relative_to(ROOT)}: {frame['trial'].nunique()} configurations, {len(frame)} epochs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
