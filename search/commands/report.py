"""`lstm-search report`: write reports/NAME/report.md, its figures and trials.csv."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import optuna

from model.config import MAX_SEED
from model.device import DEVICES
from model.errors import UserInputError
from search.artifacts import add_artifacts_arg, open_artifact_store, publish_report
from search.commands._common import HELP_FORMAT, add_storage_arg, setup_hardware
from search.commands._existing import open_existing_study
from search.commands._paths import check_output_dir, safe_name


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="write a markdown report of a study (V1 vs V2, test accuracy, figures)",
        description="Retrain V1 (the baseline) and V2 (the best trial) once on the training "
        "images, score both on the test set (cached in the study), and write report.md with "
        "the lab's hyperparameter table, per-epoch logs, figures, importances and a summary.",
        formatter_class=HELP_FORMAT,
    )
    p.add_argument("--study", required=True, help="name of the study to report on")
    add_storage_arg(p)
    add_artifacts_arg(p)
    p.add_argument("--no-publish", action="store_true",
                   help="do not upload the figures as study artifacts nor set the dashboard's study note")
    p.add_argument("--out", default=None, help="output folder (default: reports/STUDY)")
    p.add_argument("--baseline", default="v1",
                   help="what V1 is: v1 (the study's baseline trial), template (the lab's handout), "
                   "or a JSON file of config fields")
    p.add_argument("--retrain", action="store_true", help="retrain V1 and V2 even when cached in the study")
    g = p.add_argument_group("final runs")
    g.add_argument("--data-root", default=None, help="folder holding MNIST/raw (default: $LSTM_SEARCH_DATA, else ./data)")
    g.add_argument("--subset", type=int, default=None,
                   help="retrain on only N training images (quick reports; the report says so)")
    g.add_argument("--device", choices=DEVICES, default="auto", help="where to retrain")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    g.add_argument("--importance-seed", type=int, default=0, help="seed of fANOVA's random forest")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from search.report import write_report  # matplotlib and pandas: only when reporting

    if not 0 <= args.importance_seed <= MAX_SEED:
        raise UserInputError(f"--importance-seed must be between 0 and {MAX_SEED} (got {args.importance_seed})")
    if args.subset is not None and not 0 < args.subset <= 60_000:
        raise UserInputError(f"--subset must be between 1 and 60000 (got {args.subset})")
    # Every check before V1 and V2 are retrained (minutes): the output folder first.
    out = check_output_dir(Path(args.out) if args.out else Path("reports") / safe_name(args.study), "--out")
    device = setup_hardware(args)
    study = open_existing_study(args.storage, args.study)
    optuna.logging.set_verbosity(logging.WARNING)
    paths = write_report(
        study, out, baseline=args.baseline, retrain=args.retrain, data_root=args.data_root,
        subset=args.subset, device=device, importance_seed=args.importance_seed, log=print,
    )
    print(f"report written to {paths.markdown} ({len(paths.figures)} figures, {paths.trials_csv.name})")
    if not args.no_publish:
        store = open_artifact_store(args.storage, args.artifacts)
        uploaded = publish_report(study, store, paths.out, dashboard_note(paths.markdown.read_text()))
        print(f"published {len(uploaded)} file(s) and the study note for optuna-dashboard")
    return 0


def dashboard_note(report_markdown: str) -> str:
    """The study note: the report's V1-vs-V2 table, final accuracies and study summary.

    Figures stay out (the note cannot show relative image links); they are artifacts.
    """
    sections = report_markdown.split("\n## ")
    title = sections[0].splitlines()[0].lstrip("# ")
    keep = [f"## {s.strip()}" for s in sections[1:] if s.startswith(("1.", "5."))]
    finals = [line for line in report_markdown.splitlines() if line.startswith("- **V")]
    if finals:
        keep.insert(1, "## Final test accuracy\n\n" + "\n".join(finals))
    return f"# {title}\n\n" + "\n\n".join(keep)
