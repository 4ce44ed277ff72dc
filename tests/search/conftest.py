"""Fixtures for the worker, crash, PostgreSQL and bad-input tests: tiny fake MNIST, tiny
search spaces, and helpers to run ``lstm-search launch`` as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest

from search.cli import main
from search.storage import open_storage
from tests.fakes import TINY_SPACE, write_fake_mnist

REPO = Path(__file__).resolve().parents[2]


# Trials of a few seconds with an epoch reported every fraction of a second, so a test
# can kill or interrupt a worker in the middle of one. Epochs of 250 images take ~30 ms
# on a fast core: with 8 epochs a sampled trial lasted 0.25 s and a test polling every
# 0.2 s for "epoch 1-3 reported" missed all three trials of its study (CI, 2026-12-01).
SLOW_SPACE = """
epochs = 60
batch_size = 16
[hidden_size]
low = 16
high = 24
[lr]
low = 1e-3
high = 1e-2
log = true
"""


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_mnist(tmp_path_factory.mktemp("mnist"), n_train=300, n_test=50)


@pytest.fixture(scope="session")
def tiny_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spaces") / "tiny.toml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture(scope="session")
def slow_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spaces") / "slow.toml"
    path.write_text(SLOW_SPACE)
    return path


def launch_args(study: str, n_trials: int, storage: str, space: Path, root: Path, *extra: str,
                confirm: bool = False) -> list[str]:
    """``launch`` arguments for a tiny study (50 validation images, no pruning; no
    confirmation phase unless ``confirm``: tests/search/test_confirm.py tests that phase, the
    others the search and would only wait for its repeats)."""
    return [
        "launch", "--study", study, "--n-trials", str(n_trials), "--storage", storage,
        "--space", str(space), "--data-root", str(root), "--val-size", "50", "--pruner", "none",
        "--no-progress", *([] if confirm else ["--no-confirm"]), *extra,
    ]


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test() -> Iterator[None]:
    """A test that fails (e.g. communicate() timing out) must not leave its launch and that
    launch's workers training on beside the tests that follow."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()  # its workers get SIGINT from the kernel (PR_SET_PDEATHSIG) and stop
            proc.wait()


def start_cli(args: list[str], **kwargs: object) -> subprocess.Popen[str]:
    """``lstm-search ARGS`` as a separate process running this checkout's code."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "search.cli", *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs,
    )
    _STARTED.append(proc)
    return proc


def wait_for(condition: Callable[[], object], timeout: float, what: str, poll: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def running_trial_with_epoch(storage: str, study: str, pid: int | None = None) -> optuna.trial.FrozenTrial | None:
    """A RUNNING trial (of process ``pid``, if given) in the first third of its epochs
    (at least one reported): early enough that it cannot finish before a kill sent now
    lands (a trial found at its last epoch completed first once in CI, 2026-11-30), and
    a window of many polls on a sampled trial of SLOW_SPACE (20 of 60 epochs)."""
    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # the study is not created yet
        return None
    for t in trials:
        epochs = (t.user_attrs.get("config") or {}).get("epochs", 3)
        early = t.state == optuna.trial.TrialState.RUNNING and 1 <= len(t.intermediate_values) <= max(1, epochs // 3)
        if early and (pid is None or str(t.user_attrs.get("worker", "")).endswith(f":{pid}")):
            return t
    return None


def states(storage: str, study: str) -> dict[str, int]:
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    return {s.name: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}


# --- bad input: a study no bad command may change, and the one-line error check ---

@pytest.fixture
def kept_study(tmp_path: Path) -> str:
    """A storage holding one study with one trial, which no bad command may change."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(study_name="kept", storage=open_storage(url, heartbeat=False))
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    return url


def snapshot(url: str) -> list[tuple[str, int]]:
    summaries = optuna.get_all_study_summaries(open_storage(url, heartbeat=False), include_best_trial=False)
    return sorted((s.study_name, s.n_trials) for s in summaries)


def expect_one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> str:
    """Run ``argv``; check one line on stderr holding ``needle`` and exit 2; return that line."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors (unknown choices)
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]
