"""Output paths of the commands, checked before any work starts.

A command that trains for minutes and then cannot write its file has wasted the run, so
``train --checkpoint``, ``report --out`` and ``export --out`` check their destination
first: nothing is created by the check, and a bad path is one ``UserInputError`` line.
Study names become folder names through ``safe_name`` only.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from model.errors import UserInputError

__all__ = ["check_output_dir", "check_output_file", "safe_name", "study_files"]

_NAME_MAX_FALLBACK = 255  # the usual limit where pathconf cannot tell


def safe_name(name: str) -> str:
    """A study name as one folder name: no separators, no climbing out of reports/.

    Injective: a name that cleaning changes gets a short hash of the original, so two
    studies (``exp 1``, ``exp_1``) never share one default folder and overwrite each
    other's report. Not shortened: check_output_dir refuses a name longer than the file
    system allows, and --out picks another folder.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "study"
    if cleaned == name:
        return name
    return f"{cleaned}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def study_files(storage_url: str | None) -> list[Path]:
    """The files of a SQLite study (database, -journal, -wal, -shm): never an output."""
    if not storage_url:
        return []
    try:
        parsed = make_url(storage_url)
    except ArgumentError:
        return []
    db = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if not db or db == ":memory:":
        return []
    db = db.removeprefix("file:").split("?")[0]
    return [Path(db + suffix) for suffix in ("", "-journal", "-wal", "-shm")]


def check_output_dir(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` is, or can be created as, a writable folder."""
    path = Path(path)
    # os.path's exists/isdir/isfile, not Path's: they answer False for a name too long
    # where Path.exists raises (Python 3.11), and the length is reported below.
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserInputError(f"cannot write {what} {path}: it is a file, not a folder")
    _check_creatable(path, what)
    return path


def check_output_file(path: str | os.PathLike[str], what: str, storage_url: str | None = None) -> Path:
    """``path`` is, or can be created as, a writable file (its folder may be missing).

    An existing file is overwritten, as any export tool does, except the study's own
    database files (``storage_url``), compared as resolved paths (symlinks followed).
    """
    path = Path(path)
    if os.path.isdir(path):
        raise UserInputError(f"cannot write {what} {path}: it is a folder; pass a file path")
    for protected in study_files(storage_url):
        if _same_file(path, protected):
            raise UserInputError(f"cannot write {what} {path}: it is the study database's own file "
                                 f"{protected.name}; pass another path")
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise UserInputError(f"cannot write {what} {path}: permission denied")
        if not os.access(path.absolute().parent, os.W_OK | os.X_OK):
            # Written through a temporary file beside it and renamed, so a failed write
            # never leaves half a file: the folder must take a new file.
            raise UserInputError(f"cannot write {what} {path}: permission denied in {path.absolute().parent}")
        return path
    _check_creatable(path, what)
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


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
