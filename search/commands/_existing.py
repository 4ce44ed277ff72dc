"""Opening a storage that must already hold studies (report, compare-cells, export, dashboard,
train --study, launch --resume).

``RDBStorage`` creates a missing SQLite file, so a mistyped path would silently give an
empty new database; commands that only read a study refuse that instead, and refuse a
damaged SQLite file with one line rather than a traceback halfway through. A command that
will store results after minutes of work (report) first checks the SQLite file takes
writes (``check_writable_storage``); a file locked past ``LOCK_WAIT_SECONDS`` is one line.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from search.storage import StudyError, open_storage, storage_errors
from search.study import load_existing_study

__all__ = ["LOCK_WAIT_SECONDS", "MissingStorageError", "check_writable_storage", "is_locked", "locked_message",
           "open_existing_storage", "open_existing_study"]

LOCK_WAIT_SECONDS = 60.0  # how long a reader waits for a launch's write to finish


class MissingStorageError(StudyError):
    """The SQLite file a reader was pointed at does not exist."""


def open_existing_storage(url: str, heartbeat: bool = False) -> optuna.storages.RDBStorage:
    """The storage at ``url``; without heartbeats unless asked (readers run no trials)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None  # open_storage words the error
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            if not Path(db).is_file():
                raise MissingStorageError(f"no SQLite study database at {db} (run `lstm-search launch` first, "
                                 "or pass --storage)")
            _check_sqlite_intact(Path(db))
    return open_storage(url, heartbeat=heartbeat)


def _check_sqlite_intact(path: Path) -> None:
    """A damaged page otherwise surfaces as a traceback in the middle of reading trials.

    ``quick_check`` reads every page once, which for a study database (a few MB) is quick.
    Opened read-only, so the check itself changes nothing.
    """
    if not os.access(path, os.R_OK):
        raise StudyError(f"cannot read the study database {path}: permission denied; "
                         "run as its owner or make it readable (the file itself is not damaged)")
    try:
        with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                                     timeout=LOCK_WAIT_SECONDS)) as conn:
            rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if is_locked(exc):
            raise StudyError(locked_message(path)) from None
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
            raise StudyError(f"cannot open the study database {path}: {exc} (check the permissions of "
                             "it and its folder; the file itself is not known to be damaged)") from None
        rows = [(str(exc),)]
    problems = [" ".join(str(r[0]).split()) for r in rows if r and r[0] != "ok"]  # one line each
    if problems:
        raise StudyError(f"{path} is not a readable SQLite study database ({problems[0]}); "
                         "restore it from a copy, or pass another --storage")


def is_locked(exc: BaseException) -> bool:
    """SQLite's "database is locked" / "busy": another process holds it, nothing is damaged."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    return "database is locked" in text or "database is busy" in text or "database table is locked" in text


def locked_message(where: object) -> str:
    return (f"the study database {where} stayed locked by another process for {LOCK_WAIT_SECONDS:.0f}s "
            "(a running launch or report?); wait for it to finish, or stop it, and run this again")


def check_writable_storage(url: str) -> None:
    """A SQLite study must take writes before a command spends minutes on work it then
    stores (report caches its final runs): probed with a write that is rolled back."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # open_storage has worded it already
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    database = parsed.database
    uri = database if database.startswith("file:") else Path(database).absolute().as_uri()
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=LOCK_WAIT_SECONDS, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE lstm_search_write_probe (x INTEGER)")
            conn.execute("ROLLBACK")
    except sqlite3.DatabaseError as exc:
        if is_locked(exc):
            raise StudyError(locked_message(database)) from None
        raise StudyError(f"cannot write to the study database {database}: {exc}; this command stores its "
                         "results in the study: make it writable, or work on a writable copy") from None


def open_existing_study(url: str, name: str) -> optuna.Study:
    storage = open_existing_storage(url)
    with storage_errors(url, action="read from"):
        return load_existing_study(name, storage)
