"""Compare two sets of runs case by case: ratio of medians with a confidence interval, a
rank test, a correction for the number of cases compared, and a verdict per case and
metric. Pure functions over records; the verdicts are data (a DataFrame), and the exit
code is decided once, at the command line (:mod:`hwbench.commands.regression`).

The statistics, with their defaults (each function's docstring says more):

* **Unit of comparison.** Where both sides ran ``repeats >= 3`` with every repeat in
  its own worker process (``measurement.repeat_isolation == "process"``), the unit is
  the *median of each repeat*: those vary by run-to-run noise, the noise a regression
  has to stand out from. Otherwise the unit is the raw per-iteration time, whose
  spread is iteration noise only and understates run-to-run drift (a public CI study
  found 2.8 % within a run against 14.8 % between jobs): such verdicts say so. Several
  runs of the same case on one side (a folder) are pooled.
* **Runs**: a run given twice on one side (same ``run_id``: a copied results file)
  counts once, with a note (:func:`unique_runs`).
* **Effect**: the ratio of medians, new / baseline, with 95 % and 99 % percentile-
  bootstrap confidence intervals (:func:`ratio_of_medians`). Where the baseline's
  median is 0 (an exact accuracy, say) the effect is the difference of medians, judged
  against the metric's absolute threshold (:data:`KNOWN_METRICS`).
* **Test**: Mann-Whitney U, two-sided (:func:`rank_test`: exact where cheap, else the
  normal approximation); the p-values of every (case, metric) compared are corrected
  together, Benjamini-Hochberg by default (false-discovery rate 5 %) or Holm
  (family-wise error rate) (:func:`adjust`).
* **Verdict** (:func:`decide`, the rules in order): fewer than 2 values on a side gives
  no test -- ``inconclusive``, except one value per side of a per-run metric, where the
  threshold decides alone (rule ``threshold``); significant after the correction:
  ``regressed`` / ``improved`` when the change is at least the threshold (5 % by
  default), else ``unchanged`` (rule ``test``); where the test cannot reach alpha at
  all (its smallest p-value times the number of tests is not below alpha, e.g. 3 vs 3
  repeats), a 99 % interval wholly beyond the threshold is ``regressed`` /
  ``improved`` (rule ``ci99``, asv's fallback); a 95 % interval inside the threshold is
  ``unchanged`` (rule ``ci95``); anything else is ``inconclusive``: the change could be
  within the threshold (the note says why: too few values, or the smallest change the
  case could have detected).
* **Metrics without per-iteration samples** (energy, memory, accuracy, ...): one value
  per run. With one run per side no test is possible: the threshold decides alone
  (memory peaks are deterministic; energy's default threshold is 10 %, twice
  latency's, because energy of one window carries the noise of its source). With
  several runs per side (folders), the per-run values are tested like the above.
* **Machine conditions** (:func:`conditions`, :func:`machine_changes`): each side's
  background CPU load (system busy time minus the worker's), CPU steal time, idle-
  baseline load, clocks and GPU throttle reasons, as recorded; a verdict whose sides
  differ materially (the ``MACHINE_*`` thresholds) is marked ``machine_changed`` with
  the figures. The verdict stands: the mark says the runner, not only the change, may
  explain it.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np

from ..errors import UserError
from ..records import PROCESS_ISOLATED_REPEATS, CaseResult, RunRecord

VERDICTS = ("regressed", "failed", "improved", "inconclusive", "missing", "new", "unchanged")
DEFAULT_ALPHA = 0.05
DEFAULT_THRESHOLD = 0.05
DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
# Bootstrap at most this many values per side (a seeded random subsample beyond it): the
# interval of a subsample is wider, never narrower, and 1000 x 2000 resamples stay fast.
MAX_BOOTSTRAP_N = 1000
POWER = 0.8  # for the smallest detectable change


@dataclass(frozen=True)
class Metric:
    """A compared quantity: ``name`` (the default ``latency_ms_p50``, or a column of
    :func:`hwbench.load_results`), its unit, its direction, its threshold (a fraction:
    0.05 = 5 %), and ``abs_threshold``: the smallest change that counts, in the metric's
    unit, where the baseline's median is 0 and no ratio exists (None: such a case is
    inconclusive)."""

    name: str
    unit: str
    higher_is_better: bool = False
    threshold: float = DEFAULT_THRESHOLD
    abs_threshold: float | None = None


LATENCY = "latency_ms_p50"
# Metrics ``--metric`` accepts: (unit, higher is better, default threshold or None for
# --threshold, absolute threshold for a zero baseline or None). The absolute thresholds:
# accuracy (deviation from the fp32 eager output) above fp32 rounding (~1e-6 relative)
# and below what tf32 / bf16 give (~1e-3 / 1e-2); bytes: 1 MiB; energy 1 mJ; power 1 W;
# times 1 ms. Latency medians are never 0 (raw times are refused unless > 0).
KNOWN_METRICS: dict[str, tuple[str, bool, float | None, float | None]] = {
    LATENCY: ("ms", False, None, None),
    "energy_per_sample_j": ("J", False, 0.10, 1e-3),
    "energy_per_token_j": ("J", False, 0.10, 1e-3),
    "energy_j": ("J", False, 0.10, 1e-3),
    "power_w_mean": ("W", False, 0.10, 1.0),
    "memory_peak_bytes": ("B", False, 0.05, 2.0**20),
    "memory_reserved_peak_bytes": ("B", False, 0.05, 2.0**20),
    "host_rss_peak_bytes": ("B", False, 0.05, 2.0**20),
    "proc_rss_bytes_max": ("B", False, 0.05, 2.0**20),
    "ttft_ms_p50": ("ms", False, None, 1.0),
    "tpot_ms_p50": ("ms", False, None, 1.0),
    "first_iter_ms": ("ms", False, 0.20, 1.0),
    "compile_s": ("s", False, 0.20, 1e-3),
    "rel_l2_error": ("", False, 0.10, 1e-4),
    "max_abs_error": ("", False, 0.10, 1e-3),
}
ALIASES = {"latency": LATENCY, "throughput": LATENCY, "throughput_samples_per_s": LATENCY, "tokens_per_s": LATENCY}


def parse_metrics(text: str | None, threshold: float = DEFAULT_THRESHOLD) -> tuple[Metric, ...]:
    """``--metric`` -> metrics: latency (always first) plus each ``NAME[:PERCENT]`` of the
    comma-separated ``text``. Latency and throughput are one metric (throughput is batch
    / median latency: the same test; both are reported). A metric's threshold is the
    ``:PERCENT`` given, else its own default (energy 10 %, memory 5 %, ...), else
    ``threshold``. UserError for a name that is not a known metric."""
    out = {LATENCY: Metric(LATENCY, "ms", False, threshold)}
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        name, _, pct = item.partition(":")
        name = ALIASES.get(name.strip(), name.strip())
        if name not in KNOWN_METRICS:
            raise UserError(f"--metric {item!r}: unknown metric; known: latency, {', '.join(k for k in KNOWN_METRICS if k != LATENCY)}")
        unit, hib, default, absolute = KNOWN_METRICS[name]
        if pct:
            try:
                th = float(pct.rstrip("%")) / 100
            except ValueError:
                raise UserError(f"--metric {item!r}: the threshold after ':' is a percentage, e.g. {name}:10") from None
            if not 0 <= th < 10:
                raise UserError(f"--metric {item!r}: threshold {pct} % is out of range (0 to 1000)")
        else:
            th = default if default is not None else threshold
        out[name] = Metric(name, unit, hib, th, absolute)
    return tuple(out.values())


@dataclass(frozen=True)
class Options:
    """How to compare. ``threshold`` and ``alpha`` are fractions; ``correction`` is
    ``"bh"`` (Benjamini-Hochberg, false-discovery rate) or ``"holm"`` (family-wise)."""

    metrics: tuple[Metric, ...] = (Metric(LATENCY, "ms"),)
    alpha: float = DEFAULT_ALPHA
    correction: Literal["bh", "holm"] = "bh"
    confidence: float = DEFAULT_CONFIDENCE
    n_resamples: int = DEFAULT_RESAMPLES
    seed: int = 0
    case_glob: str | None = None


# ------------------------------------------------------------------------ statistics
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


# ------------------------------------------------------------------------ the verdict
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


# ------------------------------------------------------------------------ the cases
def unique_runs(runs: Sequence[Any], record: Callable[[Any], RunRecord] = lambda r: r,
                label: Callable[[Any], str] | None = None) -> tuple[list[Any], list[str]]:
    """``runs`` with each ``run_id`` once (a copied results file, or the same run given
    twice: counting it twice would double its samples). Of the copies the most recently
    updated is kept (then the one with most cases, then the first given). Returns the
    runs kept, in the order given, and one warning per run_id given more than once.
    ``record`` gets the RunRecord of an item (e.g. of a (path, record) pair), ``label``
    names an item in the warning (default: nothing more than the run_id)."""
    by_id: dict[str, list[int]] = {}
    for i, item in enumerate(runs):
        by_id.setdefault(record(item).run_id, []).append(i)
    keep: set[int] = set()
    warnings: list[str] = []
    for rid, idx in by_id.items():
        best = max(idx, key=lambda i: (record(runs[i]).updated or record(runs[i]).created,
                                       len(record(runs[i]).cases), -i))
        keep.add(best)
        if len(idx) > 1:
            where = f" ({', '.join(label(runs[i]) for i in idx)}; kept {label(runs[best])})" if label else ""
            warnings.append(f"run {rid} is given {len(idx)} times{where}: counted once")
    return [item for i, item in enumerate(runs) if i in keep], warnings


@dataclass
class _Side:
    """Every result of one case on one side (several runs when given a folder)."""

    results: list[tuple[RunRecord, CaseResult]] = field(default_factory=list)

    @property
    def ok(self) -> list[tuple[RunRecord, CaseResult]]:
        return [(r, c) for r, c in self.results if c.status == "ok" and c.measurement is not None]

    @property
    def last(self) -> CaseResult:
        return self.results[-1][1]

    def isolated(self) -> bool:
        ok = self.ok
        return bool(ok) and all(c.measurement.repeat_isolation == "process" for _, c in ok) and \
            sum(len(c.measurement.raw_times_s) for _, c in ok) >= PROCESS_ISOLATED_REPEATS

    def samples(self, unit: str) -> np.ndarray:
        """Latency samples, ms: per-repeat medians (``repeat``) or every iteration."""
        if unit == "repeat":
            vals = [float(np.median(r)) for _, c in self.ok for r in c.measurement.raw_times_s if r]
        else:
            vals = [t for _, c in self.ok for r in c.measurement.raw_times_s for t in r]
        return np.asarray(vals, float) * 1e3

    def batch(self) -> int:
        """Samples per step: a parallel case's whole group (as load_results counts it)."""
        c = self.ok[-1][1]
        return (c.facts.global_batch_size if c.facts is not None and c.facts.global_batch_size else None) \
            or c.case.batch_size

    def values(self, metric: str) -> np.ndarray:
        from .derive import case_row

        out = []
        for rec, c in self.ok:
            v = case_row(rec, c).get(metric)
            if v is not None and isinstance(v, (int, float)) and math.isfinite(v):
                out.append(float(v))
        return np.asarray(out, float)


def _collect(records: Iterable[RunRecord], case_glob: str | None) -> dict[str, _Side]:
    sides: dict[str, _Side] = {}
    for rec in sorted(records, key=lambda r: r.created):
        for c in rec.cases:
            if case_glob and not fnmatch.fnmatchcase(c.case_id, case_glob):
                continue
            sides.setdefault(c.case_id, _Side()).results.append((rec, c))
    return sides


BAD = ("failed", "oom", "timeout")


def _status_row(cid: str, b: _Side | None, n: _Side | None) -> dict[str, Any] | None:
    """The row of a case that has no numbers to compare, or None when it has."""
    row: dict[str, Any] = {"case_id": cid, "metric": LATENCY}
    if n is None:
        return {**row, "verdict": "missing", "regression": False,
                "note": f"not in the new run (was {b.last.status} in the baseline)", "status_baseline": b.last.status}
    if b is None:
        return {**row, "verdict": "new", "regression": False, "note": f"not in the baseline ({n.last.status} now)",
                "status_new": n.last.status}
    row.update(status_baseline=b.last.status, status_new=n.last.status)
    if n.ok and b.ok:
        return None
    nb = n.last
    if not n.ok and nb.status in BAD:
        if b.ok:
            return {**row, "verdict": "failed", "regression": True, "note": f"{nb.status} now: {nb.reason}"[:300]}
        return {**row, "verdict": "failed", "regression": False, "note": f"{nb.status} in both runs: {nb.reason}"[:300]}
    if not n.ok:  # skipped now
        if not b.ok:
            return {**row, "verdict": "unchanged", "regression": False, "note": f"skipped in both: {nb.reason}"[:300]}
        return {**row, "verdict": "missing", "regression": False, "note": f"skipped now: {nb.reason}"[:300]}
    return {**row, "verdict": "new", "regression": False,
            "note": f"{b.last.status} in the baseline ({b.last.reason})"[:300]}


def _minus1(v: float | None) -> float | None:
    return None if v is None else v - 1


def measure(a: Sequence[float], c: Sequence[float], metric: Metric, *, samples: str = "iteration",
            options: Options | None = None, seed: int = 0) -> dict[str, Any]:
    """The numbers of one case and metric (no verdict yet: that needs the p-values of
    every case, :func:`judge`). ``a`` the baseline's values, ``c`` the new run's;
    ``samples`` names their unit (repeat, iteration, run). The effect is relative
    (new / baseline - 1, threshold ``metric.threshold``) where the baseline's median is
    above 0, else absolute (new - baseline, in the metric's unit, threshold
    ``metric.abs_threshold``; ``effect`` says which)."""
    opts = options or Options()
    a, c = np.asarray(a, float), np.asarray(c, float)
    row: dict[str, Any] = {"metric": metric.name, "unit": metric.unit, "samples": samples, "n_baseline": int(a.size),
                           "n_new": int(c.size), "threshold": metric.threshold, "effect": "relative"}
    for k in ("baseline", "new", "change", "ci_low", "ci_high", "ci99_low", "ci99_high", "p_value", "min_p",
              "detectable"):
        row[k] = None
    if not a.size or not c.size:
        return row
    row["baseline"], row["new"] = float(np.median(a)), float(np.median(c))
    kw = dict(confidence=opts.confidence, n_resamples=opts.n_resamples, seed=seed)
    if row["baseline"] > 0:
        r = ratio_of_medians(a, c, **kw)
        row["change"] = _minus1(r["ratio"])
        for k in ("ci_low", "ci_high", "ci99_low", "ci99_high"):
            row[k] = _minus1(r[k])
        row["detectable"] = detectable_change(r["se_log"], opts.alpha)
    else:
        row.update(effect="absolute", threshold=metric.abs_threshold)
        if metric.abs_threshold is not None:
            r = difference_of_medians(a, c, **kw)
            row["change"] = r["difference"]
            for k in ("ci_low", "ci_high", "ci99_low", "ci99_high"):
                row[k] = r[k]
            if r["se"] is not None:
                from scipy.stats import norm

                row["detectable"] = float((norm.ppf(1 - opts.alpha / 2) + norm.ppf(POWER)) * r["se"])
    row["p_value"] = rank_test(a, c)
    row["min_p"] = min_p_value(a.size, c.size) if row["p_value"] is not None else None
    return row


def judge(row: dict[str, Any], metric: Metric, p_adjusted: float | None, m_tests: int,
          options: Options | None = None) -> Decision:
    """The :class:`Decision` for a row of :func:`measure`, given its adjusted p-value and
    the number of tests corrected together (the test can reach significance when its
    smallest p-value times ``m_tests`` is below alpha: a lone change among that many)."""
    opts = options or Options()
    mp = _num(row.get("min_p"))
    threshold = _num(row.get("threshold"))
    if threshold is None:  # a zero baseline of a metric without an absolute threshold
        return Decision("inconclusive", "none", f"baseline median is 0: no ratio, and {metric.name} has no "
                        "absolute threshold")
    return decide(_num(row.get("change")), (_num(row.get("ci_low")), _num(row.get("ci_high"))),
                  (_num(row.get("ci99_low")), _num(row.get("ci99_high"))), p_adjusted, threshold=threshold,
                  alpha=opts.alpha, n=(int(row["n_baseline"]), int(row["n_new"])),
                  test_can_reach=mp is not None and mp * max(m_tests, 1) < opts.alpha,
                  higher_is_better=metric.higher_is_better, per_run=row.get("samples") == "run")


def assess(a: Sequence[float], c: Sequence[float], metric: Metric = Metric(LATENCY, "ms"), *,
           samples: str = "iteration", options: Options | None = None, seed: int = 0) -> dict[str, Any]:
    """One case and metric compared on its own (one test: the adjusted p-value is the
    p-value): :func:`measure`'s row with ``verdict``, ``rule`` and ``why``."""
    row = measure(a, c, metric, samples=samples, options=options, seed=seed)
    d = judge(row, metric, _num(row["p_value"]), 1, options)
    return {**row, "p_adjusted": row["p_value"], "verdict": d.verdict, "rule": d.rule, "why": d.why}


def _case_metric(cid: str, metric: Metric, b: _Side, n: _Side, opts: Options, seed: int) -> dict[str, Any] | None:
    if metric.name == LATENCY:
        unit = "repeat" if b.isolated() and n.isolated() else "iteration"
        a, c = b.samples(unit), n.samples(unit)
    else:
        unit = "run"
        a, c = b.values(metric.name), n.values(metric.name)
        if not a.size and not c.size:
            return None  # this metric does not exist for this case (e.g. CUDA memory on CPU)
    row = {"case_id": cid, "status_baseline": "ok", "status_new": "ok",
           **measure(a, c, metric, samples=unit, options=opts, seed=seed)}
    if metric.name == LATENCY:
        ma, mc = row["baseline"], row["new"]
        row["throughput_baseline"] = b.batch() / ma * 1e3 if ma else None
        row["throughput_new"] = n.batch() / mc * 1e3 if mc else None
        if row["change"] is not None and row["effect"] == "relative":
            row["throughput_change"] = 1 / (1 + row["change"]) - 1
    if metric.name.startswith(("energy", "power")) and any(
            x.energy is not None and x.energy.energy_source == "estimated" for side in (b, n) for _, x in side.ok):
        row["estimated"] = True  # an estimate (TDP x load), not a measurement: said in the note
    row["device_baseline"] = b.ok[-1][1].device_name
    row["device_new"] = n.ok[-1][1].device_name
    if not a.size or not c.size:
        missing = "baseline" if not a.size else "new run"
        return {**row, "verdict": "inconclusive", "regression": False, "rule": "none",
                "note": f"no {metric.name} in the {missing}"}
    return row


# ------------------------------------------------------------ machine conditions
# "Materially different conditions" (the machine_changed mark): the sides' figures, each
# the mean over the compared results of a case, differ by at least
MACHINE_CPU_POINTS = 10.0  # background CPU load, points of the machine's CPU (all cores = 100)
MACHINE_STEAL_POINTS = 5.0  # CPU steal time (a VM's hypervisor serving others), points
MACHINE_IDLE_POINTS = 10.0  # system CPU load over the idle baseline, points
# ... or a GPU was slowed by the machine (heat, a power brake) on one side only. Not
# sw_power_cap: that is the workload's own power, which the change itself can move.
MACHINE_THROTTLE = ("hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake")


def conditions(results: Iterable[tuple[RunRecord, CaseResult]]) -> dict[str, Any]:
    """What else the machine was doing while ``results`` were measured, as recorded:
    ``background_cpu_pct`` (system busy CPU time minus the worker's, % of the machine;
    steal counts as busy), ``steal_pct`` (CPU steal time, % of the machine),
    ``idle_cpu_pct`` (system load over the segment's idle baseline), ``cpu_mhz`` and
    ``gpu_sm_mhz`` (mean clocks), ``throttle`` (GPU throttle reasons seen). Means over
    the results that recorded each; None where none did."""
    got: dict[str, list[float]] = {k: [] for k in ("background_cpu_pct", "steal_pct", "idle_cpu_pct", "cpu_mhz",
                                                   "gpu_sm_mhz")}
    throttle: set[str] = set()
    for rec, c in results:
        host = c.collectors.get("host")
        if host is not None:
            s, ncpu = host.summary, host.info.get("logical_cpus")
            if "cpu_util_pct_mean" in s and "proc_cpu_pct_mean" in s and isinstance(ncpu, int) and ncpu > 0:
                got["background_cpu_pct"].append(max(0.0, s["cpu_util_pct_mean"] - s["proc_cpu_pct_mean"] / ncpu))
            if "cpu_steal_pct_mean" in s:
                got["steal_pct"].append(s["cpu_steal_pct_mean"])
            if "cpu_freq_mhz_mean" in s:
                got["cpu_mhz"].append(s["cpu_freq_mhz_mean"])
        for r in c.collectors.values():
            if r.device is not None and r.device in (c.device_resolved, c.case.device) \
                    and "gpu_sm_clock_mhz_mean" in r.summary:
                got["gpu_sm_mhz"].append(r.summary["gpu_sm_clock_mhz_mean"])
        seg = rec.segments[c.segment] if c.segment < len(rec.segments) else None
        if seg is not None and seg.idle_baseline is not None and seg.idle_baseline.cpu_util_pct is not None:
            got["idle_cpu_pct"].append(seg.idle_baseline.cpu_util_pct)
        for f in c.flags:
            if f.flag == "throttled":
                # "nvidia:0: hw_thermal, sw_power_cap" (NvidiaSampler.quality_flags)
                throttle.update(t.strip() for t in f.detail.split(": ", 1)[-1].split(",") if t.strip())
    out: dict[str, Any] = {k: (float(np.mean(v)) if v else None) for k, v in got.items()}
    out["throttle"] = sorted(throttle)
    return out


def machine_changes(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The material differences between two sides' :func:`conditions`, one phrase each
    with the figures (empty: comparable conditions)."""
    out = []
    for key, limit, what in (("background_cpu_pct", MACHINE_CPU_POINTS, "background CPU"),
                             ("steal_pct", MACHINE_STEAL_POINTS, "CPU steal"),
                             ("idle_cpu_pct", MACHINE_IDLE_POINTS, "idle-baseline CPU")):
        b, n = base.get(key), new.get(key)
        if b is not None and n is not None and abs(n - b) >= limit:
            out.append(f"{what} {b:.1f} -> {n:.1f} % of the machine")
    for side, mine, other in (("baseline", base, new), ("new run", new, base)):
        only = sorted(set(mine.get("throttle") or ()) - set(other.get("throttle") or ()) & set(MACHINE_THROTTLE))
        if only:
            out.append(f"GPU throttled ({', '.join(only)}) in the {side} only")
    return out


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` found: one row per case and metric (``rows``), the
    environment differences (``env``, rows of key / baseline / new / hardware), the
    hardware differences that make the runs not comparable, notes, and each side's
    machine conditions over every compared result (``load``: :func:`conditions`)."""

    rows: Any  # pandas.DataFrame
    env: Any  # pandas.DataFrame
    hardware: tuple[str, ...]
    notes: tuple[str, ...]
    options: Options
    load: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def regressions(self) -> int:
        """Cases with at least one regressed (or newly failed) metric."""
        return int(self.rows.loc[self.rows["regression"], "case_id"].nunique()) if len(self.rows) else 0

    @property
    def machine_changed(self) -> int:
        """Cases with at least one verdict marked machine_changed."""
        return int(self.rows.loc[self.rows["machine_changed"], "case_id"].nunique()) if len(self.rows) else 0

    def counts(self) -> dict[str, int]:
        if not len(self.rows):
            return {}
        per_case = self.rows.groupby("case_id")["verdict"].agg(lambda v: min(v, key=VERDICTS.index))
        vc = per_case.value_counts()
        return {v: int(vc[v]) for v in VERDICTS if v in vc}


COLUMNS = ("case_id", "metric", "verdict", "regression", "rule", "machine_changed", "machine", "note", "unit",
           "samples", "n_baseline", "n_new", "baseline", "new", "effect", "change", "ci_low", "ci_high", "ci99_low",
           "ci99_high", "threshold", "p_value", "p_adjusted", "min_p", "detectable", "status_baseline", "status_new")


def compare(baseline: Sequence[RunRecord], new: Sequence[RunRecord], options: Options = Options()) -> Comparison:
    """Compare the runs ``baseline`` with the runs ``new``, cases matched by ``case_id``.
    A run given twice on one side (same run_id) counts once, with a note. Returns a
    :class:`Comparison` (rows empty when no case matches); raises nothing for
    differences (they are data)."""
    import pandas as pd

    baseline, dup_b = unique_runs(list(baseline))
    new, dup_n = unique_runs(list(new))
    B, N = _collect(baseline, options.case_glob), _collect(new, options.case_glob)
    ids = list(dict.fromkeys([*B, *N]))
    rows: list[dict[str, Any]] = []
    for i, cid in enumerate(ids):
        b, n = B.get(cid), N.get(cid)
        st = _status_row(cid, b, n)
        if st is not None:
            rows.append(st)
            continue
        changed = machine_changes(conditions(b.ok), conditions(n.ok))
        for metric in options.metrics:
            r = _case_metric(cid, metric, b, n, options, options.seed + i)
            if r is not None:
                rows.append({**r, "machine_changed": bool(changed), "machine": "; ".join(changed) or None})
    df = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = None
    df["machine_changed"] = df["machine_changed"].fillna(False).astype(bool)
    tested = df["p_value"].notna() & df["verdict"].isna()
    m_tests = int(tested.sum())
    df["p_adjusted"] = None
    if tested.any():
        df.loc[tested, "p_adjusted"] = adjust(df.loc[tested, "p_value"].astype(float).to_numpy(), options.correction)
    by_name = {m.name: m for m in options.metrics}
    for idx in df.index[df["verdict"].isna()]:
        row = df.loc[idx].to_dict()
        d = judge(row, by_name[row["metric"]], _num(row["p_adjusted"]), m_tests, options)
        df.at[idx, "verdict"], df.at[idx, "rule"] = d.verdict, d.rule
        df.at[idx, "regression"] = d.verdict == "regressed"
        df.at[idx, "note"] = _note(row, d, options)
    df["regression"] = df["regression"].fillna(False).astype(bool)
    order = {v: i for i, v in enumerate(VERDICTS)}
    if len(df):
        df = df.sort_values(by=["verdict", "case_id"], key=lambda s: s.map(order) if s.name == "verdict" else s,
                            kind="stable").reset_index(drop=True)
    env, hardware = environment_diff(baseline, new)
    hardware += _device_diffs(B, N)
    notes = [*dup_b, *dup_n, *_notes(df, options, m_tests)] if len(df) else [*dup_b, *dup_n]
    load = {"baseline": conditions(r for s in B.values() for r in s.ok),
            "new": conditions(r for s in N.values() for r in s.ok)}
    return Comparison(df, env, tuple(dict.fromkeys(hardware)), tuple(notes), options, load)


def _num(v) -> float | None:
    """A float (inf kept: an unbounded interval), or None (missing, NaN, not a number)."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _note(row: dict[str, Any], d: Decision, opts: Options) -> str:
    parts = []
    if row.get("estimated") is True:
        parts.append("energy estimated, not measured")
    if row.get("effect") == "absolute":
        th = _num(row.get("threshold"))
        parts.append("zero baseline: absolute change" + (f", threshold {th:g} {row.get('unit') or ''}".rstrip()
                                                          if th is not None else ""))
    if d.rule == "threshold":
        parts.append("one value per side: threshold only")
    elif d.rule == "ci99":
        lo, hi, th = _num(row.get("ci99_low")), _num(row.get("ci99_high")), _num(row.get("threshold"))
        if row.get("effect") == "relative":
            ci, th_text = f"[{lo:+.1%}, {hi:+.1%}]", f"{th:.1%}"
        else:
            ci, th_text = f"[{lo:+.3g}, {hi:+.3g}]", f"{th:g}"
        parts.append(f"99 % CI {ci} wholly beyond +-{th_text}; {int(row['n_baseline'])} vs {int(row['n_new'])} "
                     f"{row['samples']}s cannot reach p < {opts.alpha:g}")
    elif d.verdict == "inconclusive":
        mp = _num(row.get("min_p"))
        if mp is not None and mp >= opts.alpha:
            need = min_samples(opts.alpha)
            parts.append(f"{int(row['n_baseline'])} vs {int(row['n_new'])} {row['samples']}s cannot reach "
                         f"p < {opts.alpha:g}; needs >= {need} per side; the 99 % CI reaches inside the threshold")
        elif d.rule == "none" and (mp is None or _num(row.get("threshold")) is None):
            parts.append(d.why)
        else:
            dc = _num(row.get("detectable"))
            if dc is not None:
                parts.append(f"detectable >= {dc:.1%}" if row.get("effect") == "relative"
                             else f"detectable >= {dc:.3g} {row.get('unit') or ''}".rstrip())
    if row.get("machine_changed") is True:
        parts.append(f"machine_changed: {row.get('machine')}")
    return "; ".join(parts)


def _notes(df, opts: Options, m_tests: int) -> tuple[str, ...]:
    notes = []
    lat = df[(df["metric"] == LATENCY) & df["samples"].notna()]
    if len(lat) and (lat["samples"] == "iteration").any():
        k = int((lat["samples"] == "iteration").sum())
        notes.append(
            f"{k} case(s) compared on per-iteration times: repeats < {PROCESS_ISOLATED_REPEATS} (or not each in its "
            "own process), so their verdicts rest on iteration noise only, which understates run-to-run drift; "
            f"run CI suites with repeats >= {PROCESS_ISOLATED_REPEATS} (10 recommended)")
    corr = "Benjamini-Hochberg (FDR)" if opts.correction == "bh" else "Holm (FWER)"
    notes.append(f"rule test: Mann-Whitney U two-sided, {corr} over {m_tests} tests at {opts.alpha:g}; where it "
                 f"cannot reach that, rule ci99: the 99 % bootstrap CI of the ratio of medians wholly beyond the "
                 f"threshold; unchanged (ci95): the {opts.confidence * 100:g} % CI inside it")
    return tuple(notes)


# ------------------------------------------------------------------ environments
# What is compared between environments (a key missing from both is not shown); any key
# an environment records beyond these (a newer hwbench's facts) is compared too.
ENV_KEYS = ("hostname", "cpu_model", "accelerators", "driver_version", "cuda_driver_version", "hwbench_version",
            "hwbench_git_commit", "torch_version", "torch_cuda_version", "python_version", "torch_num_threads",
            "cpu_affinity", "cpu_cores_logical", "cpu_freq_max_mhz", "memory_total_bytes", "cuda_visible_devices", "os")
ENV_IGNORED = ("cpu_flags", "cpu_freq_max_source", "platform", "python_implementation", "machine",
               "cpu_cores_physical")
HARDWARE_KEYS = ("cpu_model", "accelerators")


def _env_values(env) -> dict[str, str]:
    d = env.model_dump()
    out: dict[str, str] = {}
    for k, v in d.items():
        if k in ENV_IGNORED:
            continue
        if k == "accelerators":
            v = ", ".join(g.get("name", "?") for g in v) or None
            clocks = [str(g[c]) for g in d["accelerators"] for c in ("power_limit_w",) if g.get(c) is not None]
            if clocks:
                out["gpu_power_limit_w"] = ", ".join(clocks)
        if v is None or v == [] or v == {}:
            continue
        out[k] = str(v)[:12] if k == "hwbench_git_commit" else str(v)
    return out


def environment_diff(baseline: Sequence[RunRecord], new: Sequence[RunRecord]):
    """What differs between the environments (every segment) of the two sides, and the
    suites' settings: a DataFrame (key, baseline, new, hardware) and the hardware
    differences (CPU model, GPU names) as one-line strings."""
    import pandas as pd

    def side(recs):
        vals: dict[str, list[str]] = {}
        for rec in recs:
            for seg in rec.segments:
                for k, v in _env_values(seg.environment).items():
                    vals.setdefault(k, [])
                    if v not in vals[k]:
                        vals[k].append(v)
            for k, v in (rec.settings() or {}).items():
                key = f"settings.{k}"
                vals.setdefault(key, [])
                if str(v) not in vals[key]:
                    vals[key].append(str(v))
        return {k: ", ".join(v) for k, v in vals.items()}

    b, n = side(baseline), side(new)
    keys = [k for k in ENV_KEYS if k in b or k in n] + sorted((set(b) | set(n)) - set(ENV_KEYS))
    rows, hardware = [], []
    for k in keys:
        if b.get(k) != n.get(k):
            hw = k in HARDWARE_KEYS
            rows.append({"key": k, "baseline": b.get(k), "new": n.get(k), "hardware": hw})
            if hw:
                hardware.append(f"{k}: {b.get(k)} -> {n.get(k)}")
    return pd.DataFrame(rows, columns=["key", "baseline", "new", "hardware"]), hardware


def _device_diffs(B: dict[str, _Side], N: dict[str, _Side]) -> list[str]:
    out = []
    for cid in B.keys() & N.keys():
        bd = {c.device_name for _, c in B[cid].ok}
        nd = {c.device_name for _, c in N[cid].ok}
        if bd and nd and bd != nd:
            out.append(f"device: {', '.join(map(str, sorted(bd, key=str)))} -> {', '.join(map(str, sorted(nd, key=str)))}")
    return sorted(set(out))
