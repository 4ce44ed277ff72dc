"""Opening a storage that must already hold studies (dashboard, export, launch --resume).

``RDBStorage`` creates a missing SQLite file, so a mistyped path would silently give an
empty new database; commands that only read a study refuse that instead.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from search.study import StudyError, load_existing_study, open_storage

__all__ = ["open_existing_storage", "open_existing_study"]


def open_existing_storage(url: str, heartbeat: bool = False) -> optuna.storages.RDBStorage:
    """The storage at ``url``; without heartbeats unless asked (readers run no trials)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None  # open_storage words the error
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:") and not Path(db).is_file():
            raise StudyError(f"no SQLite study database at {db} (run `lstm-search launch` first, "
                             "or pass --storage)")
    return open_storage(url, heartbeat=heartbeat)


def open_existing_study(url: str, name: str) -> optuna.Study:
    return load_existing_study(name, open_existing_storage(url))
