"""`lstm-search`: the command line. Each subcommand lives in ``search/commands/<name>.py``.

Bad input (any ``UserInputError``) prints one line and exits 2; Ctrl-C exits 130 after
the running trial has been recorded; a closed output pipe exits 141 (SIGPIPE) quietly;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from model.errors import UserInputError
from search.commands import COMMANDS
from search.commands._common import HELP_FORMAT

__all__ = ["build_parser", "main"]

PROG = "lstm-search"


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (plus a pointer to --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Hyperparameter search for a hand-written LSTM on sequential MNIST.",
        formatter_class=HELP_FORMAT,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # a reader that has gone (`... | head -1`) shows here, inside the try
        return code
    except BrokenPipeError:
        # The reader of our output left early: not an error worth a traceback. Point stdout at
        # /dev/null so the interpreter's own flush at exit does not raise it again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except UserInputError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG} {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
