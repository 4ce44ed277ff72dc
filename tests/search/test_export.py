"""`lstm-search export --format csv|json`: the trials table, readable back with pandas/json."""

from __future__ import annotations

import io
import json
from pathlib import Path

import optuna
import pandas as pd
import pytest

from search.cli import main
from search.commands._paths import safe_name
from tests.search.dash_study import BEST_NUMBER, STUDY, TRIALS, SmallStudy, make_small_study


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> SmallStudy:
    return make_small_study(tmp_path_factory.mktemp("export"), publish=False)


def test_csv_default_path_and_contents(small: SmallStudy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--study", STUDY, "--storage", small.url, "--format", "csv"]) == 0
    out = tmp_path / "reports" / STUDY / "trials.csv"
    assert f"wrote {len(TRIALS)} trials" in capsys.readouterr().out
    df = pd.read_csv(out)
    assert list(df["number"]) == list(range(len(TRIALS)))
    assert list(df["state"]) == [state.upper() for _, _, state in TRIALS]
    assert list(df["params_hidden_size"]) == [p["hidden_size"] for p, _, _ in TRIALS]
    assert list(df["params_optimizer"]) == [p["optimizer"] for p, _, _ in TRIALS]
    # Per-epoch validation accuracy from the intermediate values; blank past a pruned trial's end.
    assert df.loc[BEST_NUMBER, ["val_acc_epoch_1", "val_acc_epoch_2", "val_acc_epoch_3"]].tolist() == \
        TRIALS[BEST_NUMBER][1]
    assert pd.isna(df.loc[2, "val_acc_epoch_2"])
    assert df.loc[BEST_NUMBER, "value"] == 0.9125
    # Nested attrs are JSON text in CSV cells, so they load back exactly.
    assert json.loads(df.loc[0, "user_attrs_config"])["hidden_size"] == TRIALS[0][0]["hidden_size"]
    assert json.loads(df.loc[0, "user_attrs_train_loss"]) == pytest.approx([1.5, 1.1, 0.7])
    assert (df["duration_seconds"] >= 0).all()
    assert pd.to_datetime(df["datetime_start"]).notna().all()


def test_json_to_file_and_stdout_agree(small: SmallStudy, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "out" / "t.json"
    assert main(["export", "--study", STUDY, "--storage", small.url, "--format", "json", "--out", str(path)]) == 0
    capsys.readouterr()
    records = json.loads(path.read_text())
    assert main(["export", "--study", STUDY, "--storage", small.url, "--format", "json", "--out", "-"]) == 0
    assert json.loads(capsys.readouterr().out) == records
    best = records[BEST_NUMBER]
    assert best["params_lr"] == 0.003 and best["state"] == "COMPLETE"
    assert best["user_attrs_config"]["optimizer"] == "rmsprop"  # nested, not a string
    assert best["user_attrs_checkpoint_artifact"] == small.checkpoint_id
    # Optuna keeps a pruned trial's last reported accuracy as its value.
    assert records[2]["state"] == "PRUNED" and records[2]["value"] == TRIALS[2][1][-1]
    assert records[2]["val_acc_epoch_3"] is None
    # The same table pandas reads from the JSON as from the CSV, row for row.
    assert len(pd.read_json(io.StringIO(path.read_text()))) == len(TRIALS)


def test_empty_study_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 'e.db'}"
    optuna.create_study(study_name="empty", storage=url)
    out = tmp_path / "e.csv"
    assert main(["export", "--study", "empty", "--storage", url, "--out", str(out)]) == 0
    assert pd.read_csv(out).columns.tolist() == ["number", "state", "value"]
    capsys.readouterr()
    assert main(["export", "--study", "nope", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "no study named 'nope'" in err and err.count("\n") == 1
    assert main(["export", "--study", "empty", "--storage", url, "--out", str(tmp_path / "e.csv" / "x")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_study_name_cannot_escape_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="../../evil", storage=url)
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--study", "../../evil", "--storage", url, "--format", "json"]) == 0
    assert [p.relative_to(tmp_path).as_posix() for p in (tmp_path / "reports").rglob("*.json")] == \
        [f"reports/{safe_name('../../evil')}/trials.json"]
    assert safe_name("../../evil").startswith("_.._evil-")  # cleaned, plus a hash of the real name


def test_int_param_stays_int_when_some_trials_lack_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution

    url = f"sqlite:///{tmp_path / 'i.db'}"
    study = optuna.create_study(study_name="ints", storage=url, direction="maximize")
    # Like the V1 baseline, which fixes epochs and so has no epochs param.
    study.add_trial(optuna.trial.create_trial(params={"grad_clip": 1.0}, value=0.5,
                                              distributions={"grad_clip": FloatDistribution(0, 1)}))
    study.add_trial(optuna.trial.create_trial(
        params={"epochs": 6, "grad_clip": 1.0}, value=0.6,
        distributions={"epochs": IntDistribution(2, 6), "grad_clip": FloatDistribution(0, 1)}))
    assert main(["export", "--study", "ints", "--storage", url, "--format", "csv", "--out", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split(",")
    row = dict(zip(header, lines[2].split(",")))
    assert row["params_epochs"] == "6" and row["params_grad_clip"] == "1.0"
    assert main(["export", "--study", "ints", "--storage", url, "--format", "json", "--out", "-"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["params_epochs"] for r in records] == [None, 6]
    assert isinstance(records[1]["params_epochs"], int) and isinstance(records[1]["params_grad_clip"], float)


def test_progress_studies_name_steps_as_percentages(tmp_path: Path) -> None:
    """A study launched with --prune-by progress reports at % of each trial's epochs, so
    its columns say pct, not epoch (step 50 is half-way, not epoch 50)."""
    from search.commands.export import trials_table

    url = f"sqlite:///{tmp_path / 'p.db'}"
    for prune_by, column in (("progress", "val_acc_pct_50"), ("epoch", "val_acc_epoch_50")):
        study = optuna.create_study(study_name=prune_by, storage=url, direction="maximize")
        study.set_user_attr("prune_by", prune_by)
        trial = study.ask()
        trial.report(0.9, 50)
        trial.report(0.95, 100)
        study.tell(trial, 0.95)
        table = trials_table(study)
        assert table.loc[0, column] == 0.9
        assert not [c for c in table.columns if c.startswith("val_acc_") and c != column
                    and not c.endswith("_100")]
