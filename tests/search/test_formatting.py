"""Numbers as people read them: three digits, more where three would change the setting."""

from __future__ import annotations

import math

import pytest

from search.formatting import short_number
from search.progress import format_params
from search.report.tables import format_value


@pytest.mark.parametrize("value,text", [
    (0.000335123, "0.000335"), (0.441234, "0.441"), (128.0, "128"), (0.0, "0"), (1.0, "1"),
    (0.9999, "0.9999"), (0.999, "0.999"), (0.99949, "0.99949"), (0.99, "0.99"), (1e-6, "1e-06"),
    (-0.25, "-0.25"), (float("inf"), "inf"),
])
def test_short_number(value: float, text: str) -> None:
    assert short_number(value) == text


def test_short_number_nan() -> None:
    assert short_number(math.nan) == "nan"


def test_decays_near_one_stay_distinct_in_trial_lines_and_tables() -> None:
    # Before: ema=0.9999 was printed "1", the same as a setting that never averages.
    assert format_params({"ema": 0.9999, "lr": 0.00123456}) == "ema=0.9999 lr=0.00123"
    assert format_value("ema", 0.9999) == "0.9999"
    assert format_value("ema", 0.0) == "0"
