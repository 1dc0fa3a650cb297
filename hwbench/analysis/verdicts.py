"""The verdict of one case and metric from its change, intervals and test
(:func:`decide`; the rules are stated in :mod:`hwbench.analysis.compare`'s docstring
and in docs/compare.md). Pure, torch- and pandas-free."""

from __future__ import annotations

import math
from dataclasses import dataclass

VERDICTS = ("regressed", "failed", "improved", "inconclusive", "missing", "new", "unchanged")

RULES = ("test", "ci99", "ci95", "threshold", "none")


@dataclass(frozen=True)
class Decision:
    """A verdict with what decided it. ``rule``: ``test`` (the adjusted p-value),
    ``ci99`` (the fallback: the 99 % interval wholly beyond the threshold), ``ci95``
    (the 95 % interval wholly inside it), ``threshold`` (one value per side of a per-run
    metric: nothing to test), ``none`` (inconclusive). ``why``: the evidence, or why
    there is none, in a few words."""

    verdict: str
    rule: str
    why: str


def decide(change: float | None, ci95: tuple[float | None, float | None],
           ci99: tuple[float | None, float | None], p_adjusted: float | None, *, threshold: float, alpha: float,
           n: tuple[int, int], test_can_reach: bool = True, higher_is_better: bool = False,
           per_run: bool = False) -> Decision:
    """The verdict of one case and metric. ``change`` and the intervals are on one scale
    (a fraction, new / baseline - 1; or an absolute difference where the baseline is 0,
    with ``threshold`` then absolute too); ``p_adjusted`` is the test's p-value after
    the correction (None: no test); ``n`` the values per side; ``test_can_reach``:
    whether the test could reach ``alpha`` at all with these n after the correction.
    The rules, in order:

    1. fewer than 2 values on a side: no test, no interval -> ``inconclusive`` -- except
       a per-run metric with one value per side, where the threshold decides alone
       (rule ``threshold``);
    2. ``p_adjusted < alpha``: ``regressed`` / ``improved`` (by the metric's direction)
       when ``|change| >= threshold``, else ``unchanged`` (rule ``test``);
    3. the test cannot reach ``alpha`` (or there is none), and the 99 % interval lies
       wholly beyond +threshold or -threshold: ``regressed`` / ``improved`` (``ci99``);
    4. the 95 % interval lies inside (-threshold, +threshold): ``unchanged`` (``ci95``);
    5. otherwise ``inconclusive``: the change could be within the threshold -- or, where
       the test could decide, it did not after the correction over every case (the
       99 % interval alone does not override the correction for many cases)."""
    nb, nn = n

    def moved(c: float) -> str:
        return "regressed" if (c < 0 if higher_is_better else c > 0) else "improved"

    if change is None or not math.isfinite(change):
        return Decision("inconclusive", "none", "no change can be computed")
    if min(nb, nn) < 2:
        if per_run and nb == nn == 1:
            v = moved(change) if abs(change) >= threshold and change != 0 else "unchanged"
            return Decision(v, "threshold", "one value per side: no test, the threshold alone")
        return Decision("inconclusive", "none", f"{nb} vs {nn} values: no test or interval (needs >= 2 a side)")
    if p_adjusted is not None and p_adjusted < alpha:
        if abs(change) >= threshold and change != 0:
            return Decision(moved(change), "test", f"p={p_adjusted:.2g} < {alpha:g}")
        return Decision("unchanged", "test", f"p={p_adjusted:.2g} < {alpha:g} but below the threshold")
    lo, hi = ci99
    if (not test_can_reach or p_adjusted is None) and lo is not None and hi is not None:
        if lo >= threshold and lo > 0:
            return Decision(moved(lo), "ci99", "99 % CI wholly beyond the threshold; the test cannot reach "
                            f"p < {alpha:g}")
        if hi <= -threshold and hi < 0:
            return Decision(moved(hi), "ci99", "99 % CI wholly beyond the threshold; the test cannot reach "
                            f"p < {alpha:g}")
    lo, hi = ci95
    if lo is not None and hi is not None and -threshold < lo and hi < threshold:
        return Decision("unchanged", "ci95", "95 % CI inside the threshold")
    if not test_can_reach:
        return Decision("inconclusive", "none", f"{nb} vs {nn} cannot reach p < {alpha:g} and the 99 % CI "
                        "reaches inside the threshold")
    lo, hi = ci99
    if lo is not None and hi is not None and ((lo >= threshold and lo > 0) or (hi <= -threshold and hi < 0)):
        # the test could have decided and did not: the correction over many cases holds
        return Decision("inconclusive", "none", "99 % CI beyond the threshold, but not significant after the "
                        "correction over every case")
    return Decision("inconclusive", "none", "not significant and the CI reaches beyond the threshold")
