"""Opening a study storage (SQLite or PostgreSQL), and the one place its errors become lines.

``open_storage`` builds Optuna's RDB storage with a heartbeat (a killed worker's trial is
failed and retried; ``sweep_stale_trials`` runs that check on demand). On SQLite every
transaction starts with BEGIN IMMEDIATE, and workers started together that race to create
the schema retry. What a database raises (a malformed URL, a missing driver, a read-only
file, a lost server) becomes one ``StudyError`` line here, in ``open_storage`` and the
``storage_errors`` context, much as Optuna's storages/_rdb turns SQLAlchemy's errors into
its StorageInternalError. Connection counts and reconnecting are search/connections.py's;
what a study must hold is search/study.py's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from model.errors import UserInputError
from search.connections import (
    GRACE_SECONDS,
    HEARTBEAT_SECONDS,
    ReconnectingRDBStorage,
    postgres_engine_kwargs,
    room_for_workers,
    server_room,
)
from search.interrupts import defer_interrupts_in
from search.redact import redact_text, redact_url

__all__ = [
    "DEFAULT_STORAGE", "StudyError", "check_connections", "open_storage", "storage_errors", "sweep_stale_trials",
]

DEFAULT_STORAGE = "sqlite:///studies.db"
_SCHEMA_ATTEMPTS = 5
_SCHEMA_RACE = re.compile(r"already exists|UNIQUE constraint|duplicate key|database is locked", re.IGNORECASE)


class StudyError(UserInputError):
    """The storage or a study in it cannot be used: unreachable, malformed, read-only, an
    unknown study, or one that is not lstm-search's or was made with other settings."""


def open_storage(url: str, heartbeat: bool = True) -> RDBStorage:
    """An RDB storage with a heartbeat, so trials of killed workers are failed and retried."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StudyError(
            f"malformed storage URL {redact_url(url)!r}; expected e.g. {DEFAULT_STORAGE} "
            "or postgresql://user:password@host/dbname"
        ) from None
    engine_kwargs: dict[str, object] = {}
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        # Several workers on one file: wait for the lock instead of failing at once.
        # isolation_level None: pysqlite issues no BEGIN of its own; _ImmediateSQLiteStorage
        # issues BEGIN IMMEDIATE. Set at connect time, so the first connection (which holds
        # the whole database for sqlite:///:memory:) never needs replacing.
        engine_kwargs["connect_args"] = {"timeout": 60, "isolation_level": None}
    elif backend == "postgresql":
        # Pool sized so K workers open a known number of connections (search/connections.py).
        engine_kwargs = postgres_engine_kwargs()
    kwargs: dict[str, object] = {}
    if heartbeat:
        kwargs = {
            "heartbeat_interval": HEARTBEAT_SECONDS,
            "grace_period": GRACE_SECONDS,
            "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=3),
        }
    try:
        storage = _create_rdb(url, engine_kwargs, kwargs, sqlite=backend == "sqlite")
    except ImportError as exc:
        raise StudyError(
            f"cannot open storage {redact_url(url)}: the {backend} driver is not installed "
            f"({exc}); for PostgreSQL run: pip install 'lstm-search[postgres]' (or 'psycopg[binary]')"
        ) from None
    except (SQLAlchemyError, ValueError) as exc:
        reason = redact_text(str(exc).strip().splitlines()[0]) if str(exc).strip() else type(exc).__name__
        raise StudyError(f"cannot open storage {redact_url(url)}: {reason}") from None
    return storage


def check_connections(url: str, workers: int) -> None:
    """Refuse to start ``workers`` processes a PostgreSQL server has no connections for.

    Past ``max_connections`` the server refuses new clients and a refused worker ends, so
    the launch says so before starting any. Other backends (SQLite) have no such limit.
    """
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        return  # open_storage words a malformed URL
    room = server_room(url) if backend == "postgresql" else None
    problem = None if room is None else room_for_workers(room, workers)
    if problem:
        raise StudyError(problem)


@contextmanager
def storage_errors(url: str, action: str = "write to") -> Iterator[None]:
    """Turn a failed storage write (read-only file, full disk, lost server) into one line.

    Optuna wraps the database's error in StorageInternalError with a generic message;
    the real cause ("attempt to write a readonly database") is the wrapped one.
    """
    try:
        yield
    except (optuna.exceptions.StorageInternalError, SQLAlchemyError) as exc:
        cause: BaseException = exc
        while isinstance(cause, optuna.exceptions.StorageInternalError) and cause.__cause__ is not None:
            cause = cause.__cause__
        orig = getattr(cause, "orig", None)  # the DB-API error inside SQLAlchemy's
        text = str(orig if orig is not None else cause).strip()
        reason = redact_text(text.splitlines()[0]) if text else type(cause).__name__
        if re.search(r"database (table )?is (locked|busy)", reason, re.IGNORECASE):
            # Busy, not broken: another process (a running launch) held the lock too long.
            reason += " by another process (a running launch?); wait for it to finish and run this again"
        raise StudyError(f"cannot {action} storage {redact_url(url)}: {reason}") from None


def sweep_stale_trials(study: optuna.Study) -> None:
    """Fail (and, through the heartbeat's retry callback, re-queue) trials whose worker
    stopped beating.

    Optuna does this only when a worker starts a trial; calling it when a run ends too means
    a trial killed near the end is not left RUNNING if its grace period has already passed.
    """
    optuna.storages.fail_stale_trials(study)


@defer_interrupts_in  # a Ctrl-C inside a transaction would leave the write lock held
class _ImmediateSQLiteStorage(RDBStorage):
    """RDBStorage on SQLite whose transactions start with BEGIN IMMEDIATE.

    A subclass rather than listeners added to a made storage: unpickling (a storage sent to
    a process) builds a new engine in ``__setstate__``, which must get the listener too.
    """

    def __init__(self, url: str, **kwargs: object) -> None:
        super().__init__(url, **kwargs)  # type: ignore[arg-type]
        _begin_immediate(self.engine)

    def __setstate__(self, state: dict[object, object]) -> None:
        super().__setstate__(state)
        _begin_immediate(self.engine)


def _begin_immediate(engine: sqlalchemy.engine.Engine) -> None:
    """Start every transaction with BEGIN IMMEDIATE (SQLAlchemy's pysqlite recipe).

    Optuna claims a WAITING trial (the enqueued V1 baseline, a heartbeat retry) with
    SELECT ... FOR UPDATE then UPDATE. SQLite ignores FOR UPDATE and pysqlite runs the
    SELECT outside any transaction, so two workers could both claim the same trial and
    one crashed with "Cannot tell a COMPLETE trial". Taking the write lock at BEGIN makes
    the read and the update one atomic step; the busy timeout makes others wait for it.
    """

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin(connection: sqlalchemy.engine.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _create_rdb(url: str, engine_kwargs: dict[str, object], kwargs: dict[str, object],
                sqlite: bool) -> RDBStorage:
    """RDBStorage, retried when workers started together race to create the schema.

    On a fresh database each process creates Optuna's tables; a loser sees "table already
    exists" or a duplicate alembic version row, and on retry finds the finished schema.
    """
    kind = _ImmediateSQLiteStorage if sqlite else ReconnectingRDBStorage
    for attempt in range(_SCHEMA_ATTEMPTS):
        try:
            return kind(url, engine_kwargs=engine_kwargs, **kwargs)
        except SQLAlchemyError as exc:
            if attempt + 1 == _SCHEMA_ATTEMPTS or not _SCHEMA_RACE.search(str(exc)):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")
