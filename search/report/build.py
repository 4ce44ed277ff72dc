"""``write_report``: a study in, a folder out (report.md, PNG figures, trials.csv).

The one entry point the CLI calls. It returns every path it wrote, and the study note for
optuna-dashboard, so that ``lstm-search report`` can publish them
(``search.artifacts.publish_report``) without knowing the layout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import optuna

from model.config import TrainConfig
from model.data import load_test
from search.report import figures
from search.report.cells import Comparison, load_comparison
from search.report.collect import (
    TrialRow,
    best_config,
    collect_trials,
    resolve_baseline,
    summarize,
)
from search.report.importance import (
    Importance,
    categorical_params,
    describe_contrast,
    fanova_importances,
    importance_params,
    quartile_contrast,
)
from search.report.markdown import ReportContent, dashboard_note, render
from search.report.parallel import run_jobs
from search.report.retrain import (
    FinalData,
    FinalJob,
    FinalRun,
    FinalRunSpec,
    cache_key,
    load_final_data,
    plan_final_runs,
    seeds_of,
    store_run,
)

__all__ = ["ReportPaths", "write_report"]

TOP_PARAMS = 3  # sentences and slice panels for this many of the most important parameters
Runs = dict[str, list[FinalRun]]  # "V1"/"V2" -> one run per seed, the config's own seed first


class Mattered(NamedTuple):
    """What mattered: fANOVA importances, largest first; a sentence on what the best and
    worst quarter used for each top parameter; those top parameters (the slice plot's)."""

    importances: list[Importance]
    sentences: list[str]
    top: list[str]


class ReportPaths(NamedTuple):
    out: Path
    markdown: Path
    trials_csv: Path
    # curves, grid, confusion, history, intermediate; importances, slice, gates and cells
    # when the study has what they show
    figures: dict[str, Path]
    retrained: tuple[str, ...]  # "V1 seed 0", ... trained by this call (empty: all cached)
    note: str = ""  # the study note for optuna-dashboard (markdown.dashboard_note)


def write_report(
    study: optuna.Study,
    out: str | Path,
    spec: FinalRunSpec | None = None,
    baseline: str = "v1",
    importance_seed: int = 0,
    log: Callable[[str], None] | None = None,
    storage_url: str | None = None,
) -> ReportPaths:
    """Write the report of ``study`` under ``out``; V1 and V2 are each run as ``spec`` says
    (default ``FinalRunSpec()``), retrained only when not cached in the study (or when
    ``spec.retrain``). ``baseline`` is what V1 is (``collect.resolve_baseline``);
    ``storage_url`` goes into the report's ``train --study`` command."""
    spec = spec or FinalRunSpec()
    say = log or (lambda _msg: None)
    out = Path(out)
    rows = collect_trials(study)
    summary = summarize(study, rows)
    v1_cfg, v1_source = resolve_baseline(study, baseline)
    v2_cfg, v2_trial = best_config(study)
    v1_cfg, v2_cfg = spec.config(v1_cfg), spec.config(v2_cfg)
    images = _Images(spec, say)
    runs, retrained = _final_runs(study, {"V1": v1_cfg, "V2": v2_cfg}, spec, images.final, say)
    mattered = _what_mattered(study, rows, importance_seed)
    cells = load_comparison(study)
    out.mkdir(parents=True, exist_ok=True)
    written, grid = _figures(study, out, runs, images.test(), mattered, cells, importance_seed)
    trials_csv = out / "trials.csv"
    study.trials_dataframe().to_csv(trials_csv, index=False)
    content = ReportContent(
        summary=summary, v1=v1_cfg, v1_source=v1_source, v2=v2_cfg, v2_trial=v2_trial,
        v1_runs=runs["V1"], v2_runs=runs["V2"], importances=mattered.importances,
        sentences=mattered.sentences,
        figures={k: p.name for k, p in written.items()}, grid_indices=grid, cells=cells,
        storage_url=storage_url, subset=spec.subset,
    )
    markdown = out / "report.md"
    markdown.write_text(render(content))
    return ReportPaths(out, markdown, trials_csv, written, tuple(retrained), dashboard_note(content))


class _Images:
    """The final runs' images, loaded only if something must train, one training order at a
    time (each copy holds all 60,000 training images); the test set for the figures."""

    def __init__(self, spec: FinalRunSpec, say: Callable[[str], None]) -> None:
        self.spec, self.say = spec, say
        self.loaded: dict[int, FinalData] = {}

    def final(self, seed: int) -> FinalData:
        if seed not in self.loaded:
            self.say(f"loading MNIST for the final runs (training order of seed {seed})")
            self.loaded.clear()
            self.loaded[seed] = load_final_data(self.spec.data_root, self.spec.subset, seed=seed)
        return self.loaded[seed]

    def test(self) -> tuple[np.ndarray, np.ndarray]:
        """The test images (for the grid) and labels (for the confusion matrix)."""
        if self.loaded:
            first = next(iter(self.loaded.values()))
            test_x, test_y = first.test_x, first.test_y
        else:
            test_x, test_y = load_test(self.spec.data_root)
        return test_x.numpy(), test_y.numpy()


def _what_mattered(study: optuna.Study, rows: list[TrialRow], importance_seed: int) -> Mattered:
    """fANOVA (seeded) over the complete trials, then a sentence for each of the
    TOP_PARAMS most important parameters."""
    importances = fanova_importances(study, seed=importance_seed)
    categorical = categorical_params(study)
    sentences = []
    top = [imp.param for imp in importances[:TOP_PARAMS]]
    for imp in importances[:TOP_PARAMS]:
        contrast = quartile_contrast(rows, imp.param, categorical=imp.param in categorical)
        if contrast is not None:
            sentences.append(describe_contrast(contrast, imp.importance))
    return Mattered(importances, sentences, top)


def _figures(
    study: optuna.Study, out: Path, runs: Runs, test: tuple[np.ndarray, np.ndarray],
    mattered: Mattered, cells: Comparison | None, importance_seed: int,
) -> tuple[dict[str, Path], list[int]]:
    """Every figure the study has data for, by key, and the test images the grid shows;
    the figures' runs are V1's and V2's first (each config's own seed)."""
    images, labels = test
    v1_run, v2_run = runs["V1"][0], runs["V2"][0]
    written = {
        "curves": figures.curves_figure(v1_run, v2_run, out / "curves.png"),
        "confusion": figures.confusion_figure(labels, v2_run, out / "confusion_v2.png"),
    }
    written["grid"], grid = figures.digit_grid_figure(images, labels, v1_run, v2_run, out / "test_digits.png")
    params = importance_params(study) if mattered.importances else []
    written.update(figures.study_figures(study, out, params, importance_seed=importance_seed))
    if mattered.top:
        written["slice"] = figures.slice_figure(study, mattered.top, out / "slice_top_params.png")
    gates_run = next((r for r in runs["V2"] if r.gates is not None), None)
    if gates_run is not None:
        written["gates"] = figures.gates_figure(gates_run.gates["means"], out / "gates_v2.png")
    if cells is not None and len(cells.steps()) > 1:
        written["cells"] = figures.cells_steps_figure(cells.results, out / "cells_by_steps.png")
    return written, grid


def _final_runs(
    study: optuna.Study, cfgs: dict[str, TrainConfig], spec: FinalRunSpec, data: Callable[[int], FinalData],
    say: Callable[[str], None],
) -> tuple[Runs, list[str]]:
    """Every config's runs, one per seed: the cached ones read, the others trained (all of
    them together, side by side where there are cores) and each stored as it finishes.
    Returns the runs by name and the labels of those trained now."""
    cached, jobs, keys, retrained = {}, {}, {}, []
    for name, cfg in cfgs.items():
        # V2's runs also measure their gates (the report's gates section).
        cached[name], todo = plan_final_runs(study, name, cfg, spec, gates=name == "V2", log=say)
        keys[name] = [cache_key(cfg.with_overrides(seed=s), spec.subset) for s in seeds_of(cfg, spec.seeds)]
        for job in todo:  # V2 = V1 (the baseline won): one run serves both, as the cache would
            twin = jobs.get(job.key)
            jobs[job.key] = job if twin is None else twin._replace(gates=twin.gates or job.gates)
            if twin is None:
                retrained.append(job.label)
    done: dict[str, FinalRun] = {}

    def store(job: FinalJob, run: FinalRun) -> None:
        store_run(study, job.key, run)
        done[job.key] = run

    run_jobs(list(jobs.values()), spec, data, store, log=say)
    runs = {}
    for name in cfgs:
        runs[name] = [done.get(key) or run for key, run in zip(keys[name], cached[name], strict=True)]
        trained = sum(key in done for key in keys[name])
        accs = ", ".join(f"{100 * r.test_acc:.2f}%" for r in runs[name])
        say(f"{name}: test acc {accs} ({trained} trained now, {spec.seeds - trained} cached)")
    return runs, retrained
