"""Copy-pastable ``lstm-search train`` commands that rebuild a report's runs exactly.

Every field of the config is written out (not only those that differ from a preset), so
the command keeps meaning the same run when a preset or a default changes later. The
flag of a field is ``--`` + its name with ``-`` for ``_``, as ``lstm-search train``
declares them; tests parse these commands with the real parser to keep the two in step.
"""

from __future__ import annotations

import shlex
from dataclasses import fields
from typing import Any

from model.config import field_flag

__all__ = ["format_flag_value", "train_command", "trial_command"]

PROG = "lstm-search"


def format_flag_value(value: Any) -> str:
    """repr of a float is the shortest text that parses back to the same float."""
    if isinstance(value, float):
        return repr(value)
    return shlex.quote(str(value))


def train_command(cfg: Any, subset: int | None = None) -> str:
    """``lstm-search train`` with every field of ``cfg`` and the final runs' data: all
    training images (``--val-size 0``), or ``--subset N`` of them when the report used one."""
    parts = [PROG, "train"]
    for f in fields(cfg):
        text = format_flag_value(getattr(cfg, f.name))
        # "--forget-bias=-1.0": a value starting with "-" must not look like a flag.
        parts.append(f"{field_flag(f.name)}={text}" if text.startswith("-") else f"{field_flag(f.name)} {text}")
    parts.append("--val-size 0")
    if subset is not None:
        parts.append(f"--subset {subset}")
    return " ".join(parts)


def trial_command(study: str, trial: int, storage: str | None = None) -> str:
    """Retrain a stored trial from its recorded config (``train --study S --trial N``)."""
    cmd = f"{PROG} train --study {shlex.quote(study)} --trial {trial}"
    if storage is not None:
        cmd += f" --storage {shlex.quote(storage)}"
    return cmd + " --val-size 0"
