"""Opening a storage that must already hold studies (report, compare-cells, export, dashboard,
launch --resume).

``RDBStorage`` creates a missing SQLite file, so a mistyped path would silently give an
empty new database; commands that only read a study refuse that instead, and refuse a
damaged SQLite file with one line rather than a traceback halfway through.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from search.study import StudyError, load_existing_study, open_storage

__all__ = ["MissingStorageError", "open_existing_storage", "open_existing_study"]


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
    try:
        with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=60)) as conn:
            rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        rows = [(str(exc),)]
    problems = [" ".join(str(r[0]).split()) for r in rows if r and r[0] != "ok"]  # one line each
    if problems:
        raise StudyError(f"{path} is not a readable SQLite study database ({problems[0]}); "
                         "restore it from a copy, or pass another --storage")


def open_existing_study(url: str, name: str) -> optuna.Study:
    return load_existing_study(name, open_existing_storage(url))
