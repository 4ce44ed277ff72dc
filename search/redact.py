"""Storage URLs as the tool may show them: a password is never printed, logged or written.

One helper for every place a URL reaches the user (command output, error lines, reports,
the dashboard's banner): ``postgresql://user:secret@host/db`` becomes
``postgresql://user:***@host/db``. A URL SQLAlchemy cannot parse is still scrubbed: the
text between ``user:`` and ``@`` of anything that looks like ``scheme://user:pass@``.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["redact_text", "redact_url"]

# scheme://user:password@ (also without the scheme's //, as a mistyped URL may be)
_LOOSE_PASSWORD = re.compile(r":[^\s:/@]*@")
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*:(?://)?[^\s:/@]*):(?P<password>[^\s@]*)@")


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ***."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        # Mistyped (postgresql//u:pw@h): any ":text@" may be a password; hide them all.
        return _LOOSE_PASSWORD.sub(":***@", str(url))
    if parsed.password is None:
        return url  # e.g. a SQLite path, which may itself hold ':' and '@'
    return parsed.render_as_string(hide_password=True)


def redact_text(text: str) -> str:
    """Any ``scheme://user:password@`` inside free text (an error message) with the password hidden."""
    return _USERINFO.sub(lambda m: f"{m.group('head')}:***@", text)
