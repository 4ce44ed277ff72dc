"""Issue 28 part 2: classes of input that got past the one-line promise (one line, exit 2,
nothing written, no traceback), each tried on every command that takes it."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest

import search.commands._existing as existing
from model.config import MAX_SEED, TrainConfig
from search.cli import main
from search.commands._paths import check_output_file, safe_name
from search.redact import redact_url
from search.storage import open_storage
from tests.search.conftest import (
    expect_one_line_error,
    launch_args,
    snapshot,
    start_cli,
)

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


@pytest.mark.parametrize(("text", "needle"), [
    ("[lr]\nchoices = [1e-3, 0.001]\n", "duplicates"),
    ("[rotate]\nchoices = [5, 5.0]\n", "duplicates"),  # one value once converted to float
    ('[optimizer]\nchoices = ["adam", "adam"]\n', "duplicates"),
    ("[lr]\nchoices = [1e-3]\n", "single choice"),
    ("[lr]\nlow = 1e-3\nhigh = 1e-3\n", "one value"),
    ("[hidden_size]\nlow = 16\nhigh = 16\n", "one value"),
    ("[lr]\nlow = nan\nhigh = 1e-2\n", "finite"),
    ("[lr]\nlow = 1e-3\nhigh = inf\n", "finite"),
    ("[hidden_size]\nlow = 8.5\nhigh = 16\n", "must be an integer"),
    ("[hidden_size]\nlow = 8\nhigh = 16.0\n", "must be an integer"),
    ('[optimizer]\nchoices = ["adam", 1]\n', "must be a string"),
    ('[optimizer]\nchoices = ["adam", ""]\n', "optimizer must be one of"),
    ('cell = ""\n[lr]\nlow = 1e-3\nhigh = 1e-2\n', "cell must be one of"),
    ("[steps]\nlow = 14\nhigh = 112\n", "invalid values"),  # 15 does not divide 784
    ("[dropout]\nlow = 0.0\nhigh = 0.5\nstep = 0.2\n", "does not divide"),
    ("[hidden_size]\nlow = 8\nhigh = 17\nstep = 2\n", "does not divide"),
    ("[hidden_size]\nlow = 8\nhigh = 16\nstep = 100\n", "does not divide"),
    ("seed = 3\n[lr]\nlow = 1e-3\nhigh = 1e-2\n", "launch --seed"),
    ('[precision]\nchoices = ["fp32", "bf16"]\n', "launch --precision"),
])
def test_space_files_that_cannot_be_meant_are_refused(text: str, needle: str, tmp_path: Path, kept_study: str,
                                                     fake_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.toml"
    space.write_text(text)
    before = snapshot(kept_study)
    expect_one_line_error(capsys, launch_args("kept", 5, kept_study, space, fake_root), needle)
    assert snapshot(kept_study) == before


def test_valid_discrete_choices_and_whole_steps_still_load(tmp_path: Path) -> None:
    from search.space import load_space, parse_space

    parse_space("[steps]\nchoices = [14, 28, 784]\n[dropout]\nlow = 0.0\nhigh = 0.4\nstep = 0.1\n")
    parse_space("[hidden_size]\nlow = 8\nhigh = 16\nstep = 2\n")
    load_space("default"), load_space("quick")


def test_export_overwrites_an_existing_file_but_never_the_study_database(
    tmp_path: Path, kept_study: str, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.csv"
    old.write_text("stale\n")
    assert main(["export", "--study", "kept", "--storage", kept_study, "--out", str(old)]) == 0
    assert old.read_text().startswith("number,state,value")
    db = tmp_path / "studies.db"
    (tmp_path / "studies.db-journal").write_bytes(b"")
    link = tmp_path / "link.csv"
    link.symlink_to(db)
    data = db.read_bytes()
    capsys.readouterr()
    for target in (db, tmp_path / "." / "studies.db", link, tmp_path / "studies.db-journal",
                   tmp_path / "studies.db-wal"):
        expect_one_line_error(capsys, ["export", "--study", "kept", "--storage", kept_study, "--out", str(target)],
                              "study database's own file")
    assert db.read_bytes() == data


def test_train_checkpoint_onto_an_existing_file_or_the_database(tmp_path: Path, kept_study: str) -> None:
    existing_file = tmp_path / "model.pt"
    existing_file.write_bytes(b"old")
    assert check_output_file(existing_file, "--checkpoint", kept_study) == existing_file  # overwritten later
    with pytest.raises(Exception, match="study database's own file"):
        check_output_file(tmp_path / "studies.db", "--checkpoint", kept_study)


def test_default_output_folders_of_two_names_never_coincide() -> None:
    names = ["exp 1", "exp_1", "exp/1", "exp?1", "exp_1 ", ".exp_1", "exp_1"]
    assert len({safe_name(n) for n in set(names)}) == len(set(names))
    assert safe_name("mnist-v2.1") == "mnist-v2.1"  # a clean name keeps its folder
    assert "/" not in safe_name("../../etc") and not safe_name("../x").startswith(".")


@pytest.mark.parametrize("url", [
    "postgresql://lab:hunter2@127.0.0.1:1/studies",
    "postgresql+psycopg://lab:hunter2@127.0.0.1:1/studies",
    "postgresql//lab:hunter2@127.0.0.1:1/studies",  # mistyped: not even a URL
    "mysql://lab:hunter2@127.0.0.1:1/studies",
])
@pytest.mark.parametrize("command", ["launch", "export", "dashboard", "report", "train", "compare-cells"])
def test_no_command_prints_a_storage_password(command: str, url: str, tiny_space: Path, fake_root: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    argv = {**every_command("kept", url, fake_root, tiny_space),
            "launch": launch_args("kept", 2, url, tiny_space, fake_root)}[command]
    try:
        main(argv)
    except SystemExit:
        pass
    captured = capsys.readouterr()
    assert "hunter2" not in captured.out + captured.err


def test_redact_url() -> None:
    assert redact_url("postgresql://lab:s3cret@db.example/optuna") == "postgresql://lab:***@db.example/optuna"
    assert redact_url("postgresql//lab:s3cret@db/optuna") == "postgresql//lab:***@db/optuna"
    assert redact_url("sqlite:///studies/a:b@c.db") == "sqlite:///studies/a:b@c.db"  # a path, no password


def _dashboard(args: list[str], **popen: object) -> tuple[subprocess.Popen[str], list[str]]:
    proc = start_cli(["dashboard", *args, "--port", "0"], **popen)
    lines: list[str] = []
    while True:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "optuna-dashboard at" in line:
            break
    return proc, lines


def test_dashboard_on_all_interfaces_says_it_has_no_login(kept_study: str) -> None:
    proc, lines = _dashboard(["--storage", kept_study, "--host", "0.0.0.0"])
    proc.kill()
    proc.wait()
    assert any("no login" in line for line in lines), lines
    proc, lines = _dashboard(["--storage", kept_study])  # the default, 127.0.0.1: no warning
    proc.kill()
    proc.wait()
    assert lines and not any("no login" in line for line in lines), lines


def test_sigint_stops_a_command_started_with_sigint_ignored(kept_study: str) -> None:
    """A background job of a script (nohup lstm-search ... &) starts with SIGINT ignored;
    kill -INT must still be the graceful stop the README documents."""
    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc, lines = _dashboard(["--storage", kept_study], preexec_fn=ignore_sigint)
    assert any("optuna-dashboard at" in line for line in lines), lines
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "dashboard stopped" in out, out
