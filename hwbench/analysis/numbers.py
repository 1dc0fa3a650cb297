"""The one number parser of the analyses and reports: a cell of a results frame (a
float, an int, a numpy scalar, pandas' NA, None, text) as a float, NaN where it is not
a finite number. Pure, torch-free."""

from __future__ import annotations

import math
from typing import Any


def number(v: Any) -> float:
    """``v`` as a float; NaN for a missing value (None, NaN, pandas NA), anything that
    is not a number, and infinities (no figure of a report is infinite)."""
    if isinstance(v, bool):
        return float(v)
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def is_number(v: Any) -> bool:
    """True where :func:`number` gives a finite number."""
    return not math.isnan(number(v))
