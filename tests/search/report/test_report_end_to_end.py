"""`lstm-search report` and `compare-cells` end to end on tiny data: every file appears,
the second report reuses the cached final runs, and bad input is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import optuna
import optuna_dashboard
import pytest

from search.artifacts import list_artifacts
from search.cli import main
from search.report import build, retrain, write_report
from search.report.cells import load_comparison
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
    paths = write_report(study, tmp_path / "r", data_root=str(tiny_mnist), device="cpu", seeds=2)
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
    again = write_report(study, tmp_path / "r", data_root=str(tiny_mnist), device="cpu", seeds=2)
    assert again.retrained == ()
    assert again.markdown.read_text().split("## 2.")[1].split("## 3.")[0] == text.split("## 2.")[1].split("## 3.")[0]


def test_retrain_flag_and_a_different_subset_train_again(tiny_mnist: Path, tmp_path: Path) -> None:
    study = make_study(shrink=True)
    kw = {"data_root": str(tiny_mnist), "seeds": 1}
    write_report(study, tmp_path / "a", subset=200, **kw)
    assert write_report(study, tmp_path / "a", subset=200, **kw).retrained == ()
    assert write_report(study, tmp_path / "a", subset=200, retrain=True, **kw).retrained == (
        "V1 seed 0", "V2 seed 0")
    assert write_report(study, tmp_path / "b", **kw).retrained == ("V1 seed 0", "V2 seed 0")
    # One more seed trains only the new seed of each.
    assert write_report(study, tmp_path / "b", data_root=str(tiny_mnist), seeds=2).retrained == (
        "V1 seed 1", "V2 seed 1")


def _sqlite_study(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'hand.db'}"
    source = make_study(shrink=True)
    optuna.copy_study(from_study_name="hand", from_storage=source._storage, to_storage=url)
    return url


def test_cli_compare_cells_then_report(tiny_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = _sqlite_study(tmp_path)
    rc = main(["compare-cells", "--study", "hand", "--storage", url, "--config", "best", "--epochs", "1",
               "--hidden-size", "6", "--data-root", str(tiny_mnist), "--device", "cpu"])
    assert rc == 0
    study = optuna.load_study(study_name="hand", storage=url)
    config, results = load_comparison(study)
    assert [r.cell for r in results] == ["lstm", "gru", "rnn"]
    # Same hidden size: the LSTM has 4 gate blocks, the GRU 3, the RNN 1 (+ a shared output layer).
    assert [r.parameters for r in results] == [4 * 6 * (28 + 6 + 1) + 70, 3 * 6 * (28 + 6 + 2) + 70,
                                               6 * (28 + 6 + 1) + 70]
    assert config["epochs"] == 1 and config["hidden_size"] == 6
    out = tmp_path / "report"
    assert main(["report", "--study", "hand", "--storage", url, "--out", str(out), "--seeds", "1",
                 "--data-root", str(tiny_mnist), "--device", "cpu"]) == 0
    text = (out / "report.md").read_text()
    assert "| GRU" in text and "Not measured" not in text
    # Published for optuna-dashboard: the figures as study artifacts and the summary as the note.
    study = optuna.load_study(study_name="hand", storage=url)
    assert study.metric_names == ["val_accuracy"]  # optuna-dashboard's label for the objective
    published = {meta["filename"] for meta in list_artifacts(study)}
    assert {"report.md", "curves.png", "confusion_v2.png"} <= published
    note = optuna_dashboard.get_note(study)
    assert "| Hyper-parameter" in note and "Study summary" in note and "V2 test accuracy" in note


@pytest.mark.parametrize("argv, message", [
    (["report", "--study", "nope"], "no study named 'nope'"),
    (["report", "--study", "hand", "--baseline", "/no/such.json"], "does not exist"),
    (["report", "--study", "hand", "--subset", "0"], "--subset must be"),
    (["report", "--study", "hand", "--seeds", "0"], "--seeds must be >= 1"),
    (["train", "--study", "hand"], "--study and --trial go together"),
    (["train", "--study", "hand", "--trial", "99"], "has no trial 99"),
    (["train", "--study", "hand", "--trial", "11"], "recorded no config"),
    (["compare-cells", "--cells", "lstm,tcn"], "--cells must list"),
    (["compare-cells", "--config", "best"], "--config best needs --study"),
])
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _sqlite_study(tmp_path)
    assert main([*argv, "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "reports").exists()
