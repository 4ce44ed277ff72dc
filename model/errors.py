"""Errors caused by what the user passed in.

The CLI turns any ``UserInputError`` into one line on stderr and exit code 2; everything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "UserInputError"]


class UserInputError(Exception):
    """Bad input: the message names what is wrong and how to fix it."""


class ConfigError(UserInputError):
    """A hyperparameter value is invalid."""


class DataError(UserInputError):
    """The data set is missing, unreadable or corrupt."""
