"""The statistics of :mod:`hwbench.analysis.compare` (its docstring states the method):
the rank test and the smallest p-value it can reach, bootstrap intervals of the ratio or
difference of medians, the smallest detectable change, and the correction for many
tests. Pure functions over numbers."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

DEFAULT_ALPHA = 0.05
DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
# Bootstrap at most this many values per side (a seeded random subsample beyond it): the
# interval of a subsample is wider, never narrower, and 1000 x 2000 resamples stay fast.
MAX_BOOTSTRAP_N = 1000
POWER = 0.8  # for the smallest detectable change

# Exact Mann-Whitney p-values (scipy's exact null distribution) where there are no ties
# and n x m is at most this: about 0.1 s at 100 x 100; its cost grows with n x m x
# min(n, m), so 8 vs 100,000 would take minutes. Beyond it, and with ties, the normal
# approximation with tie and continuity corrections, accurate at such sizes.
MAX_EXACT_PAIRS = 10_000
CI_RULE_CONFIDENCE = 0.99  # the fallback rule's interval (asv's 99 %)


def min_p_value(n: int, m: int) -> float:
    """The smallest two-sided p-value an exact Mann-Whitney U test can give for samples
    of ``n`` and ``m`` values (no ties): 2 / C(n + m, n). A test whose smallest p is
    above the significance level can never find a difference, however large. Computed
    in logarithms beyond n + m = 1000 (C(n + m, n) no longer fits a float; the result
    then underflows to 0.0, which it is, for any level)."""
    if n < 1 or m < 1:
        return 1.0
    if n + m <= 1000:
        return min(1.0, 2 / math.comb(n + m, n))
    log_comb = math.lgamma(n + m + 1) - math.lgamma(n + 1) - math.lgamma(m + 1)
    return min(1.0, math.exp(math.log(2.0) - log_comb))


def min_samples(alpha: float = DEFAULT_ALPHA) -> int:
    """The fewest values per side (equal sizes) with which Mann-Whitney U can reach
    ``alpha`` two-sided: 4 for 0.05 (3 vs 3 gives p >= 0.1). After a correction over m
    tests the level one case must reach can be as small as alpha / m (Holm, or BH with a
    single true change): pass that. With repeats = 10 (p down to 1.1e-5) a sweep of
    up to ~4000 comparisons can still single out one regression."""
    n = 1
    while min_p_value(n, n) > alpha:
        n += 1
    return n


def rank_test(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value for ``a`` vs ``b`` (scipy.stats.mannwhitneyu):
    exact without ties while len(a) x len(b) <= MAX_EXACT_PAIRS, else the normal
    approximation with tie and continuity corrections. None with fewer than 2 values on
    a side; 1.0 when every value on both sides is equal."""
    from scipy.stats import mannwhitneyu

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or b.size < 2:
        return None
    both = np.concatenate([a, b])
    if np.ptp(both) == 0:
        return 1.0
    ties = np.unique(both).size < both.size
    method = "exact" if not ties and a.size * b.size <= MAX_EXACT_PAIRS else "asymptotic"
    return float(mannwhitneyu(a, b, alternative="two-sided", method=method).pvalue)


def _median_ratio(x, y, axis=-1):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.median(y, axis=axis) / np.median(x, axis=axis)


def _median_difference(x, y, axis=-1):
    return np.median(y, axis=axis) - np.median(x, axis=axis)


def _bounds(dist: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    """Percentile interval of a bootstrap distribution: the resampled values at the
    lower and upper percentiles, outward (no interpolation: an infinite resample, from a
    resampled baseline median of 0, stays an unbounded side instead of NaN)."""
    d = dist[~np.isnan(dist)]
    if not d.size:
        return None, None
    q = (1 - confidence) / 2
    lo = np.percentile(d, 100 * q, method="lower")
    hi = np.percentile(d, 100 * (1 - q), method="higher")
    return float(lo), float(hi)


def _effect(a, b, statistic, point: float, *, confidence: float, n_resamples: int, seed: int,
            log_se: bool) -> dict[str, float | None]:
    """The bootstrap behind :func:`ratio_of_medians` and :func:`difference_of_medians`."""
    from scipy.stats import bootstrap

    out: dict[str, float | None] = {"ci_low": None, "ci_high": None, "ci99_low": None, "ci99_high": None,
                                    "se": None}
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or b.size < 2:
        return out
    rng = np.random.default_rng(seed)
    a = rng.choice(a, MAX_BOOTSTRAP_N, replace=False) if a.size > MAX_BOOTSTRAP_N else a
    b = rng.choice(b, MAX_BOOTSTRAP_N, replace=False) if b.size > MAX_BOOTSTRAP_N else b
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return {"ci_low": point, "ci_high": point, "ci99_low": point, "ci99_high": point, "se": 0.0}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "degenerate" distributions: handled below
        res = bootstrap((a, b), statistic, vectorized=True, paired=False, n_resamples=n_resamples,
                        confidence_level=confidence, method="percentile", rng=rng)
    dist = np.asarray(res.bootstrap_distribution, float)
    out["ci_low"], out["ci_high"] = _bounds(dist, confidence)
    out["ci99_low"], out["ci99_high"] = _bounds(dist, CI_RULE_CONFIDENCE)
    fin = dist[np.isfinite(dist) & (dist > 0)] if log_se else dist[np.isfinite(dist)]
    if fin.size > 1:
        out["se"] = float(np.std(np.log(fin) if log_se else fin, ddof=1))
    return out


def ratio_of_medians(a: Sequence[float], b: Sequence[float], *, confidence: float = DEFAULT_CONFIDENCE,
                     n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, float | None]:
    """median(b) / median(a) with percentile-bootstrap confidence intervals
    (scipy.stats.bootstrap, two independent samples resampled separately, ``confidence``
    95 %, ``n_resamples`` 2000, seeded): ``ci_low`` / ``ci_high``, and the 99 % interval
    of the fallback rule (``ci99_low`` / ``ci99_high``) from the same resamples.
    Percentile rather than BCa: BCa's acceleration comes from the jackknife, which is not
    consistent for the median. ``se_log`` is the bootstrap standard error of log(ratio),
    from which :func:`detectable_change` is computed. A side whose resampled median is
    0 makes that bound infinite (unbounded), never a point. Samples above
    MAX_BOOTSTRAP_N values are subsampled (seeded) first. Needs 2 values per side for an
    interval; fewer give the ratio alone; median(a) <= 0 gives no ratio (None)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ma, mb = float(np.median(a)), float(np.median(b))
    ratio = mb / ma if ma > 0 else None
    if ratio is None:
        return {"ratio": None, "ci_low": None, "ci_high": None, "ci99_low": None, "ci99_high": None, "se_log": None}
    e = _effect(a, b, _median_ratio, ratio, confidence=confidence, n_resamples=n_resamples, seed=seed, log_se=True)
    return {"ratio": ratio, **{k: v for k, v in e.items() if k != "se"}, "se_log": e["se"]}


def difference_of_medians(a: Sequence[float], b: Sequence[float], *, confidence: float = DEFAULT_CONFIDENCE,
                          n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, float | None]:
    """median(b) - median(a) with the same bootstrap intervals as
    :func:`ratio_of_medians` (``se``: the standard error of the difference). Used where
    the baseline's median is 0, so no ratio exists."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = float(np.median(b) - np.median(a))
    e = _effect(a, b, _median_difference, diff, confidence=confidence, n_resamples=n_resamples, seed=seed,
                log_se=False)
    return {"difference": diff, **e}


def detectable_change(se_log: float | None, alpha: float = DEFAULT_ALPHA, power: float = POWER) -> float | None:
    """The smallest relative change (a fraction) a two-sided test at ``alpha`` would find
    with probability ``power`` (80 %), given the standard error of log(ratio):
    exp((z[1 - alpha/2] + z[power]) * se) - 1, i.e. about 2.8 standard errors for 5 %
    and 80 % (the usual sample-size rule, Lehr 1992)."""
    from scipy.stats import norm

    if se_log is None:
        return None
    return float(math.expm1((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * se_log))


def adjust(p_values: Sequence[float], method: str = "bh") -> np.ndarray:
    """p-values adjusted for the number of tests: ``bh`` Benjamini-Hochberg
    (scipy.stats.false_discovery_control; controls the false-discovery rate, and the
    family-wise error rate when nothing changed) or ``holm`` (Holm's step-down;
    controls the family-wise error rate). Compare the result with alpha."""
    p = np.asarray(p_values, float)
    if p.size == 0:
        return p
    if method == "bh":
        from scipy.stats import false_discovery_control

        return false_discovery_control(p, method="bh")
    if method == "holm":
        order = np.argsort(p)
        m = p.size
        stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
        out = np.empty_like(p)
        out[order] = np.minimum(stepped, 1.0)
        return out
    raise ValueError(f"unknown correction {method!r} (bh, holm)")
