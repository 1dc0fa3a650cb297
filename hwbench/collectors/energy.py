"""Energy over a window from timestamped samples: counter deltas (interpolated at the
window's edges) and power integration (trapezoids)."""

from __future__ import annotations

from typing import Sequence


def _interp(ts: Sequence[float], vs: Sequence[float], t: float) -> float | None:
    if not ts or t < ts[0] or t > ts[-1]:
        return None
    for i in range(1, len(ts)):
        if ts[i] >= t:
            t0, t1 = ts[i - 1], ts[i]
            if t1 == t0:
                return vs[i]
            return vs[i - 1] + (vs[i] - vs[i - 1]) * (t - t0) / (t1 - t0)
    return vs[-1]


def series(samples: list[tuple[float, dict[str, float]]], key: str) -> tuple[list[float], list[float]]:
    pts = [(t, s[key]) for t, s in samples if key in s]
    return [t for t, _ in pts], [v for _, v in pts]


def counter_delta(samples, key: str, t0: float, t1: float) -> float | None:
    """Increase of a cumulative counter between t0 and t1, interpolating between the
    samples around each edge. None if the samples do not cover the window."""
    ts, vs = series(samples, key)
    a, b = _interp(ts, vs, t0), _interp(ts, vs, t1)
    return None if a is None or b is None else b - a


def integrate(samples, key: str, t0: float, t1: float) -> float | None:
    """Integral of a rate (e.g. W) over [t0, t1] by trapezoids, J for W. Holds the
    nearest reading flat where the samples stop short of an edge; None if there are
    fewer than two samples."""
    ts, vs = series(samples, key)
    if len(ts) < 2:
        return None
    pts = [(t, v) for t, v in zip(ts, vs) if t0 < t < t1]
    start = _interp(ts, vs, t0)
    end = _interp(ts, vs, t1)
    pts = [(t0, vs[0] if start is None else start)] + pts + [(t1, vs[-1] if end is None else end)]
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(pts, pts[1:]))


def mean_rate(samples, key: str, t0: float, t1: float) -> float | None:
    e = integrate(samples, key, t0, t1)
    return None if e is None or t1 <= t0 else e / (t1 - t0)
