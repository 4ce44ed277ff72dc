"""How a command's outcome becomes an exit code and at most one line on stderr.

One home for the mapping, shared by the CLI and by spawned workers (which run no CLI):
bad input (``UserInputError``) is one line and exit 2; trials that keep failing are one
line and exit 3 (a worker exiting so is not restarted: it would fail again); Ctrl-C is
exit 130 after the running trial has been recorded; a closed output pipe exits 141
quietly; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from model.errors import UserInputError
from search.interrupts import raise_or_defer, sigint_handler
from search.redact import redact_text
from search.runner import TrialsKeepFailing

__all__ = [
    "EXIT_BAD_INPUT", "EXIT_BROKEN_PIPE", "EXIT_INTERRUPTED", "EXIT_TRIALS_FAILING", "PROG", "Interrupted",
    "interruptible", "run_reporting",
]

PROG = "lstm-search"
EXIT_BAD_INPUT = 2
EXIT_TRIALS_FAILING = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # what a shell reports for a writer killed by SIGPIPE


@contextmanager
def _sigint_raises() -> Iterator[None]:
    """During a command, SIGINT raises KeyboardInterrupt but never inside a storage call
    (search/interrupts.py), also when the process started with SIGINT ignored: a shell
    script's background job (``nohup lstm-search launch ... &``) inherits SIG_IGN, and
    ``kill -INT`` would then do nothing, leaving ``kill -TERM``/``-KILL`` (a lost trial) as
    the only way to stop it. A handler someone else installed is kept."""
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if previous not in (signal.SIG_IGN, signal.default_int_handler):
        yield
        return
    signal.signal(signal.SIGINT, sigint_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Interrupted:
    """The first Ctrl-C or SIGTERM that came (``signum``), set by ``interruptible``'s handler.

    The handler raises KeyboardInterrupt at once, but Python prints and drops an exception
    raised inside a garbage-collector callback or a ``__del__`` (seen in CI: a report ran on
    to the end after its SIGINT), so a loop also calls ``check`` after each step."""

    signum: int | None = None

    def check(self) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt


@contextmanager
def interruptible() -> Iterator[Interrupted]:
    """Ctrl-C and SIGTERM (``kill PID``) both raise KeyboardInterrupt in the block (not
    inside a storage call: search/interrupts.py) and stay noted in the yielded
    ``Interrupted``; the previous handlers come back after it."""
    seen = Interrupted()
    if threading.current_thread() is not threading.main_thread():  # signal.signal works only there
        yield seen
        return

    def handler(signum: int, frame: object) -> None:
        if seen.signum is None:
            seen.signum = signum
        raise_or_defer()

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield seen
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def run_reporting(label: str, body: Callable[[], int | None], interrupt_hint: str = "") -> int:
    """Run ``body``; errors the user can act on become one line ``PROG label: error: ...``."""
    try:
        with _sigint_raises():
            code = int(body() or 0)
        sys.stdout.flush()  # a reader that has gone (`... | head -1`) shows here, inside the try
        return code
    except BrokenPipeError:
        # The reader of our output left early: not an error worth a traceback. Point stdout at
        # /dev/null so the interpreter's own flush at exit does not raise it again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except UserInputError as exc:
        # Last line of defence: a driver's message may quote a URL with its password.
        print(f"{PROG} {label}: error: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrialsKeepFailing as exc:
        print(f"{PROG} {label}: error: {exc}", file=sys.stderr)
        return EXIT_TRIALS_FAILING
    except KeyboardInterrupt:
        if interrupt_hint:
            print(f"\n{PROG} {label}: {interrupt_hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
