"""A throwaway PostgreSQL server on loopback, for the tests and the benchmarks.

The server is initialised in a temporary directory, listens on 127.0.0.1 on a free port
(its unix socket in the same directory), and is stopped and removed afterwards. As root,
initdb refuses to run, so the server runs as the ``postgres`` user Debian's package makes.
One home for this code: tests/search/test_postgres.py's fixture and
benchmarks/bench_workers_postgres.py both start their server here.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PgServer", "missing_postgres", "pg_bin", "postgres_server"]


def pg_bin() -> Path | None:
    """The directory of the newest installed server's binaries (Debian's, else PATH's)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def missing_postgres() -> str | None:
    """Why a server cannot be started here (a line saying what to install), or None."""
    if pg_bin() is None:
        return "PostgreSQL server binaries (initdb) not found; apt-get install postgresql"
    try:
        import psycopg  # noqa: F401  (SQLAlchemy 2.1's default postgresql:// driver)
    except ImportError:
        return "psycopg not installed; pip install 'psycopg[binary]'"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    """A running server: its URL for the ``studies`` database and pg_ctl at hand."""

    bin: Path
    home: Path
    port: int
    options: str
    run_as: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/studies"

    @property
    def data(self) -> Path:
        return self.home / "data"

    def tool(self, name: str, *args: str) -> str:
        done = subprocess.run([*self.run_as, str(self.bin / name), *args], check=True,
                              capture_output=True, text=True)
        return done.stdout

    def pg_ctl(self, action: str, *args: str) -> None:
        self.tool("pg_ctl", "-D", str(self.data), *args, action)

    def restart(self) -> None:
        """A fast stop then a start: every client connection is closed by the server.

        Not ``pg_ctl restart``: run through runuser, the postmaster that one starts did not
        outlive the pg_ctl process (gone a second later, no line in its log); ``start``'s does.
        """
        self.stop()
        self.start()

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "fast", "-w")

    def start(self) -> None:
        self.pg_ctl("start", "-o", self.options, "-l", str(self.home / "server.log"), "-w")

    def sql(self, query: str) -> str:
        """One query through psql, as the superuser; the unaligned, tuples-only result."""
        return self.tool("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "studies",
                         "-At", "-c", query).strip()


@contextmanager
def postgres_server(max_connections: int | None = None, extra: str = "") -> Iterator[PgServer]:
    """Start a fresh server with a ``studies`` database; stop and delete it on exit."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise RuntimeError(missing_postgres())
    as_root = os.geteuid() == 0
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    home = Path(tempfile.mkdtemp(prefix="lstm-search-pg-"))  # not under pytest's root-only tmp
    if as_root:
        shutil.chown(home, "postgres")
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {home} -c fsync=off"
    if max_connections is not None:
        options += f" -c max_connections={max_connections}"
    if extra:
        options += f" {extra}"
    server = PgServer(bin=bin_dir, home=home, port=port, options=options, run_as=run_as)
    try:
        server.tool("initdb", "-D", str(server.data), "-U", "postgres", "-A", "trust", "--no-sync")
        server.pg_ctl("start", "-o", options, "-l", str(home / "server.log"), "-w")
        try:
            server.tool("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "studies")
            yield server
        finally:
            server.pg_ctl("stop", "-m", "immediate")
    finally:
        shutil.rmtree(home, ignore_errors=True)
