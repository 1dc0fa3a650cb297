"""Statistics of raw per-iteration times (numpy; percentiles use numpy's default
linear interpolation)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


_LATENCY_Q = (0.25, 0.5, 0.75, 0.9, 0.99)  # np.percentile's q / 100, as numpy divides


def latency_stats_ms(raw_times_s: Sequence[Sequence[float]]) -> dict[str, float]:
    """Latency statistics in milliseconds over every repeat's iterations, plus the
    coefficient of variation (std / mean) and the IQR relative to the median
    (fractions). Empty input -> empty dict.

    Called once per case at load: the numbers are numpy's (``np.percentile``'s linear
    method, ``mean``, ``std(ddof=1)``) computed with the same operations in the same
    order, without numpy's per-call overhead (tests/test_stats_fast.py checks they are
    bit for bit the same)."""
    flat = np.array(raw_times_s[0] if len(raw_times_s) == 1 else [t for r in raw_times_s for t in r],
                    dtype=float) * 1e3
    n = flat.size
    if n == 0:
        return {}
    p25, p50, p75, p90, p99 = sorted_percentiles(np.sort(flat), _LATENCY_Q)
    mean = float(np.add.reduce(flat)) / n
    if n > 1:
        dev = flat - mean
        std = math.sqrt(float(np.add.reduce(dev * dev)) / (n - 1))
    else:
        std = 0.0
    return {
        "latency_ms_p50": p50,
        "latency_ms_p90": p90,
        "latency_ms_p99": p99,
        "latency_ms_mean": mean,
        "latency_ms_std": std,
        "latency_ms_min": float(flat.min()),
        "latency_cv": std / mean if mean > 0 else 0.0,
        "latency_iqr_rel": float((p75 - p25) / p50) if p50 > 0 else 0.0,
        "iterations": int(n),
    }


def sorted_percentiles(s: np.ndarray, quantiles: Sequence[float]) -> list[float]:
    """``np.percentile(s, 100 * q)`` for each ``q`` of ``quantiles`` (0..1) of sorted,
    NaN-free, non-empty 1-D ``s``: numpy's linear method step for step (virtual index
    (n - 1) q, its floor and fraction, and numpy's two-sided lerp)."""
    n = s.size
    out = []
    for q in quantiles:
        vi = (n - 1) * q
        if vi >= n - 1:
            out.append(float(s[-1]))
            continue
        lo = math.floor(vi)
        g = vi - lo
        a, b = float(s[lo]), float(s[lo + 1])
        d = b - a
        out.append(b - d * (1 - g) if g >= 0.5 else a + d * g)
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of ``values``; None when empty."""
    if not len(values):
        return None
    a = np.asarray(values, dtype=float)
    if a.ndim == 1 and not np.isnan(a).any():  # numpy's answer without its per-call overhead
        return sorted_percentiles(np.sort(a), [q / 100])[0]
    return float(np.percentile(a, q))


def noise_flag(stats: dict[str, float], threshold: float) -> str | None:
    """The ``noisy`` flag's detail when the timing is noisy, naming the cause that
    triggered it: IQR/median above ``threshold``, or CV above twice it (a few outliers
    inflate the CV but not the IQR). None when quiet."""
    iqr, cv = stats.get("latency_iqr_rel"), stats.get("latency_cv")
    causes = []
    if iqr is not None and iqr > threshold:
        causes.append(f"IQR/median {iqr:.1%} > {threshold:.0%}")
    if cv is not None and cv > 2 * threshold:
        causes.append(f"CV {cv:.1%} > {2 * threshold:.0%} (twice noise_threshold: outliers)")
    return "; ".join(causes) or None
