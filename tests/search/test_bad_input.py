"""Bad input: one line naming the problem, exit code 2, no traceback, the study untouched."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import pytest

from tests.search.conftest import expect_one_line_error, launch_args, snapshot

SPACES = {
    "not TOML": ("[hidden_size\nlow = 8", "not valid TOML"),
    "unknown parameter": ("[hiden_size]\nlow = 8\nhigh = 16\n", "unknown parameter 'hiden_size'"),
    "inverted lr range": ("[lr]\nlow = 1e-2\nhigh = 1e-3\n", "inverted"),
    "zero lr": ("[lr]\nlow = 0.0\nhigh = 1e-3\n", "lr must be > 0"),
    "negative lr": ("[lr]\nlow = -1e-3\nhigh = 1e-3\n", "lr must be > 0"),
    "batch size 0": ("[batch_size]\nchoices = [0, 32]\n", "batch_size must be >= 1"),
    "unknown optimizer": ('[optimizer]\nchoices = ["adam", "lion"]\n', "optimizer must be one of"),
    "hidden size beyond RAM": ("[hidden_size]\nlow = 8\nhigh = 400000\n", "hidden_size 400000"),
}


@pytest.mark.parametrize("case", SPACES)
def test_bad_space_file(case: str, tmp_path: Path, kept_study: str, fake_root: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    text, needle = SPACES[case]
    space = tmp_path / "space.toml"
    space.write_text(text)
    before = snapshot(kept_study)
    expect_one_line_error(capsys, launch_args("kept", 5, kept_study, space, fake_root), needle)
    assert snapshot(kept_study) == before


@pytest.mark.parametrize(("flag", "value", "needle"), [
    ("--sampler", "annealing", "invalid choice: 'annealing'"),
    ("--pruner", "patient", "invalid choice: 'patient'"),
    ("--workers", "0", "--workers must be >= 1"),
    ("--n-trials", "0", "--n-trials must be >= 1"),
])
def test_bad_launch_flag(flag: str, value: str, needle: str, kept_study: str, tiny_space: Path,
                         fake_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(kept_study)
    args = launch_args("kept", 5, kept_study, tiny_space, fake_root)
    expect_one_line_error(capsys, [*args, flag, value], needle)  # argparse: the last flag wins
    assert snapshot(kept_study) == before


@pytest.mark.parametrize(("url", "needle"), [
    ("not a url", "malformed storage URL"),
    ("sqlite:////no/such/dir/studies.db", "cannot open storage"),
    ("postgresql://user:secret@127.0.0.1:1/studies", "cannot open storage"),
])
def test_bad_or_unreachable_storage(url: str, needle: str, tiny_space: Path, fake_root: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    line = expect_one_line_error(capsys, launch_args("s", 5, url, tiny_space, fake_root), needle)
    assert "secret" not in line  # passwords are not echoed


def test_unknown_study_name(kept_study: str, tiny_space: Path, fake_root: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(kept_study)
    args = launch_args("kpet", 5, kept_study, tiny_space, fake_root, "--resume")
    expect_one_line_error(capsys, args, "no study named 'kpet' in this storage (studies: kept)")
    assert snapshot(kept_study) == before


def test_data_root_missing_while_offline(tmp_path: Path, kept_study: str, tiny_space: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there: offline
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    # urllib caches the opener (and so the proxy) it builds on first use; keep ours private.
    monkeypatch.setattr(urllib.request, "_opener", None)
    before = snapshot(kept_study)
    args = launch_args("kept", 5, kept_study, tiny_space, tmp_path / "nowhere")
    expect_one_line_error(capsys, args, "MNIST training files are not under")
    assert snapshot(kept_study) == before


@pytest.mark.parametrize("damage", ["truncated", "corrupt header"])
def test_corrupt_mnist_files(damage: str, tmp_path: Path, kept_study: str, tiny_space: Path,
                             fake_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "damaged"
    shutil.copytree(fake_root, root)
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    blob = images.read_bytes()
    images.write_bytes(blob[: len(blob) // 2] if damage == "truncated" else b"\x00\x00\x09\x99" + blob[4:])
    before = snapshot(kept_study)
    args = launch_args("kept", 5, kept_study, tiny_space, root)
    expect_one_line_error(capsys, args, "are corrupt or truncated")
    assert snapshot(kept_study) == before


@pytest.mark.parametrize(("flags", "needle"), [
    (["--batch-size", "0"], "batch_size must be >= 1"),
    (["--lr", "0"], "lr must be > 0"),
    (["--lr", "-0.1"], "lr must be > 0"),
    (["--optimizer", "lion"], "invalid choice: 'lion'"),
    (["--hidden-size", "300000"], "hidden_size 300000"),
])
def test_bad_train_config(flags: list[str], needle: str, fake_root: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--data-root", str(fake_root), "--val-size", "50", "--epochs", "1", *flags]
    expect_one_line_error(capsys, argv, needle)
