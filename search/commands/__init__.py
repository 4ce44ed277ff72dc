"""One module per subcommand, each with ``register(subparsers)`` setting ``run``."""

from search.commands import compare_cells, dashboard, export, launch, report, train

COMMANDS = (launch, train, report, compare_cells, dashboard, export)
