"""Many machines: the same CLI against a real PostgreSQL server that this module starts.

The server is initialised in a temporary directory, listens on 127.0.0.1 on a free port
(its unix socket in the same directory), and is stopped and removed afterwards. As root,
initdb refuses to run, so the server runs as the ``postgres`` user Debian's package makes.
Outside CI a machine without PostgreSQL skips these tests; under CI=true they must run.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.search.conftest import launch_args, start_cli, states
from tests.search.test_crash_resume import kill_one_of_two_workers


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    pg_bin = _pg_bin()
    missing = None
    if pg_bin is None:
        missing = "PostgreSQL server binaries (initdb) not found; apt-get install postgresql"
    else:
        try:
            import psycopg  # noqa: F401  (SQLAlchemy 2.1's default postgresql:// driver)
        except ImportError:
            missing = "psycopg not installed; pip install 'psycopg[binary]'"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {missing}")
        pytest.skip(missing)
    as_root = os.geteuid() == 0
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    home = Path(tempfile.mkdtemp(prefix="lstm-search-pg-"))  # not under pytest's root-only tmp
    if as_root:
        shutil.chown(home, "postgres")
    data, port = home / "data", _free_port()

    def pg(tool: str, *args: str) -> None:
        subprocess.run([*run_as, str(pg_bin / tool), *args], check=True, capture_output=True, text=True)

    try:
        pg("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {home} -c fsync=off"
        pg("pg_ctl", "-D", str(data), "-o", options, "-l", str(home / "server.log"), "-w", "start")
        try:
            pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "studies")
            yield f"postgresql://postgres@127.0.0.1:{port}/studies"
        finally:
            pg("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_launch_workers_on_postgres(postgres_url: str, tiny_space: Path, fake_root: Path) -> None:
    proc = start_cli(launch_args("pg-workers", 12, postgres_url, tiny_space, fake_root, "--workers", "2"))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    count = states(postgres_url, "pg-workers")
    assert count["COMPLETE"] + count["PRUNED"] >= 12
    assert count["FAIL"] == 0 and count["RUNNING"] == 0


@pytest.mark.slow
def test_killed_worker_on_postgres_then_resume(postgres_url: str, slow_space: Path, fake_root: Path) -> None:
    delays = kill_one_of_two_workers(postgres_url, slow_space, fake_root, n_trials=12)
    print(f"PostgreSQL: killed trial failed {delays['failed_after']:.1f}s and re-run "
          f"{delays['retried_after']:.1f}s after SIGKILL")
    # The same command with a larger N resumes the study on the server to N in total.
    args = launch_args("killed", 14, postgres_url, slow_space, fake_root, "--workers", "1", "--resume")
    proc = start_cli(args)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "resuming study 'killed'" in out
    count = states(postgres_url, "killed")
    assert count["COMPLETE"] + count["PRUNED"] == 14
    assert count["RUNNING"] == 0 and count["WAITING"] == 0


def test_no_password_in_what_launch_and_dashboard_print(postgres_url: str, tiny_space: Path,
                                                        fake_root: Path) -> None:
    """The server trusts local connections, so a URL with a password connects: everything
    the commands print on a live server (plan, banner) must show it as ***."""
    url = postgres_url.replace("postgres@", "postgres:hunter2@")
    dry = start_cli(launch_args("pg-secret", 2, url, tiny_space, fake_root, "--dry-run"))
    out, _ = dry.communicate(timeout=120)
    assert dry.returncode == 0, out
    assert "hunter2" not in out and "postgres:***@" in out, out
    dash = start_cli(["dashboard", "--storage", url, "--port", "0"])
    lines = []
    for line in dash.stdout:
        lines.append(line)
        if "optuna-dashboard at" in line:
            break
    dash.kill()
    dash.wait()
    assert lines and "hunter2" not in "".join(lines) and "postgres:***@" in lines[-1], lines
