"""Each process's connection pool, and the launch's refusal to start more workers than a
PostgreSQL server has connections for (one line, exit 2, nothing written)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from search.connections import (
    POOL_SIZE,
    ServerRoom,
    connections_needed,
    room_for_workers,
    server_room,
)
from search.storage import open_storage
from tests.pgserver import PgServer, missing_postgres, postgres_server
from tests.search.conftest import launch_args, start_cli


@pytest.fixture(scope="module")
def small_server() -> Iterator[PgServer]:
    missing = missing_postgres()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {missing}")
        pytest.skip(missing)
    with postgres_server(max_connections=12) as server:
        yield server


def test_a_launch_needs_a_pool_per_process_and_one_for_the_parent() -> None:
    assert connections_needed(1) == POOL_SIZE  # one process runs the trials itself
    assert connections_needed(8) == 9 * POOL_SIZE  # 8 workers + the parent watching them


@pytest.mark.parametrize("free", range(40))
def test_the_advised_worker_count_is_the_largest_that_fits(free: int) -> None:
    room = ServerRoom(max_connections=free + 5, reserved=3, in_use=2)
    line = room_for_workers(room, 64)
    assert line is not None and "\n" not in line and "max_connections" in line
    fits = [k for k in range(1, 64) if connections_needed(k) <= free]
    if fits:
        assert f"use --workers {max(fits)} or fewer" in line
    else:
        assert "--workers 64 needs" in line and "or fewer" not in line
    assert room_for_workers(room, max(fits)) is None if fits else True


def test_the_pool_is_capped(small_server: PgServer) -> None:
    engine = open_storage(small_server.url).engine
    try:
        assert engine.pool.size() == POOL_SIZE and engine.pool._max_overflow == 0  # no public getter
    finally:
        engine.dispose()


def test_server_room_reads_the_limit(small_server: PgServer) -> None:
    room = server_room(small_server.url)
    assert room is not None and room.max_connections == 12 and room.reserved == 0  # we are superuser
    assert room.in_use >= 0
    assert server_room("postgresql://postgres@127.0.0.1:1/studies") is None  # unreachable: asked later


def test_launch_refuses_workers_the_server_cannot_hold(small_server: PgServer, tiny_space: Path,
                                                       fake_root: Path) -> None:
    args = launch_args("too-many", 4, small_server.url, tiny_space, fake_root, "--workers", "6", "--threads", "1")
    out, _ = start_cli(args).communicate(timeout=120)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and "--workers 6 needs up to 14 PostgreSQL connections" in lines[0], out
    free = int(re.search(r"the server has (\d+) free", lines[0]).group(1))  # other clients vary
    fit = max(k for k in range(1, 6) if connections_needed(k) <= free)
    assert f"use --workers {fit} or fewer" in lines[0] and "Traceback" not in out
    # Other tests may have made Optuna's tables on this server; the refused study is not in them.
    made = small_server.sql("SELECT CASE WHEN to_regclass('public.studies') IS NULL THEN 0 ELSE "
                            "(SELECT count(*) FROM (SELECT study_name FROM studies) s "
                            "WHERE study_name = 'too-many') END")
    assert made == "0", "the refused launch wrote its study"


def test_a_trial_rides_out_the_server_going_away(small_server: PgServer) -> None:
    """The server stops while a trial runs and is back 2 s later: the trial's result, its
    heartbeat and the next trials are recorded and the worker goes on (Optuna alone ends
    the optimize loop with UnboundLocalError when the tell fails)."""
    storage = open_storage(small_server.url)  # with the heartbeat, as every worker
    study = optuna.create_study(study_name="restart", storage=storage, direction="maximize")

    back = threading.Timer(2.0, small_server.start)

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 1:
            small_server.stop()
            back.start()
        return trial.suggest_float("x", 0, 1)

    try:
        study.optimize(objective, n_trials=3)
    finally:
        back.join()  # the server is up again for the other tests
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    storage.engine.dispose()


def test_a_restart_seen_by_sqlalchemy_as_a_dead_pool_counts_as_a_lost_connection() -> None:
    """Seen in CI during a server restart: Optuna's commit failed with InvalidatePoolError
    (a DisconnectionError) and the next call with PendingRollbackError; both are retried.
    Bad data is not."""
    import optuna
    from sqlalchemy.exc import IntegrityError, InvalidatePoolError, PendingRollbackError

    from search.connections import _lost_connection

    def wrapped(cause: BaseException) -> BaseException:
        try:
            raise optuna.exceptions.StorageInternalError("commit failed") from cause
        except optuna.exceptions.StorageInternalError as exc:
            return exc

    assert _lost_connection(wrapped(InvalidatePoolError()))
    assert _lost_connection(PendingRollbackError("Can't reconnect until invalid transaction is rolled back"))
    assert not _lost_connection(wrapped(IntegrityError("INSERT", {}, Exception("duplicate key"))))
    assert not _lost_connection(ValueError("bad value"))
