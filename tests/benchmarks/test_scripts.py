"""Every benchmark script runs in the one form benchmarks/_common.py documents:
``PYTHONPATH=. python benchmarks/NAME.py`` from the repository root, importing the
checkout by package name and never editing ``sys.path``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if 'if __name__ == "__main__":' in p.read_text())

# One interpreter runs every script's --help in turn (each would otherwise pay torch's import).
# sys.path holds the repository root (from PYTHONPATH=.) but not benchmarks/ itself, so a
# script that imports a sibling as a top-level module (``from _common import``) fails here.
DRIVER = """
import runpy, sys
failed = []
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    try:
        runpy.run_path(path, run_name="__main__")
        failed.append(f"{path}: --help did not exit")
    except SystemExit as exc:
        if exc.code not in (0, None):
            failed.append(f"{path}: --help exited {exc.code}")
    except Exception as exc:
        failed.append(f"{path}: {type(exc).__name__}: {exc}")
print("FAILED " + " | ".join(failed) if failed else "ALL OK")
"""


def test_there_are_scripts_to_check() -> None:
    assert len(SCRIPTS) >= 15 and ROOT / "benchmarks" / "replay.py" in SCRIPTS


def test_no_script_edits_sys_path() -> None:
    offenders = [p.name for p in SCRIPTS if re.search(r"sys\.path\.(insert|append)|sys\.path\s*=", p.read_text())]
    assert offenders == []


def test_every_usage_line_is_in_the_one_form() -> None:
    """Usage lines in the scripts' docstrings show the form they run in."""
    bad = [f"{p.name}: {line.strip()}" for p in SCRIPTS for line in p.read_text().splitlines()
           if re.search(r"(?<![\w/])python (-m )?benchmarks[/.]", line)
           and "PYTHONPATH=. python benchmarks/" not in line]
    assert bad == []


def test_every_script_answers_help_from_the_repository_root() -> None:
    env = {**os.environ, "PYTHONPATH": "."}
    out = subprocess.run([sys.executable, "-c", DRIVER, *(str(p.relative_to(ROOT)) for p in SCRIPTS)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.stdout.strip().splitlines()[-1] == "ALL OK", out.stdout[-3000:] + out.stderr[-3000:]
