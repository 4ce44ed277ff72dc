"""One module per subcommand, each with ``register(subparsers)`` setting ``run``."""

from search.commands import dashboard, export, launch, train

COMMANDS = (launch, train, dashboard, export)
