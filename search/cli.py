"""`lstm-search`: the command line. Each subcommand lives in ``search/commands/<name>.py``.

How errors become exit codes (bad input: one line, exit 2) lives in ``search/exits.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from search.commands import COMMANDS
from search.commands._common import HELP_FORMAT
from search.exits import PROG, run_reporting

__all__ = ["build_parser", "main"]


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
    return run_reporting(args.command, lambda: args.run(args),
                         interrupt_hint="interrupted; run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())
