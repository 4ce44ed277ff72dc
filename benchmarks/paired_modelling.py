"""What TPE's model drew in the paired runs, against its random start-up draws.

TPE draws its first N trials at random (N = 10, Optuna's default; `--tpe-startup N`
changes it, the tpe3 and tpe5 arms of benchmarks/paired_runs.py) and models from then on.
For every arm of the pairs whose study names contain --match, this prints the search trials
it finished, how many TPE drew from its model (those that started once N trials had
finished: the V1 baseline counts, as it does for TPE), how many of each kind Hyperband
pruned, and the median validation accuracy of each kind's complete trials; then the same
per strategy over all matching pairs. It describes the searches; the test edge the arms
return is benchmarks/paired_summary.py's.

    PYTHONPATH=. python benchmarks/paired_modelling.py --match quick-10m --pairs 20 21 22
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path
from typing import NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from benchmarks._common import banner
from benchmarks.paired_runs import ARM_OPTIONS, STUDIES
from search.best import is_repeat
from search.prior import is_prior
from search.samplers import DEFAULT_TPE_STARTUP

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
NAME = re.compile(r"paired-(?P<strategy>[a-z0-9]+)-.*-p(?P<pair>\d+)\.db$")


class Draws(NamedTuple):
    """The finished search trials of one kind (random start-up draws, or modelled)."""

    finished: int
    pruned: int
    values: list[float]  # complete trials' validation accuracy, %

    def describe(self) -> str:
        median = f"{statistics.median(self.values):.2f}%" if self.values else "-"
        return f"{self.finished} finished, {self.pruned} pruned, median complete {median} (n={len(self.values)})"


def startup_of(strategy: str) -> int:
    """The random draws before TPE models in that arm (its launch's --tpe-startup)."""
    options = ARM_OPTIONS[strategy]
    return int(options[options.index("--tpe-startup") + 1]) if "--tpe-startup" in options else DEFAULT_TPE_STARTUP


def split(study: optuna.Study, startup: int) -> tuple[Draws, Draws]:
    """(random, modelled) search trials: modelled once ``startup`` trials had finished."""
    trials = study.get_trials(deepcopy=False)
    ends = sorted(t.datetime_complete for t in trials if t.state in FINISHED and t.datetime_complete)
    kinds: tuple[list[FrozenTrial], list[FrozenTrial]] = ([], [])
    for t in trials:
        if t.state in FINISHED and not is_repeat(t) and not is_prior(t) and not t.user_attrs.get("baseline"):
            before = sum(end < t.datetime_start for end in ends) if t.datetime_start else 0
            kinds[before >= startup].append(t)
    return tuple(Draws(len(k), sum(t.state == TrialState.PRUNED for t in k),  # type: ignore[return-value]
                       [100 * float(t.value) for t in k if t.state == TrialState.COMPLETE])
                 for k in kinds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paired_modelling.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=Path, default=STUDIES, help="paired_runs.py's folder of studies")
    parser.add_argument("--match", default="", help="only the studies whose name contains this")
    parser.add_argument("--pairs", type=int, nargs="+", default=None, help="only these pairs (seeds)")
    args = parser.parse_args(argv)
    banner("what TPE's model drew in the paired runs")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = {p: NAME.match(p.name) for p in sorted(args.studies.glob("paired-*.db")) if args.match in p.name}
    paths = {p: m for p, m in names.items() if m and (args.pairs is None or int(m.group("pair")) in args.pairs)}
    if not paths:
        raise SystemExit(f"paired_modelling.py: no study matching {args.match!r} in {args.studies}")
    totals: dict[str, list[tuple[Draws, Draws]]] = {}
    for path, name in paths.items():
        strategy = name.group("strategy")
        if strategy not in ARM_OPTIONS or strategy == "sweep":
            continue  # a sweep never models
        study = optuna.load_study(study_name=None, storage=f"sqlite:///{path}")
        draws = split(study, startup_of(strategy))
        totals.setdefault(strategy, []).append(draws)
        print(f"{study.study_name}: random {draws[0].describe()}; modelled {draws[1].describe()}")
    for strategy, arms in totals.items():
        merged = [Draws(sum(a[i].finished for a in arms), sum(a[i].pruned for a in arms),
                        [v for a in arms for v in a[i].values]) for i in (0, 1)]
        print(f"{strategy} ({len(arms)} arms, {startup_of(strategy)} random draws first): "
              f"random {merged[0].describe()}; modelled {merged[1].describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
