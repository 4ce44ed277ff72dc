"""Does the default search beat hand tuning? The default `launch` for a fixed time budget,
then `report` (V1 and V2 retrained on all 60,000 images, tested once), then a summary.

Run by hand, not in CI (two hours on a 2-core CPU by default):

    LSTM_SEARCH_DATA=../shared/mnist PYTHONPATH=. python benchmarks/search_quality.py

The launch is exactly what a user types, plus --timeout: the default space, sampler (TPE),
pruner (Hyperband over epochs) and `--workers auto`. `--summary-only` re-prints the figures
of a finished study without training anything; `--from-csv benchmarks/data/issue6-2h-2026-11-22-trials.csv`
re-prints them from a report's trials.csv when the database is gone.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from benchmarks._common import banner
from model.config import PRESETS, TrainConfig
from search.report.retrain import cache_key

HAND_RECIPE_ACC = 0.992  # issue 6: hidden 256, AdamW, one-cycle 2e-3, batch 128, clip 1, b_f 1, 15 epochs
TARGET_ACC = 0.993


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--study", default="quality", help="study name (an existing one resumes)")
    p.add_argument("--storage", default="sqlite:///studies.db", help="Optuna storage URL")
    p.add_argument("--budget", type=float, default=7200.0, help="seconds of search (launch --timeout)")
    p.add_argument("--out", default="reports/quality", help="report folder")
    p.add_argument("--every", type=float, default=15.0, help="minutes between rows of the best-so-far table")
    p.add_argument("--pruner", default="hyperband",
                   help="launch --pruner; 'none' is the plain search to compare against on the same budget")
    p.add_argument("--no-report", action="store_true",
                   help="skip the report (no V1/V2 retrain), e.g. for the plain comparison run")
    p.add_argument("--summary-only", action="store_true", help="only summarise an existing study and report")
    p.add_argument("--from-csv", type=Path, metavar="TRIALS_CSV",
                   help="summarise a report's trials.csv instead of a study (when the database is gone)")
    args = p.parse_args()
    if args.from_csv is not None:
        banner(f"search quality: summary of {args.from_csv}")
    elif args.summary_only:
        banner(f"search quality: summary of study {args.study}")
    else:
        banner(f"search quality: launch (pruner {args.pruner}) for {args.budget:.0f} s"
               + ("" if args.no_report else ", then report"))

    if args.from_csv is not None:
        _summarise(_trials_from_csv(args.from_csv), {}, args.every)
        return 0
    cli = [sys.executable, "-m", "search.cli"]
    if not args.summary_only:
        # n-trials is only a safety cap: the budget is what ends the search.
        _run([*cli, "launch", "--study", args.study, "--storage", args.storage,
              "--n-trials", "100000", "--timeout", str(args.budget), "--pruner", args.pruner, "--no-progress"])
        if not args.no_report:
            _run([*cli, "report", "--study", args.study, "--storage", args.storage, "--out", args.out])
    study = optuna.load_study(study_name=args.study, storage=args.storage)
    _summarise(study.get_trials(deepcopy=False), study.user_attrs, args.every)
    return 0


def _run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd[1:]), flush=True)
    started = datetime.datetime.now()
    subprocess.run(cmd, check=True)
    print(f"# took {(datetime.datetime.now() - started).total_seconds() / 60:.1f} min", flush=True)


def _trials_from_csv(path: Path) -> list[FrozenTrial]:
    """The fields the summary reads, rebuilt from `lstm-search report`'s trials.csv."""
    if not path.is_file():
        raise SystemExit(f"error: --from-csv {path}: no such file (give a report's trials.csv)")
    frame = pd.read_csv(path, parse_dates=["datetime_start", "datetime_complete"])
    trials = []
    for row in frame.itertuples(index=False):
        attrs = {}
        for name in ("config", "epoch_seconds", "trial_seconds", "fail_reason"):
            raw = getattr(row, f"user_attrs_{name}", None)
            if isinstance(raw, str):  # lists and dicts are written as Python literals
                attrs[name] = ast.literal_eval(raw) if name in ("config", "epoch_seconds") else raw
            elif raw is not None and not pd.isna(raw):
                attrs[name] = float(raw)
        trials.append(FrozenTrial(
            number=int(row.number), state=TrialState[row.state],
            value=None if pd.isna(row.value) else float(row.value),
            datetime_start=None if pd.isna(row.datetime_start) else row.datetime_start.to_pydatetime(),
            datetime_complete=None if pd.isna(row.datetime_complete) else row.datetime_complete.to_pydatetime(),
            params={}, distributions={}, user_attrs=attrs, system_attrs={}, intermediate_values={},
            trial_id=int(row.number)))
    return trials


def _epochs_trained(t: FrozenTrial) -> int:
    # One validation score per epoch in the study; the CSV keeps only the per-epoch timings.
    return len(t.intermediate_values) or len(t.user_attrs.get("epoch_seconds", []))


def _summarise(trials: list[FrozenTrial], study_attrs: dict[str, Any], every_min: float) -> None:
    start = min(t.datetime_start for t in trials if t.datetime_start is not None)
    end = max(t.datetime_complete for t in trials if t.datetime_complete is not None)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    print(f"\nsearch wall time {(end - start).total_seconds() / 60:.1f} min; trials: "
          + ", ".join(f"{n} {c}" for n, c in counts.items() if c))
    pruned_budget = sum("time budget" in str(t.user_attrs.get("fail_reason", "")) for t in trials)
    print(f"pruned by the pruner {counts['pruned'] - pruned_budget}, stopped by the time budget {pruned_budget}")
    epochs = sum(_epochs_trained(t) for t in trials)
    print(f"epochs trained in all trials: {epochs}")
    _pruning_savings(trials)

    print("\n| minutes | best val acc | trial | complete so far |\n|---:|---:|---:|---:|")
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.datetime_complete)
    step = datetime.timedelta(minutes=every_min)
    marks = []  # every `every_min` minutes, and the end of the search
    while (start + (len(marks) + 1) * step) < end:
        marks.append(start + (len(marks) + 1) * step)
    marks.append(end)
    best, done, seen = None, 0, set()
    for mark in marks:
        for t in (t for t in complete if t.datetime_complete <= mark and t.number not in seen):
            seen.add(t.number)
            done += 1
            if best is None or t.value > best.value:
                best = t
        _row(mark, start, best, done)
    if best is None:
        print("no complete trial")
        return
    print(f"\nbest trial {best.number}: val acc {100 * best.value:.2f}%, "
          f"{best.user_attrs.get('trial_seconds', float('nan')) / 60:.1f} min")
    cfg = TrainConfig.from_dict(best.user_attrs["config"])
    print(f"V2 config: {cfg}")
    for name, config in (("V1", PRESETS["v1"]), ("V2", cfg)):
        run = study_attrs.get(cache_key(config, None))
        if run is None:
            print(f"{name}: test accuracy not in the study (see its report, or run `lstm-search report`)")
            continue
        acc = run["test_acc"]
        print(f"{name} test accuracy (retrained on 60,000 images, tested once): {100 * acc:.2f}% "
              f"({run['seconds'] / 60:.1f} min)")
        if name == "V2":
            print(f"vs hand recipe ~{100 * HAND_RECIPE_ACC:.1f}%: {100 * (acc - HAND_RECIPE_ACC):+.2f} points; "
                  f"target {100 * TARGET_ACC:.1f}% {'met' if acc >= TARGET_ACC else 'NOT met'}")


def _pruning_savings(trials: list[FrozenTrial]) -> None:
    """What the pruner saved, estimated from each pruned trial's own seconds per epoch."""
    saved_epochs, saved_s, spent_s = 0, 0.0, 0.0
    for t in trials:
        spent_s += float(t.user_attrs.get("trial_seconds", 0.0))
        if t.state != TrialState.PRUNED or "config" not in t.user_attrs or "fail_reason" in t.user_attrs:
            continue  # only trials stopped by the pruner (not by the budget or a NaN)
        done = _epochs_trained(t)
        left = int(t.user_attrs["config"]["epochs"]) - done
        if done and left > 0:
            saved_epochs += left
            saved_s += float(t.user_attrs.get("trial_seconds", 0.0)) / done * left
    print(f"pruning saved {saved_epochs} epochs, ~{saved_s / 3600:.2f} worker-hours "
          f"(trials used {spent_s / 3600:.2f} worker-hours): without it the same trials would "
          f"have taken ~{(spent_s + saved_s) / max(spent_s, 1e-9):.1f}x the compute")


def _row(mark: datetime.datetime, start: datetime.datetime, best: FrozenTrial | None, done: int) -> None:
    minutes = (mark - start).total_seconds() / 60
    if best is None:
        print(f"| {minutes:.0f} | - | - | {done} |")
    else:
        print(f"| {minutes:.0f} | {100 * best.value:.2f}% | {best.number} | {done} |")


if __name__ == "__main__":
    raise SystemExit(main())
