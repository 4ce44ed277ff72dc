"""Issue 26: the C++ kernels are built once, announced, before any trial or final run, so
no trial's recorded seconds include the compiler.

The real build takes about a minute of CPU (CI builds it before the tests), so the build
step itself is replaced by a slow stand-in that loads the already-built library: what is
checked is when and how often the commands call it, and what a trial's timing covers.
"""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest

from model import lstm_ext
from search.cli import main
from tests.search.conftest import launch_args

BUILD_SECONDS = 0.5


@pytest.fixture
def counted_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[float, float]]:
    """A fresh process state and an empty kernel cache; each build is recorded as (start, end)."""
    real = lstm_ext.load()  # the library CI (or an earlier test) built: the stand-in returns it
    real_build = lstm_ext._build
    builds: list[tuple[float, float]] = []

    def slow_build(cpp_extension: object) -> object:
        library = lstm_ext.cache_dir() / "lstm_search_lstm.so"
        if not library.exists():  # as ninja: compile only what is not built yet
            start = time.time()
            time.sleep(BUILD_SECONDS)  # a compiler at work
            library.parent.mkdir(parents=True, exist_ok=True)
            library.touch()
            builds.append((start, time.time()))
        return real if real is not None else real_build(cpp_extension)

    monkeypatch.setenv("LSTM_SEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LSTM_SEARCH_NO_EXT", raising=False)
    monkeypatch.setattr(lstm_ext, "_state", {})
    monkeypatch.setattr(lstm_ext, "_build", slow_build)
    return builds


def test_launch_builds_once_announced_and_before_the_first_trial(
    counted_build: list[tuple[float, float]], fake_root: Path, tiny_space: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    storage = f"sqlite:///{tmp_path / 'k.db'}"
    assert main(launch_args("k", 3, storage, tiny_space, fake_root, "--workers", "1")) == 0
    out = capsys.readouterr().out
    assert len(counted_build) == 1
    assert out.count(lstm_ext.BUILD_LINE) == 1
    assert out.index(lstm_ext.BUILD_LINE) < out.index("trial 0")  # said before any trial runs
    built = counted_build[0][1]
    trials = optuna.load_study(study_name="k", storage=storage).get_trials()
    assert len(trials) == 3
    # No trial's recorded time overlaps the build: every one started after it ended.
    assert all(t.datetime_start.timestamp() >= built for t in trials)


def test_a_second_command_finds_the_cache_and_says_nothing(
    counted_build: list[tuple[float, float]], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert lstm_ext.ensure_built(print) is True
    monkeypatch.setattr(lstm_ext, "_state", {})  # a new process: same cache folder
    assert lstm_ext.is_built()
    lstm_ext.ensure_built(print)
    assert capsys.readouterr().out.count(lstm_ext.BUILD_LINE) == 1
    assert len(counted_build) == 1


def test_no_build_and_no_line_when_the_kernels_are_switched_off(
    counted_build: list[tuple[float, float]], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LSTM_SEARCH_NO_EXT", "1")
    assert lstm_ext.ensure_built(print) is False
    assert counted_build == [] and capsys.readouterr().out == ""


def test_with_workers_the_parent_builds_before_spawning_them(
    counted_build: list[tuple[float, float]], monkeypatch: pytest.MonkeyPatch, fake_root: Path,
    tiny_space: Path, tmp_path: Path,
) -> None:
    from search.commands import launch

    seen: list[bool] = []

    def record_workers(*args: object) -> int:  # stands in for spawning the workers
        seen.append(lstm_ext.is_built() and len(counted_build) == 1)
        return 0

    monkeypatch.setattr(launch, "run_workers", record_workers)
    storage = f"sqlite:///{tmp_path / 'w.db'}"
    assert main(launch_args("w", 2, storage, tiny_space, fake_root, "--workers", "2", "--threads", "1")) == 0
    assert seen == [True]  # built, once, by the parent, before any worker existed
