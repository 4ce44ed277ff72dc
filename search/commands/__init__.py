"""One module per subcommand, each with ``register(subparsers)`` setting ``run``."""

from search.commands import launch, train

COMMANDS = (launch, train)
