"""`lstm-search dashboard`: optuna-dashboard on the study storage and its artifact folder.

Equivalent to ``optuna-dashboard STORAGE --artifact-dir DIR`` but with the artifact folder
derived from the storage exactly as ``launch`` derives it, and bound to 127.0.0.1 by
default: the dashboard can edit notes and delete artifacts, and has no login.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import sys
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna_dashboard
from optuna.storages import BaseStorage

from model.errors import UserInputError
from search.artifacts import add_artifacts_arg, artifact_dir_for, open_artifact_store
from search.commands._common import HELP_FORMAT, add_storage_arg, study_name_arg
from search.commands._existing import open_existing_storage
from search.redact import redact_url
from search.study import load_existing_study

if TYPE_CHECKING:  # a Protocol in a private module: for annotations only
    from optuna.artifacts._protocol import ArtifactStore

__all__ = ["make_dashboard_server", "register", "run"]


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    # The page fetches several API routes at once; one thread each keeps it responsive.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per API poll (every few seconds per open tab) would bury the useful output


def make_dashboard_server(
    storage: BaseStorage, artifact_store: ArtifactStore | None, host: str, port: int
) -> WSGIServer:
    """A bound (not yet serving) dashboard server; port 0 picks a free port."""
    app = optuna_dashboard.wsgi(storage, artifact_store=artifact_store)
    return make_server(host, port, app, server_class=_ThreadedServer, handler_class=_QuietHandler)


def _is_loopback(address: str) -> bool:
    """Whether the bound address is reachable from this machine only."""
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dashboard", help="browse studies, trials and artifacts in optuna-dashboard",
        description="Serve optuna-dashboard on the study storage, with the artifact folder "
        "(best checkpoints, report figures) the other commands use. Ctrl-C stops it.",
        formatter_class=HELP_FORMAT,
    )
    add_storage_arg(p)
    add_artifacts_arg(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 exposes the dashboard (no login) to the network")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free port)")
    p.add_argument("--study", type=study_name_arg(), default=None,
                   help="check this study exists and print its page's address")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise UserInputError(f"--port must be in 0..65535 (got {args.port})")
    storage = open_existing_storage(args.storage)
    study = load_existing_study(args.study, storage) if args.study else None
    store = open_artifact_store(args.storage, args.artifacts)
    try:
        server = make_dashboard_server(storage, store, args.host, args.port)
    except OSError as exc:
        hint = " (already in use; pick another --port)" if exc.errno == errno.EADDRINUSE else ""
        raise UserInputError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}{hint}") from None
    host, port = server.server_address[:2]
    if not _is_loopback(str(host)):
        print(f"warning: the dashboard listens on {args.host} ({host}), not only on this machine: anyone who "
              f"can reach port {port} can read and edit the study, since optuna-dashboard has no login; "
              "use --host 127.0.0.1 (the default) to keep it local", file=sys.stderr, flush=True)
    url = f"http://{host}:{port}/dashboard/"
    if study is not None:
        url += f"studies/{study._study_id}"
    try:
        # Flushed at once: scripts and tests read the address (with the real port) from this
        # line, and may send Ctrl-C as soon as they have it: hence inside the try.
        print(f"optuna-dashboard at {url} (storage {redact_url(args.storage)}, artifacts "
              f"{artifact_dir_for(args.storage, args.artifacts)}); Ctrl-C stops", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("dashboard stopped")
    finally:
        server.server_close()
    return 0
