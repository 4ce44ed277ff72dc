"""The CI skip policy (tests/skip_policy.py), run on small test files in a pytester sandbox."""

from __future__ import annotations

import pytest
import torch

SOURCE = """
import pytest

def test_runs():
    pass

def test_needs_a_tool():
    pytest.skip("chromium not installed")

@pytest.mark.skipif(True, reason="initdb not found")
def test_skipif():
    pass

@pytest.mark.cuda
def test_gpu():
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_known_bug():
    assert False
"""


@pytest.fixture
def sandbox(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest('pytest_plugins = ["tests.skip_policy"]')
    pytester.makepyfile(test_sample=SOURCE)
    return pytester


GPU = torch.cuda.is_available()


def test_under_ci_only_the_gpu_test_may_skip(sandbox: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    result = sandbox.runpytest("-ra")
    # test_skipif is turned at setup (an error), test_needs_a_tool in its call (a failure).
    result.assert_outcomes(passed=2 if GPU else 1, failed=1, errors=1, skipped=0 if GPU else 1, xfailed=1)
    result.stdout.fnmatch_lines(["*only a test marked @pytest.mark.cuda may skip*chromium not installed*"])
    result.stdout.fnmatch_lines(["*only a test marked @pytest.mark.cuda may skip*initdb not found*"])
    result.stdout.fnmatch_lines([f"*- skips: {0 if GPU else 1} -*"])
    if not GPU:
        result.stdout.fnmatch_lines(["SKIPPED test_sample.py::test_gpu: no CUDA device*"])


def test_outside_ci_skips_stay_skips_and_are_listed(sandbox: pytest.Pytester,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = sandbox.runpytest("-ra")
    result.assert_outcomes(passed=2 if GPU else 1, skipped=2 if GPU else 3, xfailed=1)
    result.stdout.fnmatch_lines(["*- skips: *", "SKIPPED test_sample.py::test_needs_a_tool: chromium not installed"])


def test_a_module_skipped_at_import_fails_under_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makeconftest('pytest_plugins = ["tests.skip_policy"]')
    pytester.makepyfile(
        test_mod='import pytest\npytest.importorskip("no_such_module_here")\n\ndef test_x():\n    pass\n')
    result = pytester.runpytest()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*this module skipped*no_such_module_here*"])
