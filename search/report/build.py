"""``write_report``: a study in, a folder out (report.md, PNG figures, trials.csv).

The one entry point the CLI (and later the artifact uploader) calls; it returns every
path it wrote so a caller can publish them without knowing the layout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import optuna
import torch

from model.data import load_test
from search.report import figures
from search.report.cells import load_comparison
from search.report.collect import best_config, collect_trials, resolve_baseline, summarize
from search.report.importance import (
    categorical_params, describe_contrast, fanova_importances, importance_params, quartile_contrast,
)
from search.report.markdown import ReportContent, render
from search.report.retrain import FinalData, final_run, load_final_data

__all__ = ["ReportPaths", "write_report"]

TOP_PARAMS = 3  # sentences for this many of the most important parameters


class ReportPaths(NamedTuple):
    out: Path
    markdown: Path
    trials_csv: Path
    figures: dict[str, Path]  # curves, grid, confusion, history, intermediate, importances
    retrained: tuple[str, ...]  # which of V1, V2 were trained by this call (empty: all cached)


def write_report(
    study: optuna.Study,
    out: str | Path,
    baseline: str = "v1",
    retrain: bool = False,
    data_root: str | None = None,
    subset: int | None = None,
    device: torch.device | str = "cpu",
    importance_seed: int = 0,
    log: Callable[[str], None] | None = None,
    precision: str | None = None,
) -> ReportPaths:
    """Write the report of ``study`` under ``out``; V1 and V2 are retrained only when not
    cached in the study (or when ``retrain``). ``precision`` (issue 16) overrides the
    precision both are retrained in; None keeps each configuration's own."""
    say = log or (lambda _msg: None)
    out = Path(out)
    rows = collect_trials(study)
    summary = summarize(study, rows)
    v1_cfg, v1_source = resolve_baseline(study, baseline)
    v2_cfg, v2_trial = best_config(study)
    v1_cfg, v2_cfg = v1_cfg.with_overrides(precision=precision), v2_cfg.with_overrides(precision=precision)

    data_cache: list[FinalData] = []

    def data() -> FinalData:  # loaded at most once, and only if something must train
        if not data_cache:
            say("loading MNIST for the final runs")
            data_cache.append(load_final_data(data_root, subset))
        return data_cache[0]

    retrained = []
    runs = {}
    for name, cfg in (("V1", v1_cfg), ("V2", v2_cfg)):
        run, trained = final_run(study, cfg, data, subset=subset, device=device, retrain=retrain,
                                 log=lambda m, n=name: say(f"{n}: {m}"))
        if trained:
            retrained.append(name)
            say(f"{name}: trained, test acc {100 * run.test_acc:.2f}%")
        else:
            say(f"{name}: cached, test acc {100 * run.test_acc:.2f}%")
        runs[name] = run

    # The test images are needed for the grid and the labels for the confusion matrix.
    if data_cache:
        test_x, test_y = data_cache[0].test_x, data_cache[0].test_y
    else:
        test_x, test_y = load_test(data_root)
    images, labels = test_x.numpy(), test_y.numpy()

    importances = fanova_importances(study, seed=importance_seed)
    categorical = categorical_params(study)
    sentences = []
    for imp in importances[:TOP_PARAMS]:
        contrast = quartile_contrast(rows, imp.param, categorical=imp.param in categorical)
        if contrast is not None:
            sentences.append(describe_contrast(contrast, imp.importance))

    out.mkdir(parents=True, exist_ok=True)
    written = {
        "curves": figures.curves_figure(runs["V1"], runs["V2"], out / "curves.png"),
        "confusion": figures.confusion_figure(labels, runs["V2"], out / "confusion_v2.png"),
    }
    written["grid"], grid = figures.digit_grid_figure(images, labels, runs["V1"], runs["V2"],
                                                      out / "test_digits.png")
    params = importance_params(study) if importances else []
    written.update(figures.study_figures(study, out, params, importance_seed=importance_seed))

    trials_csv = out / "trials.csv"
    study.trials_dataframe().to_csv(trials_csv, index=False)
    content = ReportContent(
        summary=summary, v1=v1_cfg, v1_source=v1_source, v2=v2_cfg, v2_trial=v2_trial,
        v1_run=runs["V1"], v2_run=runs["V2"], importances=importances, sentences=sentences,
        figures={k: p.name for k, p in written.items()}, grid_indices=grid,
        cells=load_comparison(study),
    )
    markdown = out / "report.md"
    markdown.write_text(render(content))
    return ReportPaths(out, markdown, trials_csv, written, tuple(retrained))
