"""Energy over a window from timestamped samples, and the energy sources samplers declare.

Samples are ``(t, reading)`` pairs: ``t`` is ``time.monotonic()`` in seconds, a reading
is ``{key: value}`` with the unit in the key. Two ways to get joules from them:

* a cumulative counter (NVML total energy, RAPL, an estimate built from CPU time):
  its value interpolated at each window edge, then the difference;
* a rate (W): trapezoids over the samples inside the window plus the interpolated edges.

Interpolation, integration and percentiles are numpy's (``np.interp``, ``np.trapezoid``,
``np.percentile`` with its default linear method).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

Sample = tuple[float, dict[str, float]]
Samples = Sequence[Sample]

def series(samples: Samples, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Times (s) and values of ``key`` over the samples that have it."""
    pts = [(t, r[key]) for t, r in samples if key in r]
    if not pts:
        return np.empty(0), np.empty(0)
    a = np.asarray(pts, dtype=float)
    return a[:, 0], a[:, 1]


def value_at(ts: np.ndarray, vs: np.ndarray, t: float) -> float | None:
    """``vs`` linearly interpolated at ``t``; None outside the samples (no extrapolation)."""
    if ts.size == 0 or t < ts[0] or t > ts[-1]:
        return None
    return float(np.interp(t, ts, vs))


def counter_delta(samples: Samples, key: str, t0: float, t1: float) -> float | None:
    """Increase of a cumulative counter between ``t0`` and ``t1``, interpolated between
    the samples around each edge. None if the samples do not cover the window."""
    ts, vs = series(samples, key)
    a, b = value_at(ts, vs, t0), value_at(ts, vs, t1)
    return None if a is None or b is None else b - a


def integrate(samples: Samples, key: str, t0: float, t1: float) -> float | None:
    """Integral of a rate over [t0, t1] by trapezoids (J for W). Where the samples stop
    short of an edge the nearest reading is held flat; None with fewer than two samples."""
    ts, vs = series(samples, key)
    if ts.size < 2 or t1 < t0:
        return None
    inside = (ts > t0) & (ts < t1)
    # np.interp holds the first / last value beyond the samples: the flat hold we want
    edges = np.interp([t0, t1], ts, vs)
    x = np.concatenate(([t0], ts[inside], [t1]))
    y = np.concatenate(([edges[0]], vs[inside], [edges[1]]))
    return float(np.trapezoid(y, x))


def stats(values: Sequence[float]) -> dict[str, float]:
    """Mean, max and 95th percentile (numpy's linear method) of finite values; empty if none."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {}
    return {"mean": float(v.mean()), "max": float(v.max()), "p95": float(np.percentile(v, 95))}


# ------------------------------------------------------------------ energy sources
@dataclass(frozen=True)
class EnergyReading:
    """Joules over a window; ``basis`` says how an estimate was made."""

    energy_j: float
    basis: str | None = None


@dataclass(frozen=True)
class CounterEnergy:
    """Energy from a cumulative counter in a sample key (J)."""

    source: str  # records.EnergySource
    device: str  # "cpu", "cuda:0"
    key: str
    period_s: float  # how often the counter updates, s

    kind = "counter"

    def measure(self, samples: Samples, t0: float, t1: float) -> EnergyReading | None:
        e = counter_delta(samples, self.key, t0, t1)
        return None if e is None else EnergyReading(e)


@dataclass(frozen=True)
class PowerEnergy:
    """Energy as the integral of a power reading in a sample key (W)."""

    source: str
    device: str
    key: str
    period_s: float  # how often the power reading updates (or the span it averages), s

    kind = "power"

    def measure(self, samples: Samples, t0: float, t1: float) -> EnergyReading | None:
        e = integrate(samples, self.key, t0, t1)
        return None if e is None else EnergyReading(e)
