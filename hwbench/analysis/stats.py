"""Statistics of raw per-iteration times (numpy; percentiles use numpy's default
linear interpolation)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def latency_stats_ms(raw_times_s: Sequence[Sequence[float]]) -> dict[str, float]:
    """Latency statistics in milliseconds over every repeat's iterations, plus the
    coefficient of variation (std / mean) and the IQR relative to the median
    (fractions). Empty input -> empty dict."""
    flat = np.asarray([t for r in raw_times_s for t in r], dtype=float) * 1e3
    if flat.size == 0:
        return {}
    p25, p50, p75, p90, p99 = np.percentile(flat, [25, 50, 75, 90, 99])
    mean = float(flat.mean())
    std = float(flat.std(ddof=1)) if flat.size > 1 else 0.0
    return {
        "latency_ms_p50": float(p50),
        "latency_ms_p90": float(p90),
        "latency_ms_p99": float(p99),
        "latency_ms_mean": mean,
        "latency_ms_std": std,
        "latency_ms_min": float(flat.min()),
        "latency_cv": std / mean if mean > 0 else 0.0,
        "latency_iqr_rel": float((p75 - p25) / p50) if p50 > 0 else 0.0,
        "iterations": int(flat.size),
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of ``values``; None when empty."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else None


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
