"""Issue 26: the report's final runs train side by side in processes, with the same
numbers, whole log lines, a cache that survives Ctrl-C, and resume training only the rest."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from pathlib import Path

import pytest
import torch

from model.errors import DataError
from search.report import build, write_report
from search.report.parallel import plan_processes, run_jobs
from search.report.retrain import (
    FinalJob,
    FinalRun,
    FinalRunSpec,
    load_final_data,
    plan_final_runs,
    store_run,
)
from tests.dropped_interrupt import drop_a_ctrl_c
from tests.search.report import conftest
from tests.search.report.conftest import make_study


def _jobs(study: object, seeds: int) -> list[FinalJob]:
    from search.report.collect import best_config, resolve_baseline

    v1, _ = resolve_baseline(study, "v1")
    v2, _ = best_config(study)
    spec = FinalRunSpec(seeds=seeds)
    return (plan_final_runs(study, "V1", v1, spec)[1]
            + plan_final_runs(study, "V2", v2, spec, gates=True)[1])


def _without_seconds(run: FinalRun) -> dict[str, object]:
    fields = run._asdict()
    fields.pop("seconds")
    fields["epochs"] = [{k: v for k, v in e.items() if k != "seconds"} for e in run.epochs]
    return fields


def test_the_split_of_processes_and_threads() -> None:
    assert plan_processes(4, 2) == (2, 1)
    assert plan_processes(2, 8) == (2, 4)
    assert plan_processes(1, 2) == (1, 2)
    assert plan_processes(3, 1) == (1, 1)


def test_runs_in_processes_equal_the_same_runs_one_after_the_other(tiny_mnist: Path) -> None:
    """One thread per run both ways: the same computation, so the same bits (the thread
    count is what may change a float sum's order, not the process)."""
    study = make_study(shrink=True)
    jobs = _jobs(study, 2)[1:3]
    assert [j.label for j in jobs] == ["V1 seed 1", "V2 seed 0"]
    root = str(tiny_mnist)
    here: dict[str, FinalRun] = {}
    run_jobs(jobs, FinalRunSpec(data_root=root, threads=1), lambda seed: load_final_data(root, None, seed=seed),
             lambda j, r: here.__setitem__(j.label, r))
    lines: list[str] = []
    apart: dict[str, FinalRun] = {}
    run_jobs(jobs, FinalRunSpec(data_root=root, threads=2),
             lambda seed: pytest.fail("the parent must not load data for its children"),
             lambda j, r: apart.__setitem__(j.label, r), log=lines.append)
    assert lines[0] == "training 2 final runs in 2 processes x 1 thread(s)"
    assert set(apart) == set(here)
    for label in here:
        assert _without_seconds(apart[label]) == _without_seconds(here[label]), label
    assert apart["V2 seed 0"].gates is not None and apart["V1 seed 1"].gates is None
    # Every log line arrives whole, named by its run: none interleaved with another's.
    epoch_lines = lines[1:]
    assert epoch_lines and all(line.split(": ", 1)[0] in here for line in epoch_lines)
    for label in here:
        mine = [line for line in epoch_lines if line.startswith(label + ": Epoch [")]
        assert len([m for m in mine if "train loss" in m]) == 2  # one summary per epoch
    assert mp.active_children() == []


def test_ctrl_c_stops_every_child_keeps_whole_runs_and_the_report_resumes_the_rest(
    tiny_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Longer runs, so the Ctrl-C lands while the other children are still training.
    monkeypatch.setattr(conftest, "tiny", lambda c: c.with_overrides(hidden_size=8, epochs=8, batch_size=64))
    study = make_study(shrink=True)
    jobs = _jobs(study, 2)
    root = str(tiny_mnist)
    stored: list[str] = []

    def store_then_ctrl_c(job: FinalJob, run: FinalRun) -> None:
        store_run(study, job.key, run)
        stored.append(job.label)
        os.kill(os.getpid(), signal.SIGINT)  # held until the run is stored, then delivered

    with pytest.raises(KeyboardInterrupt):
        run_jobs(jobs, FinalRunSpec(data_root=root, threads=2), lambda seed: pytest.fail("loaded in the parent"),
                 store_then_ctrl_c)
    assert len(stored) == 1  # the interrupt came right after the first run was stored
    assert mp.active_children() == []  # every child stopped and reaped
    keys = [k for k in study.user_attrs if k.startswith("final_run:")]
    assert len(keys) == 1 and FinalRun(**study.user_attrs[keys[0]]).predictions  # a whole run

    # The same report again trains only the three missing runs.
    torch.set_num_threads(1)
    paths = write_report(study, tmp_path / "r", FinalRunSpec(seeds=2, data_root=root))
    assert sorted(paths.retrained) == sorted(j.label for j in jobs if j.label not in stored)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped exception
@pytest.mark.parametrize("threads", [2, 1], ids=["processes", "one-after-the-other"])
def test_a_ctrl_c_that_python_drops_still_stops_the_runs(tiny_mnist: Path, threads: int) -> None:
    study = make_study(shrink=True)
    jobs = _jobs(study, 2)
    stored: list[str] = []
    stored_before: list[str] = []  # the runs stored when the Ctrl-C came
    dropped: list[str] = []

    def log(line: str) -> None:
        if line.startswith(jobs[0].label) and not dropped:  # a line of the first run's training
            dropped.append(line)
            stored_before.extend(stored)
            drop_a_ctrl_c()

    with pytest.raises(KeyboardInterrupt):
        run_jobs(jobs, FinalRunSpec(data_root=str(tiny_mnist), threads=threads),
                 lambda seed: load_final_data(str(tiny_mnist), None, seed=seed),
                 lambda job, run: stored.append(job.label), log=log)
    assert dropped  # the Ctrl-C came, and Python dropped its exception
    # In processes the parent stops at its next step: no run is stored after the Ctrl-C (the
    # other child may have finished before it). One after the other, the run in training
    # finishes and is stored whole first.
    assert stored == (stored_before if threads == 2 else [jobs[0].label])
    assert jobs[0].label not in stored_before and len(stored) < len(jobs)
    assert mp.active_children() == []


def test_a_failing_child_raises_its_error_here_and_stops_the_others(tiny_mnist: Path) -> None:
    study = make_study(shrink=True)
    jobs = _jobs(study, 1)
    # Each child loads its images: 1,000 of a 400-image data root fails there, with the
    # loader's own error, which reaches this process with its class and words.
    with pytest.raises(DataError, match="--subset must be between 1 and 400"):
        run_jobs(jobs, FinalRunSpec(data_root=str(tiny_mnist), subset=1000, threads=2),
                 lambda seed: pytest.fail("loaded in the parent"), lambda j, r: None)
    assert mp.active_children() == []


def test_the_report_trains_in_processes_when_given_the_threads(tiny_mnist: Path, tmp_path: Path) -> None:
    study = make_study(shrink=True)
    lines: list[str] = []
    paths = write_report(study, tmp_path / "r", FinalRunSpec(seeds=1, data_root=str(tiny_mnist), threads=2),
                         log=lines.append)
    assert paths.retrained == ("V1 seed 0", "V2 seed 0")
    assert "training 2 final runs in 2 processes x 1 thread(s)" in lines
    assert build.load_final_data is load_final_data  # the parent never needed the images here
    assert not any(line.startswith("loading MNIST") for line in lines)


def test_when_v2_is_v1_one_run_serves_both(tiny_mnist: Path, tmp_path: Path) -> None:
    """Planned together, V1's and V2's runs of one config would both train; one does, and
    it measures the gates V2 needs."""
    import json

    study = make_study(shrink=True)
    same = tmp_path / "v2.json"
    same.write_text(json.dumps(conftest.tiny(conftest.BEST).to_dict()))
    paths = write_report(study, tmp_path / "r", FinalRunSpec(seeds=1, data_root=str(tiny_mnist), threads=2),
                         baseline=str(same))
    assert paths.retrained == ("V1 seed 0",)
    runs = [v for k, v in study.user_attrs.items() if k.startswith("final_run:")]
    assert len(runs) == 1 and runs[0]["gates"] is not None
