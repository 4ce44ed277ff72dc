"""`lstm-search report`: write reports/NAME/report.md, its figures and trials.csv, then
publish the figures as study artifacts and the study note for optuna-dashboard.

Every check of the command line, the study and the folders comes before the final runs
train; ``search.report.write_report`` does the rest, as the ``FinalRunSpec`` built here says.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import optuna

from model.config import PRECISIONS, check_seed
from model.errors import UserInputError
from search.artifacts import (
    add_artifacts_arg,
    artifact_dir_for,
    open_artifact_store,
    publish_report,
)
from search.commands._common import (
    HELP_FORMAT,
    add_data_args,
    add_storage_arg,
    setup_hardware,
    study_name_arg,
)
from search.commands._existing import check_writable_storage, open_existing_study
from search.commands._paths import check_output_dir, safe_name
from search.redact import redact_url
from search.settings import check_data_flags, check_range
from search.storage import DEFAULT_STORAGE, storage_errors
from search.study import name_objective

MAX_SEEDS = 100  # each seed retrains V1 and V2 on 60,000 images: more is a typo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="write a markdown report of a study (V1 vs V2, test accuracy, figures)",
        description="Retrain V1 (the baseline) and V2 (the best trial) with --seeds seeds each on "
        "the training images, score every run on the test set (cached in the study per seed), "
        "and write report.md with the lab's hyperparameter table and reproduce commands, the "
        "seed spread, per-epoch logs, figures, importances, V2's gates and a summary.",
        formatter_class=HELP_FORMAT,
    )
    p.add_argument("--study", type=study_name_arg(), required=True, help="name of the study to report on")
    add_storage_arg(p)
    add_artifacts_arg(p)
    p.add_argument("--no-publish", action="store_true",
                   help="do not upload the figures as study artifacts nor set the dashboard's study note")
    p.add_argument("--out", default=None, help="output folder (default: reports/STUDY)")
    p.add_argument("--baseline", default="v1",
                   help="what V1 is: v1 (the study's baseline trial), template (the lab's handout), "
                   "or a JSON file of config fields")
    p.add_argument("--retrain", action="store_true", help="retrain V1 and V2 even when cached in the study")
    p.add_argument("--seeds", type=int, default=3,
                   help="final runs of V1 and of V2, each with its own seed (cached per seed)")
    add_data_args(p, validation=False)
    # Default None: each configuration keeps the precision it was searched with.
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="retrain V1 and V2 in this precision (default: the one each was searched with)")
    p.add_argument("--importance-seed", type=int, default=0, help="seed of fANOVA's random forest")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from search.report import write_report  # matplotlib and pandas: only when reporting
    from search.report.retrain import FinalRunSpec

    check_seed(args.importance_seed, "--importance-seed")
    check_data_flags(args)
    check_range("--seeds", args.seeds, 1, MAX_SEEDS)
    # Every check before V1 and V2 are retrained (minutes): the output folder first.
    out = check_output_dir(Path(args.out) if args.out else default_out(args.study), "--out")
    device = setup_hardware(args)
    study = open_existing_study(args.storage, args.study)
    _check_seeds_fit(study, args)
    # The final runs are cached in the study and the figures uploaded beside it as they
    # are made: a storage or artifact folder that cannot be written fails here, not after.
    check_writable_storage(args.storage)
    store = None if args.no_publish else open_artifact_store(args.storage, args.artifacts)
    if store is not None:
        check_output_dir(artifact_dir_for(args.storage, args.artifacts), "the artifact folder (or pass --no-publish)")
    optuna.logging.set_verbosity(logging.WARNING)
    with storage_errors(args.storage):
        spec = FinalRunSpec(seeds=args.seeds, data_root=args.data_root, subset=args.subset, device=str(device),
                            precision=args.precision, retrain=args.retrain)
        paths = write_report(
            study, out, spec=spec, baseline=args.baseline, importance_seed=args.importance_seed, log=print,
            storage_url=None if args.storage == DEFAULT_STORAGE else public_url(args.storage),
        )
        name_objective(study)  # after the checks: bad input writes nothing to the study
    print(f"report written to {paths.markdown} ({len(paths.figures)} figures, {paths.trials_csv.name})")
    if store is not None:
        with storage_errors(args.storage):
            uploaded = publish_report(study, store, paths.out, paths.note)
        print(f"published {len(uploaded)} file(s) and the study note for optuna-dashboard")
    return 0


def default_out(study: str) -> Path:
    return Path("reports") / safe_name(study)


def _check_seeds_fit(study: optuna.Study, args: argparse.Namespace) -> None:
    """V1's and V2's runs are seeded s..s+k-1 from each config's own seed s: all of them
    must be seeds a run takes, checked before the first one trains."""
    from search.report.collect import best_config, resolve_baseline

    v1, _ = resolve_baseline(study, args.baseline)
    v2, _ = best_config(study)
    for name, cfg in (("V1", v1), ("V2", v2)):
        try:
            check_seed(cfg.seed, f"{name}'s seed", count=args.seeds)
        except UserInputError as exc:
            raise UserInputError(f"--seeds {args.seeds} is too many for this study: {exc}; "
                                 "pass fewer --seeds") from None


def public_url(url: str) -> str:
    """The storage URL as the report may print it: a password is never written out."""
    return redact_url(url)

