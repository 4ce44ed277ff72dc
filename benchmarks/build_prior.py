"""Build the prior shipped for the default space (search/priors/default-space.db).

Run from the repository root after a committed full-data study of the default space changes:

    PYTHONPATH=. python benchmarks/build_prior.py

It copies, through the service's own prior code (search/prior.py), the finished trials of
every committed full-data study (benchmarks/data/*.db) that fit today's default space and
share its split (seed 0, 5,000 validation images, all training images, steps by progress)
into one study, `default-space`. `launch --prior builtin` reads it.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import optuna

from model.config import TrainConfig
from model.errors import UserInputError
from search.prior import BUILTIN_STUDY, PRIOR_ATTR, add_prior, check_compatible, prior_trials
from search.settings import DEFINING_KEYS
from search.space import load_space

SPLIT = {"seed": 0, "val_size": 5000, "subset": None, "prune_by": "progress", "precision": "fp32"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="search/priors/default-space.db")
    parser.add_argument("--sources", nargs="+", default=sorted(glob.glob("benchmarks/data/*.db")))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space("default")
    out = Path(args.out)
    out.unlink(missing_ok=True)
    target = optuna.create_study(study_name=BUILTIN_STUDY, storage=f"sqlite:///{out}", direction="maximize")
    for key in DEFINING_KEYS:
        if key in SPLIT:
            target.set_user_attr(key, SPLIT[key])
    target.set_user_attr("space_description", space.describe())
    total = 0
    for db in args.sources:
        for summary in optuna.get_all_study_summaries(f"sqlite:///{db}"):
            source = optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{db}")
            try:
                check_compatible(source, SPLIT)
            except UserInputError:
                continue  # another split or fidelity: its scores do not compare
            copies, _ = prior_trials(source, space, TrainConfig(seed=0))
            # A study launched with --prior holds copies of other studies' trials: add_prior
            # keeps one copy per original, so no trial weighs twice in TPE's history.
            added = add_prior(target, copies)
            total += added
            print(f"{db} {summary.study_name}: {len(copies)} trials fit the default space, {added} new")
    assert all(PRIOR_ATTR in t.user_attrs for t in target.trials)
    print(f"{out}: {total} trials")


if __name__ == "__main__":
    main()
