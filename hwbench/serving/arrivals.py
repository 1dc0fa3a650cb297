"""Arrival processes for generation under load: request arrival times from a seeded
generator (numpy). ``poisson``: independent exponential inter-arrival times of mean
1 / rate (index of dispersion of the counts ~1); ``constant``: exactly 1 / rate apart
(dispersion 0)."""

from __future__ import annotations

import numpy as np


def arrival_times(kind: str, rate: float, duration_s: float, seed: int) -> list[float]:
    """Arrival times in seconds from 0, every one below ``duration_s``, at ``rate``
    requests per second."""
    if rate <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be above 0")
    if kind == "constant":
        n = int(np.ceil(duration_s * rate))
        t = np.arange(n) / rate
        return [float(x) for x in t if x < duration_s]
    if kind == "poisson":
        rng = np.random.default_rng(seed)
        out: list[float] = []
        t = 0.0
        # draw in blocks: expected count plus a margin
        while True:
            gaps = rng.exponential(1.0 / rate, size=max(16, int(rate * duration_s * 0.2) + 16))
            for g in gaps:
                t += float(g)
                if t >= duration_s:
                    return out
                out.append(t)
    raise ValueError(f"unknown arrival process {kind!r}; allowed: poisson, constant")


def lengths(kind: str, mean_len: int, n: int, seed: int) -> list[int]:
    """``n`` lengths (prompt or output tokens) from a declared distribution around
    ``mean_len``: ``fixed`` (all ``mean_len``) or ``uniform`` (integers uniform in
    ``[ceil(mean_len / 2), mean_len]``)."""
    if kind == "fixed":
        return [mean_len] * n
    if kind == "uniform":
        rng = np.random.default_rng(seed)
        lo = max(1, -(-mean_len // 2))
        return [int(x) for x in rng.integers(lo, mean_len + 1, size=n)]
    raise ValueError(f"unknown length distribution {kind!r}; allowed: fixed, uniform")
