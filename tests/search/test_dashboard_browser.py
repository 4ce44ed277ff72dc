"""A real browser (Debian's headless chromium) reads a small study in `lstm-search dashboard`.

The dashboard runs as the user runs it, `lstm-search dashboard` in its own process, and
Selenium drives chromium through Debian's chromedriver by explicit path, so Selenium
Manager never tries to download a browser or driver. Screenshots stay in tmp_path.
Skipped only outside CI when chromium is not installed; under CI (CI=true) it must run.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.search.dash_study import BEST_NUMBER, STUDY, SmallStudy, make_small_study

# Talk to the local server directly, whatever proxy the environment (or an earlier test) set.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Offline-safe: no sandbox (root in a container), no GPU, no update or network chatter.
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1400,1000")
WAIT_SECONDS = 60  # the page polls the API; a loaded 2-core CI box is slow to render

pytestmark = pytest.mark.slow


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium (pip install -e '.[test]')")
    if missing and os.environ.get("CI") != "true":
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver); "
                    "required under CI")
    assert not missing, f"CI needs {missing} (apt-get install chromium chromium-driver)"


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[SmallStudy, str]]:
    """The small study served by `lstm-search dashboard --port 0` in a child process."""
    _need_browser()
    small = make_small_study(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "dashboard", "--storage", small.url, "--port", "0",
         "--study", STUDY], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        try:
            first = lines.get(timeout=WAIT_SECONDS)
        except queue.Empty:
            pytest.fail("dashboard printed no address within a minute")
        assert first.startswith("optuna-dashboard at http://127.0.0.1:"), first
        url = first.split()[2]
        assert url.endswith(f"/dashboard/studies/{small.study._study_id}"), url
        with _LOCAL.open(url, timeout=30) as r:  # answers before the browser starts
            assert r.status == 200
        yield small, url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never fetch anything
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def _page_shows(driver, url: str, needles: list[str], shot: Path, scroll_to: str | None = None) -> str:
    """Load ``url``, wait until the body text holds every needle, screenshot it.

    ``scroll_to``: text of an element to bring into view first, so the screenshot shows it.
    """
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    text = ""

    def ready(d) -> bool:
        nonlocal text
        text = d.find_element(By.TAG_NAME, "body").text
        return all(n in text for n in needles)

    try:
        WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.5).until(ready)
    except TimeoutException:
        driver.save_screenshot(str(shot))
        missing = [n for n in needles if n not in text]
        pytest.fail(f"{url} never showed {missing} (screenshot {shot}); page text:\n{text[:2000]}")
    if scroll_to is not None:
        element = driver.find_element(By.XPATH, f"//*[text()='{scroll_to}']")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    driver.save_screenshot(str(shot))
    return text


def test_browser_shows_study_trials_and_best_checkpoint(dashboard: tuple[SmallStudy, str], tmp_path: Path) -> None:
    _small, study_url = dashboard
    driver = _browser()
    try:
        overview = _page_shows(driver, study_url, [
            STUDY, f"Best Trial (number={BEST_NUMBER})", "Study Artifacts",
            "history.png", "importance.png", "report.md",
        ], tmp_path / "study.png")
        assert "hidden_size: 48" in overview, overview  # the best trial's params, readable

        trials = _page_shows(driver, f"{study_url}/trials?numbers={BEST_NUMBER}", [
            "4 Trials", "Trial 0", "Trial 2", "Pruned", f"Trial {BEST_NUMBER} (trial_id=",
            "Intermediate Values", "0.9125", "User Attributes", "train_loss", "epoch_seconds",
            f"trial-{BEST_NUMBER}-checkpoint.pt",
        ], tmp_path / "best_trial.png", scroll_to=f"trial-{BEST_NUMBER}-checkpoint.pt")
        assert "checkpoint_artifact" in trials

        _page_shows(driver, f"{study_url}/note", ["Summary", "91.25%", "Report files"], tmp_path / "note.png")
    finally:
        driver.quit()
    for name in ("study.png", "best_trial.png", "note.png"):
        shot = tmp_path / name
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000, name
