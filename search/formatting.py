"""How numbers are written for people: trial lines, the report's tables and summaries."""

from __future__ import annotations

import math

__all__ = ["short_number"]


def short_number(value: float, digits: int = 3) -> str:
    """``value`` in ``digits`` significant digits, or in as many more as it takes not to
    change the setting it names.

    Three digits suit a learning rate (0.000335) but print an EMA decay of 0.9999 as "1"
    (no averaging at all) and 0.99949 as "0.999". More digits are taken until the printed
    value is within 0.5% of both the value and its distance from 1, which is what sets a
    decay's or a momentum's horizon.
    """
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    tolerance = 5e-3 * min(abs(value), abs(1 - value))  # what rounding to 3 digits may move
    for p in range(digits, 18):
        text = f"{value:.{p}g}"
        if abs(float(text) - value) <= tolerance:
            return text
    return repr(value)
