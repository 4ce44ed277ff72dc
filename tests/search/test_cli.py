"""End to end through the CLI: a small study in a temporary SQLite file, its resume, the
standard `optuna` CLI reading it, `train`, and the error paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from search.cli import main

TINY_SPACE = """
[hidden_size]
low = 8
high = 24
[lr]
low = 3e-3
high = 3e-2
log = true
[epochs]
low = 1
high = 3
[optimizer]
choices = ["adam", "adamw"]
[schedule]
choices = ["none", "onecycle"]
"""


@pytest.fixture()
def launch_args(tmp_path: Path, fake_mnist: Path) -> list[str]:
    space = tmp_path / "space.toml"
    space.write_text(TINY_SPACE)
    return [
        "launch", "--study", "smoke", "--storage", f"sqlite:///{tmp_path / 'studies.db'}",
        "--space", str(space), "--data-root", str(fake_mnist), "--val-size", "100",
        "--subset", "200", "--no-progress", "--threads", "1", "--workers", "1", "--no-confirm",
    ]


def _study(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(study_name="smoke", storage=f"sqlite:///{tmp_path / 'studies.db'}")


def test_launch_resume_and_optuna_cli(launch_args: list[str], tmp_path: Path, capsys) -> None:
    assert main([*launch_args, "--n-trials", "3"]) == 0
    study = _study(tmp_path)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 3
    baseline = study.trials[0]
    assert baseline.user_attrs["baseline"] == "v1"
    assert baseline.user_attrs["config"]["hidden_size"] == 128  # V1 exactly, outside the tiny space
    assert baseline.user_attrs["config"]["epochs"] == 10
    for t in finished:
        assert t.user_attrs["config"]["cell"] == "lstm"
        assert len(t.user_attrs["train_loss"]) == len(t.intermediate_values) >= 1
        assert all(0 <= v <= 1 for v in t.intermediate_values.values())
    out = capsys.readouterr().out
    assert "created study 'smoke'" in out and "trial 0 [V1 baseline]" in out

    # The same command with a larger target resumes to that many finished trials in total.
    assert main([*launch_args, "--n-trials", "5"]) == 0
    study = _study(tmp_path)
    assert sum(t.state.is_finished() for t in study.trials) == 5
    params = [json.dumps(t.params, sort_keys=True) for t in study.trials[1:]]
    assert len(set(params)) == len(params), "resumed sampler redrew an earlier configuration"
    assert "resuming study 'smoke'" in capsys.readouterr().out

    # The standard Optuna CLI reads what we wrote, with readable params.
    optuna_cli = Path(sys.executable).with_name("optuna")
    proc = subprocess.run(
        [str(optuna_cli), "trials", "--storage", f"sqlite:///{tmp_path / 'studies.db'}",
         "--study-name", "smoke", "-f", "json"],
        capture_output=True, text=True, check=True,
    )
    rows = json.loads(proc.stdout)
    assert len(rows) == 5
    assert rows[0]["params"]["optimizer"] == "adam"  # V1's in-space values are its params
    assert all("hidden_size" in row["params"] for row in rows[1:])


def test_dry_run_writes_nothing(launch_args: list[str], tmp_path: Path, capsys) -> None:
    assert main([*launch_args, "--n-trials", "3", "--dry-run"]) == 0
    assert "nothing written" in capsys.readouterr().out
    assert not (tmp_path / "studies.db").exists()


def test_dry_run_checks_an_existing_study_like_the_launch(launch_args: list[str], tmp_path: Path, capsys) -> None:
    """A dry run reads the study it would resume and refuses what the launch would refuse
    (other defining settings), without writing to it."""
    db = tmp_path / "studies.db"
    assert main([*launch_args, "--n-trials", "1"]) == 0
    before = db.read_bytes()
    capsys.readouterr()
    assert main([*launch_args, "--n-trials", "3", "--dry-run"]) == 0
    assert "study: resumes (holds 1 finished trials" in capsys.readouterr().out
    assert main([*launch_args, "--n-trials", "3", "--seed", "1", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--seed 1 (the study was created with 0)" in err and err.strip().count("\n") == 0
    assert db.read_bytes() == before


def test_dry_run_resume_needs_the_database(launch_args: list[str], tmp_path: Path, capsys) -> None:
    assert main([*launch_args, "--n-trials", "3", "--dry-run", "--resume"]) == 2
    assert "no SQLite study database" in capsys.readouterr().err
    assert not (tmp_path / "studies.db").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sampler", "bogus"], "invalid choice: 'bogus'"),
        (["--pruner", "bogus"], "invalid choice: 'bogus'"),
        (["--n-trials", "0"], "--n-trials must be >= 1"),
        (["--space", "/nonexistent/space.toml"], "does not exist"),
        (["--data-root", "/nonexistent/mnist"], "MNIST training files are not under"),
        (["--storage", "notaurl"], "malformed storage URL"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(
    launch_args: list[str], tmp_path: Path, capsys, extra: list[str], message: str
) -> None:
    args = [*launch_args, "--n-trials", "2", *extra]
    with pytest.raises(SystemExit) if "invalid choice" in message else _no_raise() as _:
        code = main(args)
    if "invalid choice" not in message:
        assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.strip().count("\n") == 0, err
    assert "Traceback" not in err
    assert not (tmp_path / "studies.db").exists()


def test_train_dry_run_prints_lab_style_logs(fake_mnist: Path, tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "m.pt"
    code = main(["train", "--preset", "template", "--hidden-size", "16", "--dry-run", "--data-root",
                 str(fake_mnist), "--val-size", "100", "--log-every", "1", "--checkpoint", str(ckpt)])
    assert code == 0
    out = capsys.readouterr().out
    assert "Epoch [1/1], Step [1/4], Loss:" in out
    assert "Test Accuracy of the model on the 200 test images:" in out
    assert ckpt.exists()


def test_console_script_reports_bad_input_without_traceback(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("lstm-search")
    env = {**os.environ, "LSTM_SEARCH_DATA": str(tmp_path / "missing")}
    proc = subprocess.run([str(script), "train", "--batch-size", "0"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "lstm-search train: error: batch_size must be >= 1 (got 0)"


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
