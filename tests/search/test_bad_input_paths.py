"""Bad input outside `launch`: wrong paths, damaged files, extreme numbers, a closed pipe.

Each case: one line on stderr, exit 2 (141 for the pipe), no traceback, nothing written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

import search.report
from model.config import TrainConfig
from search.commands._paths import safe_name
from tests.search.conftest import REPO, expect_one_line_error, launch_args, snapshot

READERS = {
    "report": ["report", "--study", "kept", "--no-publish"],
    "compare-cells": ["compare-cells", "--study", "kept", "--cells", "rnn"],
    "export": ["export", "--study", "kept", "--out", "-"],
    "dashboard": ["dashboard", "--study", "kept", "--port", "0"],
}


def _no_retraining(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("report went on to retrain V1 and V2")

    monkeypatch.setattr(search.report, "write_report", refuse)


@pytest.mark.parametrize("command", READERS)
def test_readers_refuse_a_mistyped_sqlite_path(command: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    typo = tmp_path / "studeis.db"
    expect_one_line_error(capsys, [*READERS[command], "--storage", f"sqlite:///{typo}"],
                          f"no SQLite study database at {typo}")
    assert not typo.exists() and list(tmp_path.iterdir()) == []


def _damaged(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / "studies.db"
    if kind == "text file":
        path.write_text("these are my notes, not a database\n" * 200)
        return path
    study = optuna.create_study(study_name="kept", storage=f"sqlite:///{path}")
    dists = {f"x{i}": optuna.distributions.FloatDistribution(0, 1) for i in range(10)}
    for n in range(150):  # enough trials for a few dozen pages
        params = {name: (n * 7 + i) % 100 / 100 for i, name in enumerate(dists)}
        study.add_trial(optuna.trial.create_trial(value=n / 150, params=params, distributions=dists))
    blob = path.read_bytes()
    half = len(blob) // 2 // 4096 * 4096
    if kind == "truncated":
        path.write_bytes(blob[:half])
    else:  # one page overwritten in the middle: the header still reads fine
        path.write_bytes(blob[:half] + b"\xff" * 4096 + blob[half + 4096:])
    return path


@pytest.mark.parametrize("kind", ["text file", "truncated", "damaged page"])
@pytest.mark.parametrize("command", READERS)
def test_readers_refuse_a_damaged_database(command: str, kind: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = _damaged(kind, tmp_path)
    before = path.read_bytes()
    expect_one_line_error(capsys, [*READERS[command], "--storage", f"sqlite:///{path}"],
                          "is not a readable SQLite study database")
    assert path.read_bytes() == before


# --- output paths are checked before any work -------------------------------------------

def _checkpoint_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    return {
        "a folder": (tmp_path / "a_folder", "it is a folder"),
        "under a file": (tmp_path / "a_file" / "model.pt", "is a file, so nothing can be created under it"),
        "name too long": (tmp_path / ("m" * 300 + ".pt"), "is longer than"),
    }


@pytest.mark.parametrize("case", ["a folder", "under a file", "name too long"])
def test_train_checks_the_checkpoint_path_first(case: str, tmp_path: Path, fake_root: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path, needle = _checkpoint_cases(tmp_path)[case]
    before = sorted(tmp_path.rglob("*"))
    expect_one_line_error(capsys, ["train", "--data-root", str(fake_root), "--val-size", "50", "--dry-run",
                                   "--checkpoint", str(path)], needle)
    assert sorted(tmp_path.rglob("*")) == before  # no PATH.tmp, no folder made


def test_train_checks_that_the_checkpoint_folder_is_writable(tmp_path: Path, fake_root: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    # The tests run as root, whom permission bits do not stop; so the OS's answer for this
    # one folder is replaced by "no" to exercise the check a normal user meets.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    out = capsys.readouterr()
    expect_one_line_error(capsys, ["train", "--data-root", str(fake_root), "--val-size", "50", "--dry-run",
                                   "--checkpoint", str(locked / "m.pt")], "permission denied")
    assert list(locked.iterdir()) == [] and out.out == ""


def test_report_checks_out_before_retraining(kept_study: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _no_retraining(monkeypatch)
    (tmp_path / "taken").write_text("x")
    expect_one_line_error(capsys, ["report", "--study", "kept", "--storage", kept_study, "--out",
                                   str(tmp_path / "taken")], "it is a file, not a folder")
    long_name = "s" * 300
    optuna.create_study(study_name=long_name, storage=kept_study)
    monkeypatch.chdir(tmp_path)
    expect_one_line_error(capsys, ["report", "--study", long_name, "--storage", kept_study], "is longer than")
    assert not (tmp_path / "reports").exists()


def test_report_folder_name_is_cleaned(kept_study: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from search.cli import main

    study = optuna.create_study(study_name="../../x", storage=kept_study, direction="maximize")
    cfg = TrainConfig(hidden_size=8, epochs=1).to_dict()  # report checks V2's seeds before training
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}, user_attrs={"config": cfg}))
    written: list[Path] = []

    def record(study: optuna.Study, out: Path, **kwargs: object) -> SimpleNamespace:
        written.append(out)
        return SimpleNamespace(markdown=out / "report.md", figures={}, trials_csv=out / "trials.csv")

    monkeypatch.setattr(search.report, "write_report", record)
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--study", "../../x", "--storage", kept_study, "--no-publish"]) == 0
    assert written == [Path("reports") / safe_name("../../x")]
    # Cleaned, plus a short hash of the real name so that two names never share a folder.
    assert safe_name("../../x").startswith("_.._x-") and safe_name("...").startswith("study-")
    assert safe_name("a b/c").startswith("a_b_c-") and safe_name("a_b_c") == "a_b_c"


# --- data and space files -------------------------------------------------------------------

@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setattr(urllib.request, "_opener", None)


def test_train_with_only_the_training_files_says_the_test_files_are_missing(
    tmp_path: Path, fake_root: Path, offline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    shutil.copytree(fake_root, root)
    for f in (root / "MNIST" / "raw").glob("t10k-*"):
        f.unlink()
    line = expect_one_line_error(capsys, ["train", "--data-root", str(root), "--val-size", "50", "--dry-run"],
                                 "MNIST test files are not under")
    assert "t10k-images-idx3-ubyte" in line and "corrupt" not in line


def test_space_file_that_is_not_text(tmp_path: Path, kept_study: str, fake_root: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.toml"
    space.write_bytes(b"\xff\xfe[lr]\x00\x81")
    before = snapshot(kept_study)
    expect_one_line_error(capsys, launch_args("kept", 5, kept_study, space, fake_root), "is not UTF-8 text")
    assert snapshot(kept_study) == before


# --- extreme numbers --------------------------------------------------------------------

@pytest.mark.parametrize(("flags", "needle"), [
    (["--lr", "1e308"], "lr must be at most 3.4e+38"),
    (["--weight-decay", "1e300"], "weight_decay must be at most"),
    (["--grad-clip", "inf"], "grad_clip must be finite"),
    (["--forget-bias", "nan"], "forget_bias must be finite"),
    (["--seed", "99999999999999999999999"], "seed must be >= 0 and <= 2147483647"),
    (["--seed", "-1"], "seed must be >= 0"),
    (["--hidden-size", "99999999999999999999999"], "needs about"),
    (["--val-size", "-5"], "--val-size must be >= 0"),
    (["--subset", "0"], "--subset must be >= 1"),
    # Trains up to 5 steps, then stops with one line.
    (["--lr", "1e38", "--optimizer", "sgd", "--momentum", "0", "--hidden-size", "8"], "this configuration diverges"),
])
def test_train_extreme_values(flags: list[str], needle: str, fake_root: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--data-root", str(fake_root), "--val-size", "50", "--dry-run", "--log-every", "1000", *flags]
    expect_one_line_error(capsys, argv, needle)


@pytest.mark.parametrize(("argv", "needle"), [
    (["compare-cells", "--cells", "rnn", "--hidden-size", "99999999999999999999999"], "needs about"),
    (["compare-cells", "--cells", "rnn", "--epochs", "-1"], "epochs must be >= 1"),
    (["compare-cells", "--cells", "rnn", "--subset", "-3"], "--subset must be >= 1"),
    (["report", "--study", "kept", "--importance-seed", "-1"], "--importance-seed must be >= 0"),
    (["report", "--study", "kept", "--importance-seed", "99999999999999999999999"], "--importance-seed"),
    (["report", "--study", "kept", "--subset", "1e9"], "invalid int value"),
    (["dashboard", "--port", "70000"], "--port must be in 0..65535"),
    (["dashboard", "--port", "-1"], "--port must be in 0..65535"),
])
def test_other_commands_extreme_values(argv: list[str], needle: str, kept_study: str,
                                       fake_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = [] if argv[0] == "compare-cells" else ["--storage", kept_study]
    data = ["--data-root", str(fake_root)] if argv[0] != "dashboard" else []
    before = snapshot(kept_study)
    expect_one_line_error(capsys, [*argv, *storage, *data], needle)
    assert snapshot(kept_study) == before


# --- a closed output pipe ---------------------------------------------------------------

def test_export_to_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(study_name="big", storage=url)
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for n in range(600):  # ~100 KB of JSON: more than a pipe's buffer
        study.add_trial(optuna.trial.create_trial(value=n, params={"x": n / 600}, distributions=dist,
                                                  user_attrs={"note": "x" * 100}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "export", "--study", "big", "--storage", url,
                             "--format", "json", "--out", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    assert proc.stdout.readline().strip() == b"["  # `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(60)
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 141, err


@pytest.mark.parametrize(("content", "needle"), [
    (b"\xff\xfe{", "is not readable JSON"),
    (b"[1, 2]", "must hold a JSON object"),
    (b'{"hidden_size": -4}', "hidden_size must be >= 1"),
])
def test_compare_cells_config_file_errors_name_the_flag(content: bytes, needle: str, tmp_path: Path,
                                                         fake_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cfg.json"
    path.write_bytes(content)
    line = expect_one_line_error(capsys, ["compare-cells", "--data-root", str(fake_root), "--cells", "rnn",
                                          "--config", str(path)], needle)
    assert "--config" in line and "--baseline" not in line
