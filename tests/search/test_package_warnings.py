"""Optuna's ExperimentalWarning is silenced once, by importing the ``search`` package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Experimental APIs the service uses on purpose (search/__init__.py names them).
USES = ("import optuna; optuna.logging.set_verbosity(optuna.logging.ERROR); "
        "optuna.create_study().set_metric_names(['val_accuracy']); "
        "optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)")


def _stderr(code: str) -> str:
    # A fresh interpreter: pytest's own warning filters must not decide the outcome.
    return subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True).stderr


def test_importing_search_silences_experimental_warnings() -> None:
    assert "ExperimentalWarning" in _stderr(USES)  # without the package, Optuna warns
    assert "ExperimentalWarning" not in _stderr("import search; " + USES)
