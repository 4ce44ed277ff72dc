"""Issue 28 part 2: classes of input that got past the one-line promise (one line, exit 2,
nothing written, no traceback), each tried on every command that takes it."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import optuna
import pytest

import search.commands._existing as existing
from model.config import MAX_SEED, TrainConfig
from search.study import open_storage
from tests.search.conftest import expect_one_line_error, launch_args, snapshot

SEED_TOO_BIG = str(MAX_SEED + 1)


def reportable_study(url: str, seed: int = 0) -> None:
    """A study as launch leaves it, with a complete trial report can retrain (nothing trains
    in these tests: every check must refuse before)."""
    study = optuna.create_study(study_name="kept", storage=open_storage(url, heartbeat=False), direction="maximize")
    cfg = TrainConfig(seed=seed, hidden_size=8, epochs=1).to_dict()
    study.set_user_attr("baseline_config", cfg)
    study.set_user_attr("seed", seed)
    study.set_user_attr("lstm_search", 1)
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}, user_attrs={"config": cfg}))


def every_command(study: str, url: str, root: Path, space: Path) -> dict[str, list[str]]:
    return {
        "launch": launch_args(study, 2, url, space, root, "--dry-run"),
        "train": ["train", "--study", study, "--trial", "0", "--storage", url, "--data-root", str(root)],
        "report": ["report", "--study", study, "--storage", url, "--data-root", str(root)],
        "export": ["export", "--study", study, "--storage", url, "--out", "-"],
        "dashboard": ["dashboard", "--study", study, "--storage", url, "--port", "0"],
        "compare-cells": ["compare-cells", "--study", study, "--storage", url, "--data-root", str(root)],
        "warm start": [*launch_args("new", 2, url, space, root, "--dry-run"), "--warm-start", study],
    }


@pytest.mark.parametrize("name", ["", "   ", "\t", " kept", "kept ", "ke\npt", "ke\x1bpt", "x" * 513])
@pytest.mark.parametrize("command", ["launch", "train", "report", "export", "dashboard", "compare-cells",
                                     "warm start"])
def test_blank_or_unprintable_study_names_are_refused_everywhere(
    command: str, name: str, kept_study: str, tiny_space: Path, fake_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = snapshot(kept_study)
    argv = every_command(name, kept_study, fake_root, tiny_space)[command]
    line = expect_one_line_error(capsys, argv, "--warm-start" if command == "warm start" else "--study")
    assert any(word in line for word in ("blank", "white space", "control character", "at most 512"))
    assert snapshot(kept_study) == before


@pytest.mark.parametrize("argv", [
    ["launch", "--study", "s", "--n-trials", "2", "--seed", SEED_TOO_BIG, "--dry-run"],
    ["launch", "--study", "s", "--n-trials", "2", "--seed", "3000000000", "--dry-run"],
    ["train", "--seed", SEED_TOO_BIG, "--dry-run"],
    ["train", "--seed", "3000000000", "--dry-run"],
    ["compare-cells", "--seed", SEED_TOO_BIG, "--trials", "0"],
    ["report", "--study", "kept", "--importance-seed", SEED_TOO_BIG],
])
def test_every_command_takes_the_same_seeds(argv: list[str], tmp_path: Path, fake_root: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    line = expect_one_line_error(capsys, [*argv, "--storage", url, "--data-root", str(fake_root)], "seed")
    assert f"<= {MAX_SEED}" in line
    assert not (tmp_path / "studies.db").exists()


def test_report_refuses_seeds_past_the_bound_before_training(tmp_path: Path, fake_root: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    reportable_study(url, seed=MAX_SEED - 1)
    before = snapshot(url)
    out = tmp_path / "report"
    argv = ["report", "--study", "kept", "--storage", url, "--data-root", str(fake_root), "--out", str(out),
            "--seeds", "3", "--no-publish"]
    expect_one_line_error(capsys, argv, "--seeds 3 is too many for this study")
    assert snapshot(url) == before and not out.exists()


@pytest.mark.parametrize(("argv", "needle"), [
    (["train", "--subset", "0", "--dry-run"], "--subset must be >= 1"),
    (["train", "--val-size", "-1", "--dry-run"], "--val-size must be >= 0"),
    (["train", "--val-size", "60000", "--dry-run"], "--val-size must be >= 0 and <= 59999"),
    (["train", "--threads", "0", "--dry-run"], "--threads must be >= 1"),
    (["train", "--epochs", "100000000", "--dry-run"], "epochs must be <= 100000"),
    (["report", "--study", "kept", "--subset", "0"], "--subset must be >= 1"),
    (["report", "--study", "kept", "--threads", "99999"], "--threads must be >= 1 and <= 4096"),
    (["compare-cells", "--trials", "0", "--subset", "0"], "--subset must be >= 1"),
    (["compare-cells", "--trials", "0", "--val-size", "0"], "--val-size must be >= 1"),
    (["compare-cells", "--trials", "0", "--threads", "0"], "--threads must be >= 1"),
])
def test_shared_data_flags_have_the_same_bounds_and_words(argv: list[str], needle: str, tmp_path: Path,
                                                          fake_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    expect_one_line_error(capsys, [*argv, "--storage", url, "--data-root", str(fake_root)], needle)


def test_report_on_a_read_only_study_stops_before_training(tmp_path: Path, fake_root: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "studies.db"
    reportable_study(f"sqlite:///{db}")
    url = f"sqlite:///file:{db}?mode=ro&uri=true"  # read-only even for root
    out = tmp_path / "report"
    argv = ["report", "--study", "kept", "--storage", url, "--data-root", str(fake_root), "--out", str(out),
            "--seeds", "1", "--no-publish"]
    expect_one_line_error(capsys, argv, "readonly database")
    assert not out.exists()


def test_report_with_an_artifact_folder_it_cannot_write_stops_before_training(
    tmp_path: Path, fake_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    reportable_study(url)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = tmp_path / "report"
    argv = ["report", "--study", "kept", "--storage", url, "--data-root", str(fake_root), "--out", str(out),
            "--seeds", "1", "--artifacts", str(blocker / "artifacts")]
    expect_one_line_error(capsys, argv, "artifact")
    assert not out.exists()


@pytest.mark.parametrize("command", ["export", "report", "dashboard", "train", "launch"])
def test_a_locked_study_is_reported_as_locked_not_damaged(
    command: str, kept_study: str, tiny_space: Path, fake_root: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(existing, "LOCK_WAIT_SECONDS", 0.2)
    holder = sqlite3.connect(kept_study.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # what a launch holds while it writes
    try:
        argv = every_command("kept", kept_study, fake_root, tiny_space)[command]
        line = expect_one_line_error(capsys, argv, "locked")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "restore it from a copy" not in line and "not a readable" not in line


def test_unreadable_mnist_is_a_permission_problem_not_corrupt_data() -> None:
    """Read in a forked child that gives up root (for whom no permission bit denies
    anything) and runs as nobody; the files lie outside pytest's root-only tmp folder."""
    import torchvision.datasets.mnist  # noqa: F401  (imported before the child drops root)

    from model.data import load_mnist
    from model.errors import DataError
    from tests.fakes import write_fake_mnist

    home = Path(tempfile.mkdtemp(prefix="lstm-search-perm-"))
    try:
        home.chmod(0o755)
        root = write_fake_mnist(home / "data", n_train=20, n_test=10)
        for f in (root / "MNIST" / "raw").iterdir():
            f.chmod(0)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what the user would read, then leave at once
            message = "no error"
            try:
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                load_mnist(root, train=True, download=False)
            except DataError as exc:
                message = str(exc)
            except BaseException as exc:  # noqa: BLE001 (reported to the parent, which fails)
                message = f"Traceback: {type(exc).__name__}: {exc}"
            finally:
                os.write(write_end, message.encode())
                os._exit(0)
        os.close(write_end)
        os.waitpid(pid, 0)
        with os.fdopen(read_end) as pipe:
            message = pipe.read()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert "permission denied" in message.lower(), message
    assert "corrupt" not in message and "delete" not in message and "Traceback" not in message
