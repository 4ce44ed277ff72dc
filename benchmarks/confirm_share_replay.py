"""Where the stretched confirmation share would have begun in the committed timed launches.

Run from the repository root:

    PYTHONPATH=. python benchmarks/confirm_share_replay.py

A launch with `--timeout` keeps its last share for repeating the top configurations
(search/confirm.py SearchEnd): 20% by default, stretched up to half while the best search
trial's own run, times RUN_MARGIN, is longer than that. This replays each committed launch's
clock: every 10 s it takes the search trials finished by then and asks SearchEnd.at (the
service's own code) when the phase starts; the first moment past that start is when the
stretched phase would have begun (none, when #1's repeats never fitted: the search then
runs to the end, as a phase would have repeated nothing). The budget is counted from the first trial's start (the
launch also spent its data loading inside the budget, under a minute), and what happened
after the start is not replayed: the run would have gone differently from there.

A second table checks RUN_MARGIN: every finished repeat in the committed studies, its run
time over its original's (the same configuration, another seed, the same launch).
"""

from __future__ import annotations

import argparse
import glob
import statistics

import optuna
from optuna.trial import FrozenTrial, TrialState

from benchmarks._common import banner
from search.best import is_repeat
from search.confirm import (
    DEFAULT_CONFIRM_SHARE,
    MAX_CONFIRM_SHARE,
    REPEAT_OF,
    RUN_MARGIN,
    SearchEnd,
    candidates,
    run_seconds,
)

DATA = "sqlite:///benchmarks/data/"
LAUNCHES = {  # study -> (storage, --timeout seconds, workers)
    "default-45m-2026-12-07": (DATA + "default-45m-2026-12-07.db", 2700, 2),
    "default-45m-stretch-2026-12-07": (DATA + "default-45m-stretch-2026-12-07.db", 2700, 2),
    "default-45m-ema-2026-11-30": (DATA + "default-45m-ema-2026-11-30.db", 2700, 2),
    "default-2h-2026-11-30": (DATA + "default-2h-2026-11-30.db", 7200, 2),
    "default-2h-ema-2026-12-01": (DATA + "default-2h-ema-2026-12-01.db", 7200, 2),
    "paired-default-45m-all-v5000-p0": (DATA + "paired/paired-default-45m-all-v5000-p0.db", 2700, 1),
    "paired-default-45m-all-v5000-p1": (DATA + "paired/paired-default-45m-all-v5000-p1.db", 2700, 1),
}
STEP = 10.0  # seconds between the replay's looks at the study


def phase_start(trials: list[FrozenTrial], start: float, budget: float) -> tuple[float, FrozenTrial | None]:
    """Seconds into the budget at which the stretched phase begins, and the #1 it was sized by."""
    search = [t for t in trials if not is_repeat(t) and t.state == TrialState.COMPLETE]
    deadline = start + budget
    end = SearchEnd(deadline=deadline, latest=deadline - DEFAULT_CONFIRM_SHARE * budget,
                    earliest=deadline - MAX_CONFIRM_SHARE * budget)
    now = end.earliest
    while now < deadline:
        done = [t for t in search if t.datetime_complete.timestamp() <= now]
        if now >= end.at(done):
            best = candidates(done, 1)
            return now - start, best[0] if best else None
        now += STEP
    return budget, None  # #1's repeats never fitted: the search runs to the end


def repeat_ratios() -> list[tuple[float, float]]:
    """(original's run seconds, repeat's / original's) for every finished repeat committed."""
    pairs = []
    for path in sorted(glob.glob("benchmarks/data/*.db") + glob.glob("benchmarks/data/paired/*.db")):
        for summary in optuna.get_all_study_summaries("sqlite:///" + path):
            study = optuna.load_study(study_name=summary.study_name, storage="sqlite:///" + path)
            trials = {t.number: t for t in study.get_trials(deepcopy=False)}
            for t in trials.values():
                if t.state == TrialState.COMPLETE and REPEAT_OF in t.user_attrs:
                    original = run_seconds(trials[int(t.user_attrs[REPEAT_OF])])
                    repeat = run_seconds(t)
                    if original > 0 and repeat > 0:
                        pairs.append((original, repeat / original))
    return pairs


def print_margin() -> None:
    pairs = repeat_ratios()
    print(f"\nRUN_MARGIN {RUN_MARGIN:g} against {len(pairs)} finished repeats (repeat's run / original's):")
    print("| original's run | repeats | median | max | above the margin |")
    print("|---|---|---|---|---|")
    for label, lo, hi in (("under 100 s", 0.0, 100.0), ("100 s or more", 100.0, float("inf"))):
        ratios = [r for seconds, r in pairs if lo <= seconds < hi]
        if ratios:
            above = sum(r > RUN_MARGIN for r in ratios)
            print(f"| {label} | {len(ratios)} | {statistics.median(ratios):.2f} | {max(ratios):.2f} | {above} |")


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    banner("the stretched confirmation share, replayed on committed launches")
    print(f"default share {DEFAULT_CONFIRM_SHARE:g}, stretched up to {MAX_CONFIRM_SHARE:g}; "
          f"#1's run x {RUN_MARGIN:g} must fit the time left")
    print("| launch | budget | workers | fixed start | stretched start | #1 then (val, run) | "
          "search worker-min moved to the phase (-: to the search) |")
    print("|---|---|---|---|---|---|---|")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for name, (storage, budget, workers) in LAUNCHES.items():
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        start = min(t.datetime_start.timestamp() for t in trials if t.datetime_start is not None)
        at, best = phase_start(trials, start, budget)
        fixed = (1 - DEFAULT_CONFIRM_SHARE) * budget
        if at >= budget:
            top = "#1 never fitted: no phase, the search runs to the end"
        else:
            top = "no search trial finished" if best is None else (
                f"trial {best.number} ({100 * best.value:.2f}%, {run_seconds(best) / 60:.1f} min)")
        print(f"| {name} | {budget / 60:.0f} min | {workers} | {fixed / 60:.1f} min | {at / 60:.1f} min | {top} | "
              f"{workers * (fixed - at) / 60:.1f} |")
    print_margin()


if __name__ == "__main__":
    main()
