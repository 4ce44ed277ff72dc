"""`lstm-search export`: a study's trials table as CSV or JSON (via pandas).

One row per trial: number, state, value (validation accuracy), start/end, duration in
seconds, the sampled params (``params_*``), validation accuracy per epoch
(``val_acc_epoch_N``, from the intermediate values; ``val_acc_pct_N`` after N% of the
trial's epochs in a study launched with ``--prune-by progress``) and the user attrs (``user_attrs_*``:
config, per-epoch curves, timings). Columns from search/best.py say what the study concluded:
``value_se`` (the binomial standard error of ``value`` on the validation split),
``config_trial`` (the trial whose configuration the row ran: its own number, or the one it
repeats), ``config_runs``, ``config_mean`` and ``config_se`` (that configuration over its
complete runs), ``v2`` (the row ran V2's configuration) and ``tied_with_v2``. Lists and
dicts stay nested in JSON and are written as JSON text in CSV cells, so both files load
back without guessing.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import TextIO

import optuna
import pandas as pd

from model.errors import UserInputError
from search.best import REPEAT_OF, best_config, binomial_se, val_size_of
from search.commands._common import HELP_FORMAT, add_storage_arg, study_name_arg
from search.commands._existing import open_existing_study
from search.commands._paths import check_output_file, safe_name
from search.pruning import reports_progress

__all__ = ["FORMATS", "register", "run", "trials_table", "write_table"]

FORMATS = ("csv", "json")
_ATTRS = ("number", "state", "value", "datetime_start", "datetime_complete", "duration",
          "params", "intermediate_values", "user_attrs")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a study's trials table as CSV or JSON",
        description="Write one row per trial (params, accuracy per epoch, user attrs) for "
        "analysis elsewhere.", formatter_class=HELP_FORMAT,
    )
    p.add_argument("--study", type=study_name_arg(), required=True, help="study name")
    add_storage_arg(p)
    p.add_argument("--format", choices=FORMATS, default="csv", help="file format")
    p.add_argument("--out", default=None,
                   help="output file, '-' for stdout (default: reports/<study>/trials.<format>)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = None
    if args.out != "-":
        out = Path(args.out) if args.out else Path("reports") / safe_name(args.study) / f"trials.{args.format}"
        check_output_file(out, "--out", args.storage)
    study = open_existing_study(args.storage, args.study)
    table = trials_table(study)
    if out is None:
        write_table(table, args.format, sys.stdout)
        return 0
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8", newline="") as f:
            write_table(table, args.format, f)
    except OSError as exc:
        raise UserInputError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"wrote {len(table)} trials of {args.study!r} to {out}")
    return 0


def trials_table(study: optuna.Study) -> pd.DataFrame:
    df = study.trials_dataframe(attrs=_ATTRS)
    if df.empty:
        return pd.DataFrame(columns=["number", "state", "value"])
    unit = "pct" if reports_progress(study) else "epoch"
    df = df.rename(columns=lambda c: re.sub(r"^intermediate_values_(\d+)$", rf"val_acc_{unit}_\1", c))
    df["duration"] = df["duration"].dt.total_seconds()
    for col in ("datetime_start", "datetime_complete"):
        df[col] = df[col].map(lambda t: t.isoformat() if isinstance(t, pd.Timestamp) else None)
    # An int param stays an int where some trials lack it (the baseline fixes epochs, so
    # it is no param there): 6, not 6.0. Float params stay floats (grad_clip 1.0).
    int_params = {name for t in study.get_trials(deepcopy=False) for name, dist in t.distributions.items()
                  if isinstance(dist, optuna.distributions.IntDistribution)}
    for name in int_params:
        df[f"params_{name}"] = df[f"params_{name}"].astype("Int64")
    return _add_best_columns(df.rename(columns={"duration": "duration_seconds"}), study)


def _add_best_columns(df: pd.DataFrame, study: optuna.Study) -> pd.DataFrame:
    """The verdict of search/best.py, per row (the same V2 as ``report`` and ``train --study``)."""
    trials = study.get_trials(deepcopy=False)
    val_size = val_size_of(study)
    best = best_config(study, trials)
    scores = {} if best is None else {s.number: s for s in best.ranking}
    tied = set() if best is None else {s.number for s in best.tied}
    origin = {t.number: t.user_attrs.get(REPEAT_OF, t.number) for t in trials}
    config_trial = df["number"].map(origin)
    df["value_se"] = df["value"].map(lambda v: binomial_se(v, val_size) if pd.notna(v) else None)
    df["config_trial"] = config_trial
    df["config_runs"] = config_trial.map(lambda n: scores[n].n if n in scores else None)
    df["config_mean"] = config_trial.map(lambda n: scores[n].mean if n in scores else None)
    df["config_se"] = config_trial.map(lambda n: scores[n].se if n in scores else None)
    df["v2"] = config_trial.map(lambda n: best is not None and n == best.number)
    df["tied_with_v2"] = config_trial.map(lambda n: n in tied)
    return df


def write_table(df: pd.DataFrame, fmt: str, f: TextIO) -> None:
    if fmt == "json":
        # Records with missing -> null and nested lists/dicts as JSON structures; floats at
        # full precision (DataFrame.to_json rounds to 10 digits by default).
        records = df.astype(object).where(df.notna(), None).to_dict(orient="records")
        # JSON has no NaN: a NaN score or curve value (a diverged trial) is written as null.
        json.dump(_finite(records), f, indent=1, allow_nan=False)
        f.write("\n")
    elif fmt == "csv":
        flat = df.copy()
        for col in flat.columns:
            if flat[col].map(lambda v: isinstance(v, (list, dict))).any():
                flat[col] = flat[col].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
        flat.to_csv(f, index=False)
    else:
        raise UserInputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _finite(value: object) -> object:
    """``value`` with numpy/pandas scalars made plain and NaN/inf floats made None, at any depth."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
