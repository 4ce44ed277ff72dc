"""Optuna's own CLI reads our studies: `optuna studies / trials / best-trial` on the same storage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.search.dash_study import BEST_NUMBER, STUDY, TRIALS, SmallStudy, make_small_study

# The optuna script installed beside this interpreter (the project's venv), not any other.
OPTUNA = Path(sys.executable).parent / "optuna"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> SmallStudy:
    return make_small_study(tmp_path_factory.mktemp("cli"), publish=False)


def _optuna(*args: str) -> Any:
    assert OPTUNA.is_file(), f"{OPTUNA} missing: optuna's console script is not installed in this venv"
    done = subprocess.run([str(OPTUNA), *args, "-f", "json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_studies(small: SmallStudy) -> None:
    (study,) = _optuna("studies", "--storage", small.url)
    assert study["name"] == STUDY
    assert study["direction"] == ["MAXIMIZE"]
    assert study["n_trials"] == len(TRIALS)


def test_trials_have_readable_params(small: SmallStudy) -> None:
    rows = _optuna("trials", "--storage", small.url, "--study-name", STUDY)
    assert [r["number"] for r in rows] == list(range(len(TRIALS)))
    assert [r["state"] for r in rows] == [state.upper() for _, _, state in TRIALS]
    for row, (params, accs, state) in zip(rows, TRIALS):
        # Names as in the search space; ints, floats and strings as such, not encoded.
        assert row["params"] == params
        assert row["user_attrs"]["config"]["hidden_size"] == params["hidden_size"]
        if state == "complete":
            assert row["value"] == accs[-1]


def test_best_trial(small: SmallStudy) -> None:
    best = _optuna("best-trial", "--storage", small.url, "--study-name", STUDY)
    assert best["number"] == BEST_NUMBER
    assert best["value"] == TRIALS[BEST_NUMBER][1][-1]
    assert best["params"] == TRIALS[BEST_NUMBER][0]
    assert best["user_attrs"]["checkpoint_artifact"] == small.checkpoint_id

