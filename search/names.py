"""Which study names every command accepts (launch, train, report, export, dashboard,
compare-cells, --warm-start): one rule, checked before any storage is opened.

A blank name (``''``, ``'   '``) would create and run a study nobody can tell apart in a
listing; leading or trailing spaces make two names that look identical; a control
character (a newline, an escape) breaks every line the tools print. Such names are
refused, never silently cleaned: cleaning could point two spellings at one study.
"""

from __future__ import annotations

import unicodedata

from model.errors import UserInputError

__all__ = ["MAX_STUDY_NAME", "check_study_name"]

MAX_STUDY_NAME = 512  # the length of Optuna's study_name column (PostgreSQL enforces it)


def check_study_name(name: str, flag: str = "--study") -> str:
    """``name`` unchanged if a study may be called so; else UserInputError saying why."""
    if not name.strip():
        raise UserInputError(f"{flag} must not be blank (got {name!r}); give the study a name")
    if name != name.strip():
        raise UserInputError(f"{flag} {name!r} starts or ends with white space; pass {name.strip()!r}")
    bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
    if bad is not None:
        raise UserInputError(f"{flag} {name!r} holds the control character {bad!r}; use printable characters")
    if len(name) > MAX_STUDY_NAME:
        raise UserInputError(f"{flag} is {len(name)} characters long; the storage holds at most {MAX_STUDY_NAME}")
    return name
