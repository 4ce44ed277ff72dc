"""open_storage on SQLite: an in-memory database works, and every transaction, also in a
storage that was pickled and unpickled (as when sent to another process), starts with
BEGIN IMMEDIATE (see test_storage_sqlite_claims.py for why)."""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage

from search.storage import open_storage


def test_in_memory_storage_works() -> None:
    study = optuna.create_study(study_name="mem", storage=open_storage("sqlite:///:memory:", heartbeat=False),
                                direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert len(study.trials) == 3 and study.best_value is not None


def _holds_write_lock_while_reading(storage: RDBStorage, path: Path) -> bool:
    """Inside a storage transaction that only reads, can another connection write?"""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with storage.engine.begin() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM studies").all()
            try:
                other.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                assert "locked" in str(exc)
                return True
            other.execute("ROLLBACK")
            return False
    finally:
        other.close()


@pytest.mark.parametrize("pickled", [False, True])
def test_transactions_begin_immediate(pickled: bool, tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    storage = open_storage(f"sqlite:///{path}")
    optuna.create_study(study_name="s", storage=storage)
    if pickled:
        storage = pickle.loads(pickle.dumps(storage))
    assert _holds_write_lock_while_reading(storage, path)
    study = optuna.load_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)  # and it still works
    assert len(study.trials) == 2


def test_plain_rdb_storage_does_not_lock_on_read(tmp_path: Path) -> None:
    """The check above can fail: Optuna's own storage reads without the write lock."""
    path = tmp_path / "s.db"
    storage = RDBStorage(f"sqlite:///{path}")
    optuna.create_study(study_name="s", storage=storage)
    assert not _holds_write_lock_while_reading(storage, path)
