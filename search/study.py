"""Storage, sampler, pruner, and creating or resuming a study.

Everything here is validated before the study is created, so bad input never leaves a
half-made study behind.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from model.config import MAX_SEED, TrainConfig
from model.errors import UserInputError
from search.connections import (  # heartbeat constants re-exported for search/runner.py
    GRACE_SECONDS, HEARTBEAT_SECONDS, ReconnectingRDBStorage, postgres_engine_kwargs, room_for_workers, server_room,
)
from search.prior import is_prior
from search.pruning import (  # re-exported: one home, search/pruning.py
    FIRST_RUNG,
    PRUNERS,
    make_pruner,
)
from search.redact import redact_text, redact_url
from search.space import SearchSpace

__all__ = [
    "DEFAULT_SAMPLER",
    "DEFAULT_STORAGE",
    "FINISHED",
    "FIRST_RUNG",
    "PRUNERS",
    "SAMPLERS",
    "SEED_LIMIT",
    "StudyError",
    "best_trial",
    "check_connections",
    "check_ours",
    "check_resumable",
    "create_or_resume",
    "existing_trial_count",
    "finished_trials",
    "load_existing_study",
    "make_pruner",
    "make_sampler",
    "name_objective",
    "open_storage",
    "requeue_lost_baseline",
    "sampler_seed",
    "storage_errors",
    "sweep_stale_trials",
]

DEFAULT_STORAGE = "sqlite:///studies.db"
SAMPLERS = ("tpe", "random", "cmaes", "gp")
DEFAULT_SAMPLER = "tpe"  # the launch's default (replayed by benchmarks/replay.py)
_SCHEMA_ATTEMPTS = 5
_SCHEMA_RACE = re.compile(r"already exists|UNIQUE constraint|duplicate key|database is locked", re.IGNORECASE)
_WORKER_SEED_STRIDE = 1_000_003  # a prime far above any study's trial count
SEED_LIMIT = MAX_SEED + 1  # sampler seeds wrap below this (model/config.py holds the one bound)
# Written last when a study is created: its presence says the study was made by
# lstm-search and that every setting before it is in place.
PROJECT_MARKER = "lstm_search"
_MARKER_WAIT_SECONDS = 10.0  # how long a copy started with the creator waits for the marker
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class StudyError(UserInputError):
    """Storage unreachable or malformed, unknown study, unknown sampler or pruner."""


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
    kwargs = {}
    if heartbeat:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = RetryHeartbeatStaleTrialCallback(max_retry=3)
        kwargs = dict(
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=retry,
        )
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
    for attempt in range(_SCHEMA_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                # Heartbeats have been "experimental" since Optuna 2.8; the warning is noise here.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                kind = _ImmediateSQLiteStorage if sqlite else ReconnectingRDBStorage
                return kind(url, engine_kwargs=engine_kwargs, **kwargs)
        except SQLAlchemyError as exc:
            if attempt + 1 == _SCHEMA_ATTEMPTS or not _SCHEMA_RACE.search(str(exc)):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        # CMA-ES handles the numeric parameters; categorical ones fall back to TPE.
        return optuna.samplers.CmaEsSampler(
            seed=seed, independent_sampler=optuna.samplers.TPESampler(seed=seed),
            warn_independent_sampling=False,
        )
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    raise StudyError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


OBJECTIVE_NAME = "val_accuracy"


def name_objective(study: optuna.Study) -> None:
    """Name the objective so optuna-dashboard says "val_accuracy" instead of "Objective 0"
    (at creation; `report` also names studies made before this); a set name is left alone."""
    if not study.metric_names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([OBJECTIVE_NAME])


def create_or_resume(
    name: str,
    storage: optuna.storages.BaseStorage,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    space: SearchSpace,
    baseline: TrainConfig,
    settings: dict[str, object],
    differences: Callable[[dict[str, Any]], list[str]] | None = None,
) -> tuple[optuna.Study, bool]:
    """Open study ``name`` (creating it if new). Returns (study, created).

    A new study records its settings and gets the V1 baseline enqueued as trial 0, so
    every study answers "how much better than V1?" from its own data. An existing one must
    be an lstm-search study (maximising, with the project's marker) whose stored settings
    ``differences`` finds nothing wrong with; otherwise StudyError, and nothing is written.
    """
    # Creating through the storage tells exactly one of several workers started at the
    # same moment that it made the study, so the baseline is enqueued once, not K times.
    try:
        storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], name)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        created = False
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    if created:
        for key, value in settings.items():
            study.set_user_attr(key, value)
        study.set_user_attr("baseline_config", baseline.to_dict())
        study.enqueue_trial(space.params_of(baseline), user_attrs={"baseline": "v1"})
        study.set_user_attr(PROJECT_MARKER, 1)
        name_objective(study)
        return study, created
    check_resumable(study, differences)
    return study, created


def check_resumable(study: optuna.Study, differences: Callable[[dict[str, Any]], list[str]] | None) -> None:
    """Refuse to resume a study that is not ours or whose stored settings ``differences``
    finds at odds with this launch (StudyError naming each difference)."""
    check_ours(study)
    diffs = differences(study.user_attrs) if differences is not None else []
    if diffs:
        raise StudyError(f"study {study.study_name!r} was created with other settings, so its trials would "
                         f"not be comparable: {'; '.join(diffs)}; launch with the study's settings or pick a "
                         "new --study name")


def check_ours(study: optuna.Study) -> None:
    """Refuse a study lstm-search did not make (e.g. by ``optuna create-study``).

    Such a study may minimise (Optuna's default), which would call the worst accuracy
    the best, and has no V1 baseline or stored settings to compare a resume against.
    """
    name = study.study_name
    if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MAXIMIZE:
        directions = ", ".join(d.name.lower() for d in study.directions)
        raise StudyError(f"study {name!r} is set to {directions}, but lstm-search maximises validation "
                         "accuracy: it was not made by lstm-search; pick another --study name")
    deadline = time.monotonic() + _MARKER_WAIT_SECONDS
    while not _is_ours(study.user_attrs):
        # A copy started together with the creator can see the study before its settings.
        if study.get_trials(deepcopy=False) or time.monotonic() > deadline:
            raise StudyError(f"study {name!r} was not made by lstm-search (it holds none of the settings "
                             "lstm-search stores); pick another --study name")
        time.sleep(0.2)


def _is_ours(attrs: dict[str, Any]) -> bool:
    # Studies of the first release have no marker, but always a baseline config.
    return PROJECT_MARKER in attrs or "baseline_config" in attrs


def requeue_lost_baseline(study: optuna.Study, space: SearchSpace) -> bool:
    """Enqueue the V1 baseline again if no copy of it finished, waits or runs.

    It is enqueued only at creation; a Ctrl-C during it records it FAIL and Optuna does
    not re-queue that (only a killed worker's trial, through the heartbeat). Returns
    whether it was enqueued.
    """
    stored = study.user_attrs.get("baseline_config")
    if stored is None:
        return False
    alive = (*FINISHED, optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
    if any(t.user_attrs.get("baseline") and t.state in alive for t in study.get_trials(deepcopy=False)):
        return False
    study.enqueue_trial(space.params_of(TrainConfig.from_dict(stored)), user_attrs={"baseline": "v1"})
    return True


def load_existing_study(name: str, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Load a study that must exist; the error lists the ones that do."""
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
    if name not in names:
        known = ", ".join(names) if names else "none yet"
        raise StudyError(f"no study named {name!r} in this storage (studies: {known})")
    return optuna.load_study(study_name=name, storage=storage)


def existing_trial_count(storage: optuna.storages.BaseStorage, name: str) -> int:
    """Trials a study already holds (0 if it does not exist).

    Used to offset the sampler's seed on resume: a sampler reseeded with the same seed
    would otherwise redraw the very configurations the study already tried.
    """
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.study_name == name:
            return summary.n_trials
    return 0


def sampler_seed(seed: int, existing_trials: int, worker_index: int = 0) -> int:
    """The sampler's seed for one process joining a study.

    Offset by the trials the study already holds (a resumed sampler must not redraw the
    configurations it tried) and by the worker index (K workers started together see the
    same count and would otherwise draw identical configurations).
    """
    return (seed + existing_trials + _WORKER_SEED_STRIDE * worker_index) % SEED_LIMIT


def sweep_stale_trials(study: optuna.Study) -> None:
    """Fail (and, through the retry callback, re-queue) trials whose worker stopped beating.

    Optuna does this only when a worker starts a trial; calling it when a run ends too means
    a trial killed near the end is not left RUNNING if its grace period has already passed.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def finished_trials(study: optuna.Study) -> int:
    """Finished (complete or pruned) search trials: what ``--n-trials N`` counts. Repeats of
    the confirmation phase (user attr ``repeat_of``, search/confirm.py) come on top of N, and
    prior copies (search/prior.py) were not trained here."""
    return sum("repeat_of" not in t.user_attrs and not is_prior(t)
               for t in study.get_trials(deepcopy=False, states=FINISHED))


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The study's best complete trial trained here (never a prior copy), or None before one."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if not is_prior(t) and t.value is not None and math.isfinite(t.value)]
    return max(complete, key=lambda t: t.value, default=None)

