"""`lstm-search dashboard` without a browser: its errors, and what its HTTP server serves."""

from __future__ import annotations

import json
import re
import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.artifacts import FileSystemArtifactStore

from search.cli import main
from search.commands._existing import open_existing_storage
from search.commands.dashboard import make_dashboard_server
from tests.search.dash_study import BEST_NUMBER, STUDY, SmallStudy, make_small_study

# Talk to the local server directly, whatever proxy the environment (or an earlier test) set.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> SmallStudy:
    return make_small_study(tmp_path_factory.mktemp("dash"))


@pytest.fixture(scope="module")
def base_url(small: SmallStudy) -> Iterator[str]:
    server = make_dashboard_server(open_existing_storage(small.url), FileSystemArtifactStore(small.artifacts),
                                   "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _get(url: str) -> bytes:
    with _LOCAL.open(url, timeout=30) as r:
        return r.read()


def test_api_lists_study_and_serves_the_best_checkpoint(small: SmallStudy, base_url: str) -> None:
    studies = json.loads(_get(base_url + "/api/studies"))["study_summaries"]
    assert [s["study_name"] for s in studies] == [STUDY]
    best = small.study.best_trial
    blob = _get(f"{base_url}/artifacts/{small.study._study_id}/{best._trial_id}/{small.checkpoint_id}")
    assert blob == (small.artifacts / small.checkpoint_id).read_bytes()
    assert best.number == BEST_NUMBER


def test_frontend_is_bundled_not_fetched(base_url: str) -> None:
    # The page must work offline: every script and stylesheet comes from this server.
    html = _get(base_url + "/dashboard").decode()
    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert sources and all(not s.startswith(("http:", "https:", "//")) for s in sources), sources
    bundle = next(s for s in sources if s.endswith(".js"))
    assert len(_get(base_url + bundle)) > 1_000_000  # the whole React app, not a loader stub


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(args)
    err = capsys.readouterr().err
    return rc, err


def test_unknown_study_is_one_line_exit_2(small: SmallStudy, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _run(["dashboard", "--storage", small.url, "--study", "nope", "--port", "0"], capsys)
    assert rc == 2 and err.count("\n") == 1
    assert "no study named 'nope'" in err and STUDY in err


def test_missing_sqlite_file_is_refused_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "typo.db"
    rc, err = _run(["dashboard", "--storage", f"sqlite:///{db}", "--port", "0"], capsys)
    assert rc == 2 and "no SQLite study database" in err and err.count("\n") == 1
    assert not db.exists() and not (tmp_path / "typo.artifacts").exists()


@pytest.mark.parametrize("storage", ["nonsense", "postgresql+nodriver://x/y"])
def test_bad_storage_url_is_one_line(storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _run(["dashboard", "--storage", storage, "--port", "0"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "storage" in err


def test_bad_or_busy_port(small: SmallStudy, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _run(["dashboard", "--storage", small.url, "--port", "70000"], capsys)
    assert rc == 2 and "--port must be in 0..65535" in err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        rc, err = _run(["dashboard", "--storage", small.url, "--port", str(busy)], capsys)
    assert rc == 2 and "already in use" in err and err.count("\n") == 1
