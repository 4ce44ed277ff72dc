"""Many machines: the same CLI against a real PostgreSQL server that this module starts.

The server (tests/pgserver.py) runs on loopback in a temporary directory and is removed
afterwards. Outside CI a machine without PostgreSQL skips these tests; under CI=true they must run.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from search.trials import FINISHED
from tests.pgserver import PgServer, missing_postgres, postgres_server
from tests.search.conftest import launch_args, start_cli, states, wait_for
from tests.search.test_crash_resume import kill_one_of_two_workers


@pytest.fixture(scope="module")
def postgres() -> Iterator[PgServer]:
    missing = missing_postgres()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {missing}")
        pytest.skip(missing)
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def postgres_url(postgres: PgServer) -> str:
    return postgres.url


@pytest.mark.slow
def test_launch_workers_on_postgres(postgres_url: str, tiny_space: Path, fake_root: Path) -> None:
    proc = start_cli(launch_args("pg-workers", 12, postgres_url, tiny_space, fake_root, "--workers", "2"))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    count = states(postgres_url, "pg-workers")
    assert count["COMPLETE"] + count["PRUNED"] >= 12
    assert count["FAIL"] == 0 and count["RUNNING"] == 0


@pytest.mark.slow
def test_killed_worker_on_postgres_then_resume(postgres_url: str, slow_space: Path, fake_root: Path) -> None:
    delays = kill_one_of_two_workers(postgres_url, slow_space, fake_root, n_trials=12)
    print(f"PostgreSQL: killed trial failed {delays['failed_after']:.1f}s and re-run "
          f"{delays['retried_after']:.1f}s after SIGKILL")
    # The same command with a larger N resumes the study on the server to N in total.
    args = launch_args("killed", 14, postgres_url, slow_space, fake_root, "--workers", "1", "--resume")
    proc = start_cli(args)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "resuming study 'killed'" in out
    count = states(postgres_url, "killed")
    assert count["COMPLETE"] + count["PRUNED"] == 14
    assert count["RUNNING"] == 0 and count["WAITING"] == 0


def test_no_password_in_what_launch_and_dashboard_print(postgres_url: str, tiny_space: Path,
                                                        fake_root: Path) -> None:
    """The server trusts local connections, so a URL with a password connects: everything
    the commands print on a live server (plan, banner) must show it as ***."""
    url = postgres_url.replace("postgres@", "postgres:hunter2@")
    dry = start_cli(launch_args("pg-secret", 2, url, tiny_space, fake_root, "--dry-run"))
    out, _ = dry.communicate(timeout=120)
    assert dry.returncode == 0, out
    assert "hunter2" not in out and "postgres:***@" in out, out
    dash = start_cli(["dashboard", "--storage", url, "--port", "0"])
    lines = []
    for line in dash.stdout:
        lines.append(line)
        if "optuna-dashboard at" in line:
            break
    dash.kill()
    dash.wait()
    assert lines and "hunter2" not in "".join(lines) and "postgres:***@" in lines[-1], lines


def _running_workers(storage: str, study: str) -> set[int]:
    """Pids of the workers that hold a RUNNING trial."""
    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # the study is not created yet
        return set()
    return {int(str(t.user_attrs["worker"]).rsplit(":", 1)[1]) for t in trials
            if t.state == optuna.trial.TrialState.RUNNING and "worker" in t.user_attrs}


@pytest.mark.slow
def test_server_restart_then_kill_wave_loses_nothing(postgres: PgServer, slow_space: Path, fake_root: Path) -> None:
    """4 workers; the server restarted mid-trial, then a quarter of the workers SIGKILLed.

    The workers' pooled connections die with the restart: they must reconnect (not end),
    and the killed worker's trial must be failed by the heartbeat and re-run, so the study
    ends with N finished trials, none lost, none duplicated, none left RUNNING.
    """
    study, n = "faults", 12
    proc = start_cli(launch_args(study, n, postgres.url, slow_space, fake_root, "--workers", "4", "--threads", "1"))
    wait_for(lambda: _running_workers(postgres.url, study), 240, "a worker mid-trial", poll=0.2)
    postgres.restart()
    before = {t.number for t in optuna.load_study(study_name=study, storage=postgres.url).get_trials()
              if t.state in FINISHED}
    # Trials finished after the restart prove the workers reconnected; then the kill wave.
    wait_for(lambda: _finished_numbers(postgres.url, study) - before, 240, "a trial after the restart", poll=0.2)
    victims = wait_for(lambda: _running_workers(postgres.url, study), 60, "a worker mid-trial", poll=0.1)
    victim = min(victims)
    os.kill(victim, signal.SIGKILL)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    trials = optuna.load_study(study_name=study, storage=postgres.url).get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)), "duplicate trial numbers"
    count = states(postgres.url, study)
    assert count["COMPLETE"] + count["PRUNED"] >= n, out
    assert count["RUNNING"] == 0 and count["WAITING"] == 0, count
    killed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(killed) == 1 and str(killed[0].user_attrs["worker"]).endswith(f":{victim}"), out
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retries) == 1 and retries[0].state in FINISHED, "the killed trial was not re-run"


def _finished_numbers(storage: str, study: str) -> set[int]:
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    return {t.number for t in trials if t.state in FINISHED}
