"""What pruning cost in the paired runs: configurations both arms drew, the sweep trained to
the end, and the default launch pruned.

The two arms of a pair (benchmarks/paired_runs.py) share a seed, and TPE draws its first
trials at random with that seed, so the default and the sweep start with the same
configurations. The sweep never prunes: its value for such a configuration is what the
default's pruner cut short. Per pair this prints the trials each arm finished, the
configurations drawn by both, how many of those the default pruned (a trial the time
budget stopped is not counted: the pruner did not cut it), and whether it pruned the
sweep's best or one of its top 3; then the totals, and the same by learning-rate schedule
(the first rung, a third of the epochs, comes right after a one-cycle schedule's warm-up
peak, where such a run looks worst).

    PYTHONPATH=. python benchmarks/paired_pruning.py --match quick-10m
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from benchmarks._common import banner
from search.best import is_repeat
from search.prior import is_prior

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "benchmarks" / "data" / "paired"
TOP = 3


class Shared(NamedTuple):
    """A configuration both arms drew and the sweep completed."""

    schedule: str
    rank: int  # in the sweep, from 1
    value: float  # the sweep's
    pruned: bool  # by the default's pruner


class PairPruning(NamedTuple):
    name: str
    finished: tuple[int, int]  # search trials finished (complete or pruned): default, sweep
    configs: list[Shared]

    @property
    def shared(self) -> int:
        return len(self.configs)

    @property
    def pruned(self) -> list[tuple[int, float]]:
        """(sweep rank, sweep value) of each shared configuration the default pruned."""
        return sorted((c.rank, c.value) for c in self.configs if c.pruned)


def _search_trials(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if not is_repeat(t) and not is_prior(t)
            and not t.user_attrs.get("baseline")]


def _key(trial: FrozenTrial) -> str:
    return json.dumps(trial.params, sort_keys=True)


def compare(default: optuna.Study, sweep: optuna.Study) -> PairPruning:
    """The pruning record of one pair: the default's states against the sweep's values."""
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    ours, theirs = _search_trials(default), _search_trials(sweep)
    done = sorted((t for t in theirs if t.state == TrialState.COMPLETE and t.value is not None),
                  key=lambda t: -float(t.value))
    rank = {_key(t): (i + 1, float(t.value)) for i, t in enumerate(done)}
    configs = [Shared(str(t.params.get("schedule", "-")), *rank[_key(t)], _pruned_by_pruner(t))
               for t in ours if t.state in finished and _key(t) in rank]
    return PairPruning(default.study_name, (sum(t.state in finished for t in ours),
                                            sum(t.state in finished for t in theirs)), configs)


def _pruned_by_pruner(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.PRUNED and not str(trial.user_attrs.get("fail_reason", "")).startswith(
        "time budget")


def by_schedule(records: list[PairPruning]) -> list[str]:
    """Per schedule: drawn by both, in the sweep's top TOP, pruned, pruned while in its top TOP."""
    lines = []
    for schedule in sorted({c.schedule for p in records for c in p.configs}):
        mine = [c for p in records for c in p.configs if c.schedule == schedule]
        top = [c for c in mine if c.rank <= TOP]
        lines.append(f"schedule {schedule}: {len(mine)} drawn by both, {len(top)} in the sweep's top {TOP}; "
                     f"the default pruned {sum(c.pruned for c in mine)}, {sum(c.pruned for c in top)} of them "
                     f"in the sweep's top {TOP}")
    return lines


def pairs(folder: Path, match: str) -> list[tuple[str, str]]:
    """(default, sweep) SQLite URLs of every pair in ``folder`` whose name contains ``match``."""
    found = []
    for path in sorted(folder.glob("paired-default*.db")):
        twin = path.with_name(path.name.replace("paired-default", "paired-sweep", 1))
        if match in path.name and twin.exists():
            found.append((f"sqlite:///{path}", f"sqlite:///{twin}"))
    return found


def describe(p: PairPruning) -> str:
    cut = ", ".join(f"#{r} ({100 * v:.2f}%)" for r, v in p.pruned) or "none"
    return (f"{p.name}: finished {p.finished[0]} (default) / {p.finished[1]} (sweep); drawn by both "
            f"{p.shared}; pruned by the default {len(p.pruned)}: sweep rank {cut}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paired_pruning.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=Path, default=STUDIES, help="paired_runs.py's folder of studies")
    parser.add_argument("--match", default="", help="only the pairs whose study name contains this")
    args = parser.parse_args(argv)
    banner("what pruning cost in the paired runs")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    found = pairs(args.studies, args.match)
    if not found:
        raise SystemExit(f"paired_pruning.py: no pair of studies matching {args.match!r} in {args.studies}")
    records = []
    for default_url, sweep_url in found:
        load = [optuna.load_study(study_name=None, storage=url) for url in (default_url, sweep_url)]
        record = compare(*load)
        if 0 in record.finished:
            print(f"{record.name}: skipped, an arm has no finished search trial yet")
            continue
        records.append(record)
        print(describe(record))
    shared = sum(p.shared for p in records)
    cut = [r for p in records for r, _ in p.pruned]
    print(f"{len(records)} pairs: the default pruned {len(cut)} of the {shared} configurations both arms drew; "
          f"the sweep's best (its V2) {sum(r == 1 for r in cut)} time(s), one of its top {TOP} "
          f"{sum(r <= TOP for r in cut)} time(s)")
    print("\n".join(by_schedule(records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
