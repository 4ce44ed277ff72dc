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

from model.config import TrainConfig
from model.data import load_test
from search.report import figures
from search.report.cells import load_comparison
from search.report.collect import best_config, collect_trials, resolve_baseline, summarize
from search.report.importance import (
    categorical_params, describe_contrast, fanova_importances, importance_params, quartile_contrast,
)
from search.report.markdown import ReportContent, render
from search.report.parallel import run_jobs
from search.report.retrain import (
    FinalData, FinalJob, FinalRun, cache_key, load_final_data, plan_final_runs, seeds_of, store_run,
)

__all__ = ["ReportPaths", "write_report"]

TOP_PARAMS = 3  # sentences and slice panels for this many of the most important parameters
DEFAULT_SEEDS = 3


class ReportPaths(NamedTuple):
    out: Path
    markdown: Path
    trials_csv: Path
    figures: dict[str, Path]  # curves, grid, confusion, history, intermediate, importances
    retrained: tuple[str, ...]  # "V1 seed 0", ... trained by this call (empty: all cached)


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
    seeds: int = DEFAULT_SEEDS,
    storage_url: str | None = None,
    threads: int | None = None,
) -> ReportPaths:
    """Write the report of ``study`` under ``out``; V1 and V2 are each run with ``seeds``
    seeds, retrained only when not cached in the study (or when ``retrain``).
    Over 80 lines and 13 parameters: it is the report's orchestration, and issue 27 replaces
    the parameters with a frozen final-run spec and the sections with a list of builders.
    ``precision`` (issue 16) overrides the precision both are retrained in; None keeps each
    configuration's own. ``storage_url`` goes into the report's ``train --study`` command.
    ``threads``: CPU threads for the final runs in all (default: torch's thread count, which
    is every core unless ``--threads`` lowered it); the runs to train share them in parallel
    processes (``search.report.parallel``)."""
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1 (got {seeds})")
    say = log or (lambda _msg: None)
    out = Path(out)
    rows = collect_trials(study)
    summary = summarize(study, rows)
    v1_cfg, v1_source = resolve_baseline(study, baseline)
    v2_cfg, v2_trial = best_config(study)
    v1_cfg, v2_cfg = v1_cfg.with_overrides(precision=precision), v2_cfg.with_overrides(precision=precision)

    data_cache: dict[int, FinalData] = {}

    def data(seed: int) -> FinalData:  # loaded only if something must train
        if seed not in data_cache:
            say(f"loading MNIST for the final runs (training order of seed {seed})")
            data_cache.clear()  # one copy of the 60,000 images at a time (~190 MB each)
            data_cache[seed] = load_final_data(data_root, subset, seed=seed)
        return data_cache[seed]

    runs, retrained = _final_runs(study, {"V1": v1_cfg, "V2": v2_cfg}, seeds, data, say, data_root=data_root,
                                  subset=subset, device=device, retrain=retrain, threads=threads)

    # The test images are needed for the grid and the labels for the confusion matrix.
    if data_cache:
        first = next(iter(data_cache.values()))
        test_x, test_y = first.test_x, first.test_y
    else:
        test_x, test_y = load_test(data_root)
    images, labels = test_x.numpy(), test_y.numpy()
    v1_run, v2_run = runs["V1"][0], runs["V2"][0]  # the configs' own seeds: the figures' runs

    importances = fanova_importances(study, seed=importance_seed)
    categorical = categorical_params(study)
    sentences = []
    top = [imp.param for imp in importances[:TOP_PARAMS]]
    for imp in importances[:TOP_PARAMS]:
        contrast = quartile_contrast(rows, imp.param, categorical=imp.param in categorical)
        if contrast is not None:
            sentences.append(describe_contrast(contrast, imp.importance))

    out.mkdir(parents=True, exist_ok=True)
    written = {
        "curves": figures.curves_figure(v1_run, v2_run, out / "curves.png"),
        "confusion": figures.confusion_figure(labels, v2_run, out / "confusion_v2.png"),
    }
    written["grid"], grid = figures.digit_grid_figure(images, labels, v1_run, v2_run,
                                                      out / "test_digits.png")
    params = importance_params(study) if importances else []
    written.update(figures.study_figures(study, out, params, importance_seed=importance_seed))
    if top:
        written["slice"] = figures.slice_figure(study, top, out / "slice_top_params.png")
    gates_run = next((r for r in runs["V2"] if r.gates is not None), None)
    if gates_run is not None:
        written["gates"] = figures.gates_figure(gates_run.gates["means"], out / "gates_v2.png")
    cells = load_comparison(study)
    if cells is not None and len(cells.steps()) > 1:
        written["cells"] = figures.cells_steps_figure(cells.results, out / "cells_by_steps.png")

    trials_csv = out / "trials.csv"
    study.trials_dataframe().to_csv(trials_csv, index=False)
    content = ReportContent(
        summary=summary, v1=v1_cfg, v1_source=v1_source, v2=v2_cfg, v2_trial=v2_trial,
        v1_runs=runs["V1"], v2_runs=runs["V2"], importances=importances, sentences=sentences,
        figures={k: p.name for k, p in written.items()}, grid_indices=grid, cells=cells,
        storage_url=storage_url, subset=subset,
    )
    markdown = out / "report.md"
    markdown.write_text(render(content))
    return ReportPaths(out, markdown, trials_csv, written, tuple(retrained))


def _final_runs(
    study: optuna.Study, cfgs: dict[str, TrainConfig], seeds: int, data: Callable[[int], FinalData],
    say: Callable[[str], None], data_root: str | None, subset: int | None, device: torch.device | str,
    retrain: bool, threads: int | None,
) -> tuple[dict[str, list[FinalRun]], list[str]]:
    """Every config's runs, one per seed: the cached ones read, the others trained (all of
    them together, side by side where there are cores) and each stored as it finishes.
    Returns the runs by name and the labels of those trained now."""
    cached, jobs, keys, retrained = {}, {}, {}, []
    for name, cfg in cfgs.items():
        # V2's runs also measure their gates (question 5).
        cached[name], todo = plan_final_runs(study, name, cfg, seeds_of(cfg, seeds), subset=subset,
                                             retrain=retrain, gates=name == "V2", log=say)
        keys[name] = [cache_key(cfg.with_overrides(seed=s), subset) for s in seeds_of(cfg, seeds)]
        for job in todo:  # V2 = V1 (the baseline won): one run serves both, as the cache would
            twin = jobs.get(job.key)
            jobs[job.key] = job if twin is None else twin._replace(gates=twin.gates or job.gates)
            if twin is None:
                retrained.append(job.label)
    done: dict[str, FinalRun] = {}

    def store(job: FinalJob, run: FinalRun) -> None:
        store_run(study, job.key, run)
        done[job.key] = run

    run_jobs(list(jobs.values()), data, store, data_root=data_root, subset=subset, device=device, log=say,
             threads=threads)
    runs = {}
    for name in cfgs:
        runs[name] = [done.get(key) or run for key, run in zip(keys[name], cached[name], strict=True)]
        trained = sum(key in done for key in keys[name])
        accs = ", ".join(f"{100 * r.test_acc:.2f}%" for r in runs[name])
        say(f"{name}: test acc {accs} ({trained} trained now, {seeds - trained} cached)")
    return runs, retrained
