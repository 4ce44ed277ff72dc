"""How many database connections each process opens, and whether a server has room for K.

Every PostgreSQL server caps its clients (``max_connections``, 100 by default, a few of
them reserved for superusers); a client past the cap is refused with "too many clients"
and a worker refused mid-study ends. So each process's pool is sized deliberately:
a worker needs one connection for its trials and one for the heartbeat thread, and never
more, so the pool is exactly that with no overflow. The launch (one process watching K
workers) then knows what K workers need and can say so before starting them.

Kept free of torch and of the rest of the service, so a process that only talks to the
study (the PostgreSQL benchmark's fake workers) uses exactly the service's engine settings.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError, PendingRollbackError, SQLAlchemyError

from search.interrupts import defer_interrupts_in

__all__ = [
    "GRACE_SECONDS", "HEARTBEAT_SECONDS", "POOL_SIZE", "ReconnectingRDBStorage", "ServerRoom", "connections_needed",
    "postgres_engine_kwargs", "room_for_workers", "server_room",
]

# One connection for the trial's writes (main thread), one for Optuna's heartbeat thread.
POOL_SIZE = 2
# A checkout past the pool waits this long for a connection to come back, then fails.
POOL_TIMEOUT_SECONDS = 60
HEARTBEAT_SECONDS = 10  # a killed worker's trial is failed and retried ~2x this later
GRACE_SECONDS = 2 * HEARTBEAT_SECONDS
CONNECT_TIMEOUT_SECONDS = 10
# How long a storage call keeps retrying while the server is away (a restart, a failover).
RECONNECT_SECONDS = 60.0  # an unreachable host fails in seconds, not after the OS's TCP timeout


def postgres_engine_kwargs() -> dict[str, object]:
    """SQLAlchemy engine settings of every process that opens a PostgreSQL study."""
    return {
        "connect_args": {"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        # Replaces connections a server restart or an idle timeout has closed, before use.
        "pool_pre_ping": True,
        "pool_size": POOL_SIZE,
        "max_overflow": 0,  # a hard cap: K processes open at most K * POOL_SIZE connections
        "pool_timeout": POOL_TIMEOUT_SECONDS,
    }


def _lost_connection(exc: BaseException) -> bool:
    """A server restart or a dropped connection, not bad data: the call may run again.

    Optuna wraps a failed commit in StorageInternalError; the database's error is its cause.
    OperationalError is what the driver raises when the server closes the connection or
    refuses a new one; SQLAlchemy raises DisconnectionError
    (InvalidatePoolError) when a restart invalidates the pool, and PendingRollbackError when
    a session still holds the dead connection's transaction. The transaction was rolled
    back in each case, so running the call again is safe.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (OperationalError, DisconnectionError, PendingRollbackError)):
            return True
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        exc = exc.__cause__
    return False


def _retried(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def retry(self: RDBStorage, *args: Any, **kwargs: Any) -> Any:
        give_up = time.monotonic() + RECONNECT_SECONDS
        while True:
            try:
                return call(self, *args, **kwargs)
            except (optuna.exceptions.StorageInternalError, SQLAlchemyError) as exc:
                if not _lost_connection(exc) or time.monotonic() > give_up:
                    raise
                self.scoped_session.remove()  # the session's connection is dead; the pool pre-pings anew
                time.sleep(0.5)
    return retry


class ReconnectingRDBStorage(RDBStorage):
    """RDBStorage whose calls ride out a server restart instead of ending the worker.

    pool_pre_ping replaces a connection the restart closed, but only once the server is
    back: a call made while it is down fails, and Optuna's optimize loop does not survive
    a failed tell (the worker ends with UnboundLocalError). Each storage call therefore
    retries for up to RECONNECT_SECONDS when the connection was lost.
    """


for _name in ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
              "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
              "get_study_user_attrs", "get_study_system_attrs", "get_all_studies", "create_new_trial",
              "set_trial_param", "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value",
              "set_trial_user_attr", "set_trial_system_attr", "get_trial_id_from_study_id_trial_number",
              "get_trial_number_from_id", "get_trial", "get_all_trials", "get_n_trials", "get_best_trial",
              "get_trial_params", "get_trial_user_attrs", "get_trial_system_attrs", "record_heartbeat",
              # the private ones Optuna's cache and heartbeat call directly
              "_create_new_trial", "_get_best_trial_id", "_get_stale_trial_ids", "_get_trials", "_set_trial_param"):
    setattr(ReconnectingRDBStorage, _name, _retried(getattr(RDBStorage, _name)))
defer_interrupts_in(ReconnectingRDBStorage)  # outside the retries: a Ctrl-C waits for the call, retries and all


def connections_needed(workers: int) -> int:
    """Connections a launch of ``workers`` processes opens at most (the watching parent too)."""
    processes = workers + 1 if workers > 1 else 1
    return processes * POOL_SIZE


@dataclass(frozen=True)
class ServerRoom:
    max_connections: int
    reserved: int  # superuser_reserved_connections, when we are not a superuser
    in_use: int  # client connections open now, not counting the one asking

    @property
    def free(self) -> int:
        return self.max_connections - self.reserved - self.in_use


def server_room(url: str) -> ServerRoom | None:
    """The server's connection limit and current use, or None when it cannot be asked.

    A throwaway engine and one read-only query: nothing is written, no schema created.
    An unreachable server returns None; opening the storage words that error.
    """
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool,
                                      connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS})
    query = sqlalchemy.text(
        "SELECT current_setting('max_connections')::int,"
        " CASE WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN 0"
        " ELSE current_setting('superuser_reserved_connections')::int END,"
        " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') - 1"
    )
    try:
        with engine.connect() as conn:
            limit, reserved, in_use = conn.execute(query).one()
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    return ServerRoom(max_connections=limit, reserved=reserved, in_use=in_use)


def room_for_workers(room: ServerRoom, workers: int) -> str | None:
    """One line saying why ``workers`` processes would not fit on the server, or None."""
    need = connections_needed(workers)
    if need <= room.free:
        return None
    fit = next((k for k in range(workers - 1, 0, -1) if connections_needed(k) <= room.free), 0)
    limit = f"max_connections {room.max_connections}" + (f", {room.reserved} reserved" if room.reserved else "")
    advice = f"use --workers {fit} or fewer, or" if fit else "close other clients or"
    return (
        f"--workers {workers} needs up to {need} PostgreSQL connections ({POOL_SIZE} per process) "
        f"but the server has {max(0, room.free)} free ({limit}, {room.in_use} in use); "
        f"{advice} raise max_connections in postgresql.conf"
    )
