"""pytest plugin: under CI=true nothing skips except a test that needs a GPU on a machine
without one.

A skip for a missing tool or package (no compiler, no chromium, no PostgreSQL, no
MNIST) would let CI pass while the tests that matter did not run, so under CI such a
skip is reported as a failure. The one allowed skip goes through one door: the ``cuda``
marker, which skips with ``NoGpu`` when torch sees no CUDA device. Every run ends with
the list of skips, so a CI log shows what did not run.

Loaded by tests/conftest.py (``pytest_plugins``) and by this plugin's own tests.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

__all__ = ["NoGpu", "in_ci"]

MARKER = "cuda"
_POLICY = "CI=true: only a test marked @pytest.mark.cuda may skip, and only for a missing GPU"


class NoGpu(pytest.skip.Exception):  # type: ignore[misc,name-defined]
    """The skip of a ``cuda``-marked test on a machine without a CUDA device."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: needs a CUDA device; the one test CI may skip (no GPU)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker(MARKER) is None:
        return
    import torch  # only for marked tests: the plugin itself stays cheap to load

    if not torch.cuda.is_available():
        raise NoGpu("no CUDA device (hardware absent)", _use_item_location=True)


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not report.skipped or hasattr(report, "wasxfail"):
        return report
    if call.excinfo is not None and isinstance(call.excinfo.value, NoGpu):
        if isinstance(report.longrepr, tuple):  # "Skipped: ..." rather than the class's dotted name
            report.longrepr = (*report.longrepr[:2], f"Skipped: {call.excinfo.value.msg}")
        return report
    if not in_ci():
        return report
    report.outcome = "failed"
    report.longrepr = f"{_POLICY}; this test skipped: {_skip_reason(report)}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    # A whole module skipped at import (pytest.importorskip, allow_module_level) is the same
    # hole one level up; no GPU test is skipped that way.
    report = yield
    if report.skipped and in_ci():
        report.outcome = "failed"
        report.longrepr = f"{_POLICY}; this module skipped: {_skip_reason(report)}"
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if not hasattr(r, "wasxfail")]
    terminalreporter.section(f"skips: {len(skipped)}", sep="-")
    for report in skipped:
        terminalreporter.line(f"SKIPPED {report.nodeid or report.fspath}: {_skip_reason(report)}")
    if in_ci():
        terminalreporter.line(_POLICY)
