"""A Ctrl-C that arrives while a storage call is inside its transaction waits for the call
to end, then stops the command as usual, and leaves SQLite's write lock free.

Before this held, the KeyboardInterrupt could leave the lock with a connection that its
traceback kept alive: the process's next write (a worker recording its interrupted trial,
or anything the launch did while stopping) and every other worker's waited out the busy
timeout, and an interrupted launch hung. The signal is sent from a SQLAlchemy event at one
exact statement, so each case is hit every time."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from search.exits import EXIT_INTERRUPTED, interruptible, run_reporting
from search.interrupts import deferred, raise_or_defer
from search.runner import run_trials
from search.storage import open_storage


def _signal_at(storage: optuna.storages.BaseStorage, matches: Callable[[str, object], bool]) -> list[str]:
    """Send this process SIGINT once, right after the first statement ``matches`` accepts
    runs; returns the list that records whether it was still inside a transaction."""
    seen: list[str] = []

    def after(conn: sqlalchemy.Connection, cursor: object, statement: str, parameters: object,
              context: object, executemany: bool) -> None:
        if not seen and matches(statement, parameters):
            seen.append("in transaction" if conn.in_transaction() else "outside")
            os.kill(os.getpid(), signal.SIGINT)

    backend = getattr(storage, "_backend", storage)  # Optuna wraps an RDBStorage in its cache
    sqlalchemy.event.listen(backend.engine, "after_cursor_execute", after)
    return seen


def _lock_is_free(path: Path) -> bool:
    """Whether another connection can take the write lock at once (as another worker would)."""
    probe = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


@pytest.fixture
def study_file(tmp_path: Path) -> tuple[Path, optuna.Study]:
    path = tmp_path / "s.db"
    study = optuna.create_study(study_name="s", storage=open_storage(f"sqlite:///{path}"), direction="maximize")
    dist = {"a": optuna.distributions.FloatDistribution(0.0, 1.0)}
    for value in (0.1, 0.2, 0.3):
        study.add_trial(optuna.trial.create_trial(params={"a": value}, distributions=dist, value=value))
    return path, study


def test_a_ctrl_c_inside_a_read_stops_the_launch_loop_and_leaves_the_lock_free(study_file) -> None:
    """The launch's watching loop (``interruptible``) polls the study; a Ctrl-C mid-poll."""
    path, study = study_file
    seen = _signal_at(study._storage, lambda statement, _: statement.lstrip().startswith("SELECT"))
    with interruptible() as stop, pytest.raises(KeyboardInterrupt):
        while True:
            study.get_trials(deepcopy=False)
    assert seen == ["in transaction"]  # the signal did land inside the call's transaction
    assert stop.signum == signal.SIGINT
    assert _lock_is_free(path), "the interrupted read left SQLite's write lock held"
    assert len(study.get_trials()) == 3


def test_a_ctrl_c_inside_the_objectives_write_fails_the_trial_and_leaves_the_lock_free(study_file) -> None:
    """A worker's Ctrl-C while the objective writes to its trial (the per-epoch curves)."""
    path, study = study_file
    _signal_at(study._storage, lambda _, parameters: "signal here" in str(parameters))

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("signal here", 1)
        for _ in range(10**6):  # only reached if the Ctrl-C was lost
            trial.set_user_attr("after", 1)
        return 0.5

    with pytest.raises(KeyboardInterrupt):
        run_trials(study, objective, 10, progress=False)
    assert _lock_is_free(path)
    last = study.get_trials()[-1]
    assert last.state == TrialState.FAIL and "interrupted" in last.user_attrs["fail_reason"]
    assert "after" not in last.user_attrs


def test_a_command_interrupted_inside_a_storage_call_exits_130_and_restores_the_handler(study_file) -> None:
    path, study = study_file
    _signal_at(study._storage, lambda statement, _: statement.lstrip().startswith("SELECT"))

    def body() -> int:
        while True:
            study.get_trials(deepcopy=False)

    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN under nohup (CI)
    assert run_reporting("test", body) == EXIT_INTERRUPTED  # also when SIGINT was ignored
    assert _lock_is_free(path)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_deferred_interrupt_is_raised_once_when_the_outermost_call_ends() -> None:
    with pytest.raises(KeyboardInterrupt), deferred:
        with deferred:
            raise_or_defer()  # what a handler does inside a storage call
        inner_done = True  # the inner call's end is not the outermost: no raise yet
    assert inner_done
    with deferred:  # nothing pending any more
        pass
    with pytest.raises(KeyboardInterrupt):
        raise_or_defer()  # outside any storage call: at once


def test_a_deferred_interrupt_replaces_the_calls_own_error_rather_than_being_lost() -> None:
    with pytest.raises(KeyboardInterrupt) as caught, deferred:
        raise_or_defer()
        raise ValueError("the call failed too")
    assert isinstance(caught.value.__context__, ValueError)


def test_other_threads_storage_calls_do_not_hold_the_main_threads_interrupt() -> None:
    """Optuna's heartbeat thread writes while the main thread trains."""
    entered = threading.Event()
    release = threading.Event()

    def heartbeat() -> None:
        with deferred:
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=heartbeat)
    thread.start()
    entered.wait(10)
    try:
        with pytest.raises(KeyboardInterrupt):
            raise_or_defer()
    finally:
        release.set()
        thread.join()
