"""`lstm-search report` and `compare-cells` end to end on tiny data: every file appears,
the second report reuses the cached final runs, and bad input is one line, exit 2."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

import optuna
import optuna_dashboard
import pytest

from search.artifacts import list_artifacts
from search.cli import main
from search.report import FinalRunSpec, build, retrain, write_report
from search.report.cells import load_comparison
from tests.fakes import TINY_SPACE
from tests.search.report.conftest import make_study

FILES = ("report.md", "trials.csv", "curves.png", "test_digits.png", "confusion_v2.png",
         "optimization_history.png", "intermediate_values.png", "param_importances.png",
         "slice_top_params.png", "gates_v2.png")
SECTIONS = ("## 1. Hyperparameters: V1 vs V2", "## 2. Final evaluation on the test set", "## 3. Figures",
            "## 4. What mattered", "## 5. Study summary", "## 6. What the gates do",
            "## 7. Simple RNN or LSTM?")


def test_report_writes_every_section_and_reuses_cached_runs(
    tiny_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = make_study(shrink=True)
    spec = FinalRunSpec(seeds=2, data_root=str(tiny_mnist))
    paths = write_report(study, tmp_path / "r", spec)
    assert paths.retrained == ("V1 seed 0", "V1 seed 1", "V2 seed 0", "V2 seed 1")
    for name in FILES:
        assert (tmp_path / "r" / name).stat().st_size > 0, name
    text = paths.markdown.read_text()
    for section in SECTIONS:
        assert section in text
    assert "Not the full training set" in text  # 400 images, and the report says so
    for name in FILES[2:]:
        assert f"]({name})" in text  # relative links render on GitHub
    runs = [v for k, v in study.user_attrs.items() if k.startswith(retrain.CACHE_PREFIX)]
    assert len(runs) == 4 and all(len(r["predictions"]) == 100 for r in runs)
    assert " ± " in text and "seed spread" in text
    assert "| forget-gate bias" in text and "lstm-search train --cell lstm" in text
    # V2's runs measured their gates (question 5), V1's did not; the report shows them.
    assert [r["gates"] is not None for r in runs] == [False, False, True, True]
    assert "| f = 0" in text and "Forcing" in text

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached report must not retrain")

    monkeypatch.setattr(retrain, "run_final", no_training)
    monkeypatch.setattr(build, "load_final_data", no_training)
    again = write_report(study, tmp_path / "r", spec)
    assert again.retrained == ()
    assert again.markdown.read_text().split("## 2.")[1].split("## 3.")[0] == text.split("## 2.")[1].split("## 3.")[0]


def test_retrain_flag_and_a_different_subset_train_again(tiny_mnist: Path, tmp_path: Path) -> None:
    study = make_study(shrink=True)
    one = FinalRunSpec(seeds=1, data_root=str(tiny_mnist))
    subset = FinalRunSpec(seeds=1, data_root=str(tiny_mnist), subset=200)
    write_report(study, tmp_path / "a", subset)
    assert write_report(study, tmp_path / "a", subset).retrained == ()
    assert write_report(study, tmp_path / "a", replace(subset, retrain=True)).retrained == (
        "V1 seed 0", "V2 seed 0")
    assert write_report(study, tmp_path / "b", one).retrained == ("V1 seed 0", "V2 seed 0")
    # One more seed trains only the new seed of each.
    assert write_report(study, tmp_path / "b", replace(one, seeds=2)).retrained == (
        "V1 seed 1", "V2 seed 1")
    # The reproduce section points to the other seeds only when there are some.
    assert "`--seed` changed (V2: 0, 1)" in (tmp_path / "b" / "report.md").read_text()
    assert "The other seeds" not in (tmp_path / "a" / "report.md").read_text()


def _sqlite_study(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'hand.db'}"
    source = make_study(shrink=True)
    optuna.copy_study(from_study_name="hand", from_storage=source._storage, to_storage=url)
    return url


def test_cli_compare_cells_then_report(tiny_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = _sqlite_study(tmp_path)
    rc = main(["compare-cells", "--study", "hand", "--storage", url, "--config", "best", "--trials", "0",
               "--epochs", "1", "--hidden-size", "6", "--steps", "14,28", "--data-root", str(tiny_mnist),
               "--device", "cpu"])
    assert rc == 0
    study = optuna.load_study(study_name="hand", storage=url)
    comparison = load_comparison(study)
    assert [(r.cell, r.steps) for r in comparison.results] == [
        ("lstm", 14), ("lstm", 28), ("gru", 14), ("gru", 28), ("rnn", 14), ("rnn", 28)]
    # Same hidden size, 28 inputs a step: the LSTM has 4 gate blocks, the GRU 3, the RNN 1
    # (+ a shared output layer); at 14 steps each step reads 56 inputs.
    at28 = [r.parameters for r in comparison.results if r.steps == 28]
    assert at28 == [4 * 6 * (28 + 6 + 1) + 70, 3 * 6 * (28 + 6 + 2) + 70, 6 * (28 + 6 + 1) + 70]
    assert comparison.results[0].parameters == 4 * 6 * (56 + 6 + 1) + 70
    assert comparison.tuned["gru"]["epochs"] == 1 and comparison.tuned["gru"]["hidden_size"] == 6
    assert comparison.budget["trials"] == 0
    out = tmp_path / "report"
    assert main(["report", "--study", "hand", "--storage", url, "--out", str(out), "--seeds", "1",
                 "--data-root", str(tiny_mnist), "--device", "cpu"]) == 0
    text = (out / "report.md").read_text()
    assert "| GRU" in text and "Not measured" not in text and "14 steps (56 px)" in text
    assert "were not tuned" in text and "784 steps (one pixel a step) were not run" in text
    assert (out / "cells_by_steps.png").stat().st_size > 0 and "](cells_by_steps.png)" in text
    # Published for optuna-dashboard: the figures as study artifacts and the summary as the note.
    study = optuna.load_study(study_name="hand", storage=url)
    assert study.metric_names == ["val_accuracy"]  # optuna-dashboard's label for the objective
    published = {meta["filename"] for meta in list_artifacts(study)}
    assert {"report.md", "curves.png", "confusion_v2.png"} <= published
    note = optuna_dashboard.get_note(study)
    assert "| Hyper-parameter" in note and "Study summary" in note and "V2 test accuracy" in note


def test_compare_cells_tunes_each_cell_on_the_same_budget(tiny_mnist: Path, tmp_path: Path) -> None:
    url = _sqlite_study(tmp_path)
    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    argv = ["compare-cells", "--study", "hand", "--storage", url, "--cells", "lstm,rnn", "--trials", "2",
            "--space", str(space), "--tune-subset", "200", "--val-size", "100", "--steps", "28,56",
            "--subset", "200", "--data-root", str(tiny_mnist), "--device", "cpu"]
    assert main(argv) == 0
    comparison = load_comparison(optuna.load_study(study_name="hand", storage=url))
    for cell in ("lstm", "rnn"):
        tuning = optuna.load_study(study_name=f"hand.cells.{cell}", storage=url)
        finished = [t for t in tuning.trials if t.state.is_finished()]
        assert len(finished) == 2 and all(t.user_attrs["config"]["cell"] == cell for t in finished)
        assert comparison.tuned[cell] == tuning.best_trial.user_attrs["config"]
        assert comparison.tuned_val[cell] == tuning.best_value
    assert comparison.budget == {"trials": 2, "space": str(space), "tune_images": 200, "val_images": 100,
                                 "final_images": 200, "sampler": "tpe", "pruner": "hyperband"}
    assert [(r.cell, r.steps) for r in comparison.results] == [("lstm", 28), ("lstm", 56), ("rnn", 28), ("rnn", 56)]
    # Rerunning resumes the tuning studies: the budget is already spent, nothing is tuned again.
    assert main(argv) == 0
    assert len(optuna.load_study(study_name="hand.cells.rnn", storage=url).trials) == 2


@pytest.mark.parametrize("argv, message", [
    (["report", "--study", "nope"], "no study named 'nope'"),
    (["report", "--study", "hand", "--baseline", "/no/such.json"], "does not exist"),
    (["report", "--study", "hand", "--subset", "0"], "--subset must be"),
    (["report", "--study", "hand", "--seeds", "0"], "--seeds must be >= 1 and <= 100"),
    (["report", "--study", "hand", "--seeds", "1000000000"], "--seeds must be >= 1 and <= 100"),
    (["train", "--trial", "3"], "--trial needs --study"),
    (["train", "--study", "hand", "--trial", "99"], "has no trial 99"),
    (["train", "--study", "hand", "--trial", "11"], "recorded no config"),
    (["compare-cells", "--cells", "lstm,tcn"], "--cells must list"),
    (["compare-cells", "--config", "best", "--trials", "0"], "--config best needs --study"),
    (["compare-cells", "--steps", "28,30"], "--steps must list divisors of 784"),
    (["compare-cells", "--trials", "-1"], "--trials must be >= 0 and <= "),
])
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _sqlite_study(tmp_path)
    assert main([*argv, "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "reports").exists()


def test_runs_cached_before_gates_existed_are_retrained_once_for_them(tiny_mnist: Path, tmp_path: Path) -> None:
    study = make_study(shrink=True)
    spec = FinalRunSpec(seeds=1, data_root=str(tiny_mnist))
    write_report(study, tmp_path / "r", spec)
    for key, run in study.user_attrs.items():  # as a report of an older version left them
        if key.startswith(retrain.CACHE_PREFIX):
            study.set_user_attr(key, {k: v for k, v in run.items() if k != "gates"})
    again = write_report(study, tmp_path / "r", spec)
    assert again.retrained == ("V2 seed 0",)  # V1 needs no gates; V2 has none left
    assert "## 6. What the gates do (measured on V2)" in again.markdown.read_text()
    assert write_report(study, tmp_path / "r", spec).retrained == ()


def test_the_reproduce_command_retrains_the_reported_run_exactly(
    tiny_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = make_study(shrink=True)
    paths = write_report(study, tmp_path / "r", FinalRunSpec(seeds=2, data_root=str(tiny_mnist)))
    text = paths.markdown.read_text()
    command = next(line for line in text.splitlines() if line.startswith("lstm-search train --cell")
                   and "--optimizer adamw" in line)  # V2's
    # The second seed: "the same command with --seed changed", as the report says.
    argv = [*shlex.split(command.replace(" --seed 0 ", " --seed 1 "))[1:], "--data-root", str(tiny_mnist)]
    capsys.readouterr()
    assert main([*argv, "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    reported = next(r for r in study.user_attrs.values()
                    if isinstance(r, dict) and r.get("config", {}).get("seed") == 1
                    and r["config"]["optimizer"] == "adamw")
    assert f"test images: {100 * reported['test_acc']:.2f} %" in printed
    # Its loss curve too: the same images in the same order, not just a similar score.
    assert f"train loss {reported['epochs'][-1]['train_loss']:.4f}" in printed
