"""Output paths of the commands, checked before any work starts.

A command that trains for minutes and then cannot write its file has wasted the run, so
``train --checkpoint``, ``report --out`` and ``export --out`` check their destination
first: nothing is created by the check, and a bad path is one ``UserInputError`` line.
Study names become folder names through ``safe_name`` only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from model.errors import UserInputError

__all__ = ["check_output_dir", "check_output_file", "safe_name"]

_NAME_MAX_FALLBACK = 255  # the usual limit where pathconf cannot tell


def safe_name(name: str) -> str:
    """A study name as one folder name: no separators, no climbing out of reports/.

    Not shortened: two long names must not share a folder; check_output_dir refuses one
    longer than the file system allows, and --out picks another folder.
    """
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "study"


def check_output_dir(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` is, or can be created as, a writable folder."""
    path = Path(path)
    # os.path's exists/isdir/isfile, not Path's: they answer False for a name too long
    # where Path.exists raises (Python 3.11), and the length is reported below.
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserInputError(f"cannot write {what} {path}: it is a file, not a folder")
    _check_creatable(path, what)
    return path


def check_output_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` is, or can be created as, a writable file (its folder may be missing)."""
    path = Path(path)
    if os.path.isdir(path):
        raise UserInputError(f"cannot write {what} {path}: it is a folder; pass a file path")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UserInputError(f"cannot write {what} {path}: permission denied")
    _check_creatable(path, what)
    return path


def _check_creatable(path: Path, what: str) -> None:
    """The missing part of ``path`` can be made: the nearest existing ancestor is a
    writable folder and no missing component is too long for a file name."""
    missing: list[str] = []
    existing = path.absolute()
    while not os.path.exists(existing):
        missing.append(existing.name)
        existing = existing.parent
    if not os.path.isdir(existing):
        raise UserInputError(f"cannot write {what} {path}: {existing} is a file, so nothing can be created under it")
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = _NAME_MAX_FALLBACK
    for name in missing:
        if len(os.fsencode(name)) > name_max:
            raise UserInputError(f"cannot write {what} {path}: the name {name[:40]}... is longer than {name_max} bytes")
    if missing and not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(f"cannot write {what} {path}: permission denied in {existing}")
    if not missing and os.path.isdir(path) and not os.access(path, os.W_OK | os.X_OK):
        raise UserInputError(f"cannot write {what} {path}: permission denied")
    if not missing and not os.path.isdir(path) and not os.access(existing.parent, os.W_OK | os.X_OK):
        raise UserInputError(f"cannot write {what} {path}: permission denied in {existing.parent}")
