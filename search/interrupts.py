"""Where a Ctrl-C may land in a process that writes to the study.

Never inside a storage call. A KeyboardInterrupt raised between SQLite's BEGIN IMMEDIATE
and its COMMIT leaves the write lock with a connection that the exception's traceback
keeps alive: this process's next write, and every other worker's, then waits out the
busy timeout and fails (CI, 2026-12-07: an interrupted two-worker launch hung past 120 s,
a worker's heartbeat thread failing on the lock; reproduced 2026-12-08 by interrupting a
loop of reads). So every storage call of the main thread runs ``deferred``, and a SIGINT
handler that would raise calls ``raise_or_defer``: inside a storage call the
KeyboardInterrupt waits until the outermost call returns.

A trial loop adds one rule (``one_interrupt``): the first Ctrl-C raises at once only while
the objective trains; elsewhere it waits for the next point where the trial is recorded.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from optuna.storages import RDBStorage

__all__ = ["TrialInterrupt", "defer_interrupts_in", "deferred", "one_interrupt", "raise_or_defer", "sigint_handler"]


class _Held:
    """The main thread's storage calls in progress, and a KeyboardInterrupt held for their end."""

    depth = 0
    pending = False


class _Deferred:
    """A block no KeyboardInterrupt may land in (on the main thread, where handlers run):
    one a handler raised meanwhile is raised as the outermost such block ends. It replaces
    an error the block raised (which stays its ``__context__``): the user asked to stop."""

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            _Held.depth += 1

    def __exit__(self, *exc: object) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        _Held.depth -= 1
        if _Held.depth == 0 and _Held.pending:
            _Held.pending = False
            raise KeyboardInterrupt


deferred = _Deferred()  # reentrant: the state lives in _Held


def raise_or_defer() -> None:
    """What a SIGINT handler calls instead of ``raise KeyboardInterrupt``."""
    if _Held.depth > 0:
        _Held.pending = True
        return
    raise KeyboardInterrupt


def sigint_handler(signum: int, frame: object) -> None:
    """Python's default SIGINT behaviour, but never inside a storage call."""
    raise_or_defer()


def defer_interrupts_in(cls: type[RDBStorage]) -> type[RDBStorage]:
    """Class decorator: every method an RDBStorage defines runs ``deferred`` (those that
    open a transaction, and the ones that call them; the cost is a counter per call)."""
    for name, attr in vars(RDBStorage).items():
        if callable(attr) and not name.startswith("__") and not isinstance(attr, (staticmethod, classmethod)):
            setattr(cls, name, _deferring(getattr(cls, name)))
    return cls


def _deferring(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def run(self: RDBStorage, *args: Any, **kwargs: Any) -> Any:
        with deferred:
            return call(self, *args, **kwargs)
    return run


class TrialInterrupt:
    """A Ctrl-C seen (``pressed``) and whether it may interrupt at once (``armed``: only
    while the objective trains; elsewhere it waits for the next safe point)."""

    pressed = False
    armed = False

    def raise_if_pressed(self) -> None:
        if self.pressed:
            raise KeyboardInterrupt


@contextmanager
def one_interrupt(state: TrialInterrupt, write: Callable[[str], None]) -> Iterator[None]:
    """Ctrl-C stops a trial loop without leaving a trial RUNNING.

    Optuna records a trial only when the objective raises; a KeyboardInterrupt raised while
    it creates the trial (``study.ask``, the sampler) or records it (``tell``) escapes and
    leaves the trial RUNNING (seen in CI, 2026-12-01: SIGTERM on a 2-worker launch). So the
    first Ctrl-C raises at once only inside the objective (and not inside its storage
    calls); elsewhere it is held until the objective starts (which fails the new trial with
    the reason) or the trial is recorded (the caller's ``raise_if_pressed``). Further
    presses are ignored while the trial is recorded. (A hung database still yields to
    SIGKILL/SIGTERM, and the heartbeat then fails the trial.)

    The KeyboardInterrupt can land in a garbage-collector callback, where Python prints and
    drops it (seen: a worker ran on after the parent's SIGINT), so ``pressed`` stays set and
    the caller raises again once the trial is recorded.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if state.pressed:
            write("still recording the interrupted trial; stopping in a moment")
            return
        state.pressed = True
        if state.armed:
            raise_or_defer()

    previous = signal.signal(signal.SIGINT, handler)
    optimize_log = logging.getLogger("optuna.study._optimize")
    optimize_log.addFilter(_no_interrupt_traceback)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        optimize_log.removeFilter(_no_interrupt_traceback)


def _no_interrupt_traceback(record: logging.LogRecord) -> bool:
    """Optuna logs an interrupted trial as failed, with a traceback; Ctrl-C is not a bug."""
    from search.objective import NotRun  # the objective's module imports torch; only needed here

    return not (record.exc_info and isinstance(record.exc_info[1], (KeyboardInterrupt, NotRun)))
