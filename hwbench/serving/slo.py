"""SLO rules over per-query raw latencies: percentiles as LoadGen computes them,
``slo_met`` and goodput.

Percentile rule (LoadGen's ``PerformanceSummary``, and hwbench's for serving): sort
the n latencies and take the one at index ``floor(n * q / 100)`` (clamped to n - 1),
a value that occurred, without interpolation -- so hwbench's p99 of a Server load point
is LoadGen's own figure, from the same latencies.
"""

from __future__ import annotations

import math
from typing import Sequence


def percentile_lg(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0 < q <= 100) by LoadGen's rule (module docstring);
    None for no values."""
    if not values:
        return None
    s = sorted(values)
    return float(s[min(len(s) - 1, int(math.floor(len(s) * q / 100.0)))])


def slo_met(latencies_ms: Sequence[float], slo_ms: float | None, pct: float) -> bool | None:
    """True when the ``pct``-th percentile (LoadGen's rule) of the latencies is at most
    ``slo_ms``; None without an SLO or without latencies."""
    p = percentile_lg(latencies_ms, pct)
    if slo_ms is None or p is None:
        return None
    return p <= slo_ms


def goodput_rps(request_slos_met: Sequence[bool], duration_s: float) -> float | None:
    """Requests per second that met every SLO (vLLM's goodput): the count of requests
    whose own latencies are within every SLO, over the load point's duration. None for
    a duration of 0."""
    if duration_s <= 0:
        return None
    return sum(1 for ok in request_slos_met if ok) / duration_s


def request_ok(latency_ms: float | None = None, latency_slo_ms: float | None = None,
               ttft_ms: float | None = None, ttft_slo_ms: float | None = None,
               tpot_ms: float | None = None, tpot_slo_ms: float | None = None) -> bool:
    """One request meets every SLO that is set (an unset SLO is no constraint; a
    request missing a figure an SLO needs does not meet it)."""
    for value, slo in ((latency_ms, latency_slo_ms), (ttft_ms, ttft_slo_ms), (tpot_ms, tpot_slo_ms)):
        if slo is not None and (value is None or value > slo):
            return False
    return True
