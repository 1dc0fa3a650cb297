"""The paired decision of ``hwbench ab``: both sides ran in one job, their repeats
interleaved in ABBA order, so repeat ``k`` of the base and repeat ``k`` of the new side
form a *pair* measured under the same machine conditions. Pure functions; the verdicts
are data, the exit code is decided at the command line (:mod:`hwbench.commands.ab`).

The statistics, with their defaults:

* **Unit**: one pair, its log ratio ``d = ln(new / base)`` of the two repeats' median
  iteration times. Log ratios make "2x slower" and "2x faster" symmetric, and a
  drift of the machine that is linear over the four repeats of an ABBA block cancels
  in their mean (it adds +delta to an AB pair and -delta to the BA pair after it).
* **Effect**: the geometric-mean ratio ``exp(mean(d))`` (new / base; > 1 is slower).
* **Interval**: the ``CONFIDENCE`` (99 %) Student-t interval of ``mean(d)``, back-
  transformed: ``exp(mean(d) -+ t[0.995, n-1] * sd(d) / sqrt(n))``.
* **Test**: one-sample Student t-test of ``d`` against 0, two-sided
  (scipy.stats.ttest_1samp), p-values of all cases adjusted together with
  Benjamini-Hochberg (scipy.stats.false_discovery_control). Unlike the Wilcoxon
  signed-rank test, whose smallest two-sided p with 6 pairs is 1 / 32 = 0.031 (it
  cannot single out a regression among 10 cases after the correction), the t-test
  reaches any p with 2 or more pairs. Zero spread (every pair the same ratio): p is 1
  where that ratio is 1, else 0 (an infinite t), and the interval is the point.
* **Verdict** (:func:`verdict`), the first rule that applies, named in ``rule``:

  1. ``t-test``: adjusted p < alpha and ``|ratio - 1| >= threshold``: regressed
     (slower) / improved (faster);
  2. ``ci99``: the 99 % interval lies wholly beyond the threshold (its low end
     ``>= 1 + threshold``: regressed; its high end ``<= 1 - threshold``: improved), even
     where the test is not significant after the correction;
  3. ``t-test``: adjusted p < alpha but ``|ratio - 1| < threshold``: unchanged (real,
     too small to act on);
  4. ``ci99``: the interval lies inside ``(1 - threshold, 1 + threshold)``: unchanged;
  5. otherwise ``inconclusive``: the change could be inside the threshold or beyond it
     (more pairs narrow the interval). Fewer than 2 pairs: ``inconclusive``, rule
     ``none`` (no test and no interval are possible).

  A case that did not run ok on both sides gets compare's status verdicts
  (:func:`status_verdict`), rule ``status``.

Pairs whose medians are not finite and positive are left out (counted in the note).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..ab import abba  # noqa: F401  (the order the runner keeps, importable here too)
from .compare import DEFAULT_ALPHA, DEFAULT_THRESHOLD, VERDICTS

CONFIDENCE = 0.99
RULES = ("t-test", "ci99", "status", "none")
BAD = ("failed", "oom", "timeout")


@dataclass(frozen=True)
class PairStats:
    """The statistics of one case's pairs. ``ratio``, ``ci_low``, ``ci_high``: new /
    base (a ratio, not a percentage); ``p_value``: unadjusted; None where fewer than
    2 pairs were usable. ``log_ratios``: ln(new / base) of each usable pair, in order."""

    n_pairs: int
    dropped: int
    log_ratios: tuple[float, ...]
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


def log_ratios(base: Sequence[float], new: Sequence[float]) -> tuple[tuple[float, ...], int]:
    """ln(new[k] / base[k]) for the pairs ``k`` both sides have, skipping values that
    are not finite and positive. Returns (log ratios, pairs skipped)."""
    out, dropped = [], 0
    for b, n in zip(base, new):
        try:
            b, n = float(b), float(n)
        except (TypeError, ValueError):
            dropped += 1
            continue
        if math.isfinite(b) and math.isfinite(n) and b > 0 and n > 0:
            d = math.log(n) - math.log(b)
            if math.isfinite(d):
                out.append(d)
                continue
        dropped += 1
    return tuple(out), dropped + abs(len(base) - len(new))


def _exp(x: float) -> float:
    """exp() that saturates instead of raising (a ratio beyond 1e308 is still 'inf')."""
    return math.exp(min(x, 709.0))


def pair_stats(base: Sequence[float], new: Sequence[float], confidence: float = CONFIDENCE) -> PairStats:
    """Geometric-mean ratio, its ``confidence`` Student-t interval and the one-sample
    t-test p-value (two-sided) of the pairs ``(base[k], new[k])`` (see the module
    docstring). Never raises on numbers; None fields with fewer than 2 usable pairs."""
    from scipy import stats

    d, dropped = log_ratios(base, new)
    n = len(d)
    if n == 0:
        return PairStats(0, dropped, d, None, None, None, None)
    arr = np.asarray(d, float)
    m = float(arr.mean())
    if n < 2:
        return PairStats(n, dropped, d, _exp(m), None, None, None)
    sd = float(arr.std(ddof=1))
    # numerically constant (identical ratios up to rounding): an infinite t, or 0 / 0
    if not math.isfinite(sd) or sd <= 1e-12 * max(1.0, abs(m)):
        return PairStats(n, dropped, d, _exp(m), _exp(m), _exp(m), 1.0 if abs(m) <= 1e-12 else 0.0)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    p = float(stats.ttest_1samp(arr, 0.0).pvalue)
    if not math.isfinite(p):
        p = 1.0
    return PairStats(n, dropped, d, _exp(m), _exp(m - half), _exp(m + half), min(1.0, max(0.0, p)))


def adjust_bh(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (scipy.stats.false_discovery_control)."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p_values, float)
    return p if p.size == 0 else np.minimum(1.0, false_discovery_control(p, method="bh"))


def verdict(ratio: float | None, ci: tuple[float | None, float | None], p_adjusted: float | None, *,
            threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA) -> tuple[str, str]:
    """(verdict, rule) for a ratio new / base (> 1: slower) with its 99 % interval and
    adjusted p-value, by the rules of the module docstring, in their order."""
    lo, hi = ci
    if ratio is None or lo is None or hi is None or p_adjusted is None:
        return "inconclusive", "none"
    change = ratio - 1
    if p_adjusted < alpha and abs(change) >= threshold:
        return ("regressed" if change > 0 else "improved"), "t-test"
    if lo - 1 >= threshold:
        return "regressed", "ci99"
    if hi - 1 <= -threshold:
        return "improved", "ci99"
    if p_adjusted < alpha:
        return "unchanged", "t-test"
    if -threshold < lo - 1 and hi - 1 < threshold:
        return "unchanged", "ci99"
    return "inconclusive", "none"


def status_verdict(base: str | None, new: str | None) -> tuple[str, bool] | None:
    """compare's verdict for a case that did not run ok on both sides, as (verdict,
    counts as a regression); None where both are ok. ``None`` status: the side does not
    have the case."""
    if base == "ok" and new == "ok":
        return None
    if new is None:
        return "missing", False
    if base is None:
        return "new", False
    if new in BAD:
        return "failed", base == "ok"  # ok before and failed now: a regression
    if new != "ok":  # skipped now
        return ("unchanged", False) if base != "ok" else ("missing", False)
    return "new", False  # failed or skipped on the base side only


@dataclass(frozen=True)
class CaseInput:
    """One case as the sides left it: status (None: the side lacks the case), the
    reason of a status other than ok, and the per-repeat medians (seconds) in pair
    order."""

    case_id: str
    base_status: str | None
    new_status: str | None
    base: tuple[float, ...] = ()
    new: tuple[float, ...] = ()
    base_reason: str = ""
    new_reason: str = ""


def decide(cases: Sequence[CaseInput], *, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
           confidence: float = CONFIDENCE) -> list[dict]:
    """One row per case: ``case_id``, ``verdict`` (one of compare's VERDICTS),
    ``regression`` (bool: what exits 1), ``rule`` (RULES), ``n_pairs``, ``ratio``,
    ``ci_low``, ``ci_high`` (new / base), ``p_value``, ``p_adjusted``, ``note``.
    p-values are adjusted over the cases that have one (Benjamini-Hochberg)."""
    rows: list[dict] = []
    for c in cases:
        row = {"case_id": c.case_id, "status_base": c.base_status, "status_new": c.new_status, "n_pairs": 0,
               "ratio": None, "ci_low": None, "ci_high": None, "p_value": None, "p_adjusted": None, "note": "",
               "pair_ratios": []}
        sv = status_verdict(c.base_status, c.new_status)
        if sv is not None:
            v, reg = sv
            why = [f"{side}: {st or 'not in the suite'}" + (f": {r}" if r else "") for side, st, r in
                   (("base", c.base_status, c.base_reason), ("new", c.new_status, c.new_reason)) if st != "ok"]
            rows.append({**row, "verdict": v, "regression": reg, "rule": "status", "note": "; ".join(why)[:300]})
            continue
        s = pair_stats(c.base, c.new, confidence)
        note = f"{s.dropped} pair(s) left out (not finite and positive)" if s.dropped else ""
        rows.append({**row, "n_pairs": s.n_pairs, "ratio": s.ratio, "ci_low": s.ci_low, "ci_high": s.ci_high,
                     "p_value": s.p_value, "note": note, "pair_ratios": [_exp(d) for d in s.log_ratios]})
    tested = [i for i, r in enumerate(rows) if r["p_value"] is not None and "verdict" not in r]
    for i, pa in zip(tested, adjust_bh([rows[i]["p_value"] for i in tested])):
        rows[i]["p_adjusted"] = float(pa)
    for r in rows:
        if "verdict" in r:
            continue
        v, rule = verdict(r["ratio"], (r["ci_low"], r["ci_high"]), r["p_adjusted"], threshold=threshold, alpha=alpha)
        r.update(verdict=v, regression=v == "regressed", rule=rule)
        if rule == "none":
            more = "fewer than 2 usable pairs: no test, no interval" if r["p_adjusted"] is None else \
                (f"the {confidence * 100:g} % CI holds changes within +-{threshold * 100:g} % and beyond: "
                 "more pairs narrow it")
            r["note"] = "; ".join(filter(None, [r["note"], more]))
    order = {v: i for i, v in enumerate(VERDICTS)}
    return sorted(rows, key=lambda r: order[r["verdict"]])
