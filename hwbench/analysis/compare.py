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
* **Effect**: the ratio of medians, new / baseline, with a 95 % percentile-bootstrap
  confidence interval (:func:`ratio_of_medians`).
* **Test**: Mann-Whitney U, two-sided (:func:`rank_test`); the p-values of every
  (case, metric) compared are corrected together, Benjamini-Hochberg by default
  (false-discovery rate 5 %) or Holm (family-wise error rate) (:func:`adjust`).
* **Verdict** (:func:`verdict`): ``regressed`` / ``improved`` when the change is at
  least the threshold (5 % by default) *and* significant after the correction;
  ``unchanged`` when not significant and the interval rules out a change of the
  threshold, or significant but smaller than the threshold; otherwise
  ``inconclusive``, with the smallest change the case could have detected.
* **Metrics without per-iteration samples** (energy, memory, accuracy, ...): one value
  per run. With one run per side no test is possible: the verdict rests on the metric's
  threshold alone (memory peaks are deterministic; energy's default threshold is 10 %,
  twice latency's, because energy of one window carries the noise of its source). With
  several runs per side (folders), the per-run values are tested like the above.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from ..errors import UserError
from ..records import CaseResult, RunRecord

VERDICTS = ("regressed", "failed", "improved", "inconclusive", "missing", "new", "unchanged")
DEFAULT_ALPHA = 0.05
DEFAULT_THRESHOLD = 0.05
DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
# Bootstrap at most this many values per side (a seeded random subsample beyond it): the
# interval of a subsample is wider, never narrower, and 1000 x 2000 resamples stay fast.
MAX_BOOTSTRAP_N = 1000
# Each repeat in its own process from this many repeats on (hwbench.runner).
PROCESS_ISOLATED_REPEATS = 3
POWER = 0.8  # for the smallest detectable change


@dataclass(frozen=True)
class Metric:
    """A compared quantity: ``name`` (the default ``latency_ms_p50``, or a column of
    :func:`hwbench.load_results`), its unit, its direction, and its threshold (a
    fraction: 0.05 = 5 %)."""

    name: str
    unit: str
    higher_is_better: bool = False
    threshold: float = DEFAULT_THRESHOLD


LATENCY = "latency_ms_p50"
# Metrics ``--metric`` accepts: (unit, higher is better, default threshold or None for --threshold).
KNOWN_METRICS: dict[str, tuple[str, bool, float | None]] = {
    LATENCY: ("ms", False, None),
    "energy_per_sample_j": ("J", False, 0.10),
    "energy_per_token_j": ("J", False, 0.10),
    "energy_j": ("J", False, 0.10),
    "power_w_mean": ("W", False, 0.10),
    "memory_peak_bytes": ("B", False, 0.05),
    "memory_reserved_peak_bytes": ("B", False, 0.05),
    "host_rss_peak_bytes": ("B", False, 0.05),
    "proc_rss_bytes_max": ("B", False, 0.05),
    "ttft_ms_p50": ("ms", False, None),
    "tpot_ms_p50": ("ms", False, None),
    "first_iter_ms": ("ms", False, 0.20),
    "compile_s": ("s", False, 0.20),
    "rel_l2_error": ("", False, 0.10),
    "max_abs_error": ("", False, 0.10),
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
        unit, hib, default = KNOWN_METRICS[name]
        if pct:
            try:
                th = float(pct.rstrip("%")) / 100
            except ValueError:
                raise UserError(f"--metric {item!r}: the threshold after ':' is a percentage, e.g. {name}:10") from None
            if not 0 <= th < 10:
                raise UserError(f"--metric {item!r}: threshold {pct} % is out of range (0 to 1000)")
        else:
            th = default if default is not None else threshold
        out[name] = Metric(name, unit, hib, th)
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
def min_p_value(n: int, m: int) -> float:
    """The smallest two-sided p-value an exact Mann-Whitney U test can give for samples
    of ``n`` and ``m`` values (no ties): 2 / C(n + m, n). A test whose smallest p is
    above the significance level can never find a difference, however large."""
    if n < 1 or m < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n + m, n))


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
    """Two-sided Mann-Whitney U p-value for ``a`` vs ``b`` (scipy.stats.mannwhitneyu,
    method "auto": exact for small samples without ties, else the normal approximation
    with tie and continuity corrections). None with fewer than 2 values on a side, or
    when every value on both sides is equal (p = 1 is then returned as 1.0)."""
    from scipy.stats import mannwhitneyu

    if len(a) < 2 or len(b) < 2:
        return None
    if np.ptp(np.concatenate([a, b])) == 0:
        return 1.0
    return float(mannwhitneyu(a, b, alternative="two-sided", method="auto").pvalue)


def _median_ratio(x, y, axis=-1):
    return np.median(y, axis=axis) / np.median(x, axis=axis)


def ratio_of_medians(a: Sequence[float], b: Sequence[float], *, confidence: float = DEFAULT_CONFIDENCE,
                     n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, float | None]:
    """median(b) / median(a) with a percentile-bootstrap confidence interval
    (scipy.stats.bootstrap, two independent samples resampled separately, ``confidence``
    95 %, ``n_resamples`` 2000, seeded). Percentile rather than BCa: BCa's acceleration
    comes from the jackknife, which is not consistent for the median. Also returns the
    bootstrap standard error of log(ratio), from which :func:`detectable_change` is
    computed. Samples above MAX_BOOTSTRAP_N values are subsampled (seeded) first.
    Needs 2 values per side for an interval; fewer give the ratio alone."""
    from scipy.stats import bootstrap

    a, b = np.asarray(a, float), np.asarray(b, float)
    ma, mb = float(np.median(a)), float(np.median(b))
    out: dict[str, float | None] = {"ratio": mb / ma if ma > 0 else None, "ci_low": None, "ci_high": None, "se_log": None}
    if out["ratio"] is None or len(a) < 2 or len(b) < 2:
        return out
    rng = np.random.default_rng(seed)
    a = rng.choice(a, MAX_BOOTSTRAP_N, replace=False) if len(a) > MAX_BOOTSTRAP_N else a
    b = rng.choice(b, MAX_BOOTSTRAP_N, replace=False) if len(b) > MAX_BOOTSTRAP_N else b
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        r = out["ratio"]
        return {**out, "ci_low": r, "ci_high": r, "se_log": 0.0}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "degenerate" distributions: handled below
        res = bootstrap((a, b), _median_ratio, vectorized=True, paired=False, n_resamples=n_resamples,
                        confidence_level=confidence, method="percentile", rng=rng)
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    dist = np.asarray(res.bootstrap_distribution, float)
    dist = dist[np.isfinite(dist) & (dist > 0)]
    se = float(np.std(np.log(dist), ddof=1)) if dist.size > 1 else None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo = hi = out["ratio"]
    return {**out, "ci_low": lo, "ci_high": hi, "se_log": se}


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


def verdict(change: float | None, ci: tuple[float | None, float | None], p_adj: float | None, *, threshold: float,
            alpha: float, higher_is_better: bool = False) -> str:
    """``regressed`` / ``improved`` / ``unchanged`` / ``inconclusive`` for a relative
    change (new / baseline - 1) and its interval (same scale).

    * significant (``p_adj < alpha``) and ``|change| >= threshold``: regressed or
      improved, by the metric's direction;
    * significant but smaller than the threshold: unchanged (real, but too small to act on);
    * not significant, and the interval lies inside (-threshold, +threshold): unchanged;
    * not significant otherwise: inconclusive (too noisy to tell).

    Without a p-value (one value per side: nothing to test) the threshold decides alone.
    """
    if change is None:
        return "inconclusive"
    worse = change < 0 if higher_is_better else change > 0
    big = abs(change) >= threshold
    if p_adj is None:
        if ci[0] is None:  # a single value per side
            return ("regressed" if worse else "improved") if big else "unchanged"
        p_adj = 1.0
    if p_adj < alpha:
        return ("regressed" if worse else "improved") if big else "unchanged"
    lo, hi = ci
    if lo is not None and hi is not None and -threshold < lo and hi < threshold:
        return "unchanged"
    return "inconclusive"


# ------------------------------------------------------------------------ the cases
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


def _compare_metric(cid: str, metric: Metric, b: _Side, n: _Side, opts: Options, seed: int) -> dict[str, Any] | None:
    row: dict[str, Any] = {"case_id": cid, "metric": metric.name, "unit": metric.unit, "threshold": metric.threshold,
                           "status_baseline": "ok", "status_new": "ok"}
    if metric.name == LATENCY:
        unit = "repeat" if b.isolated() and n.isolated() else "iteration"
        a, c = b.samples(unit), n.samples(unit)
        bs = b.ok[-1][1].case.batch_size
        row["throughput_baseline"] = bs / np.median(a) * 1e3 if a.size and np.median(a) > 0 else None
        row["throughput_new"] = bs / np.median(c) * 1e3 if c.size and np.median(c) > 0 else None
    else:
        unit = "run"
        a, c = b.values(metric.name), n.values(metric.name)
        if not a.size and not c.size:
            return None  # this metric does not exist for this case (e.g. CUDA memory on CPU)
    row.update(samples=unit, n_baseline=int(a.size), n_new=int(c.size))
    if metric.name.startswith(("energy", "power")) and any(
            x.energy is not None and x.energy.energy_source == "estimated" for side in (b, n) for _, x in side.ok):
        row["estimated"] = True  # an estimate (TDP x load), not a measurement: said in the note
    row["device_baseline"] = b.ok[-1][1].device_name
    row["device_new"] = n.ok[-1][1].device_name
    if not a.size or not c.size:
        missing = "baseline" if not a.size else "new run"
        return {**row, "verdict": "inconclusive", "regression": False, "note": f"no {metric.name} in the {missing}"}
    row["baseline"], row["new"] = float(np.median(a)), float(np.median(c))
    r = ratio_of_medians(a, c, confidence=opts.confidence, n_resamples=opts.n_resamples, seed=seed)
    ratio = r["ratio"]
    row["change"] = ratio - 1 if ratio is not None else None
    row["ci_low"] = r["ci_low"] - 1 if r["ci_low"] is not None else None
    row["ci_high"] = r["ci_high"] - 1 if r["ci_high"] is not None else None
    row["p_value"] = rank_test(a, c)
    row["min_p"] = min_p_value(a.size, c.size) if row["p_value"] is not None else None
    row["detectable"] = detectable_change(r["se_log"], opts.alpha)
    if metric.name == LATENCY and ratio:
        row["throughput_change"] = 1 / ratio - 1
    return row


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` found: one row per case and metric (``rows``), the
    environment differences (``env``, rows of key / baseline / new / hardware), the
    hardware differences that make the runs not comparable, and notes."""

    rows: Any  # pandas.DataFrame
    env: Any  # pandas.DataFrame
    hardware: tuple[str, ...]
    notes: tuple[str, ...]
    options: Options

    @property
    def regressions(self) -> int:
        """Cases with at least one regressed (or newly failed) metric."""
        return int(self.rows.loc[self.rows["regression"], "case_id"].nunique()) if len(self.rows) else 0

    def counts(self) -> dict[str, int]:
        if not len(self.rows):
            return {}
        per_case = self.rows.groupby("case_id")["verdict"].agg(lambda v: min(v, key=VERDICTS.index))
        vc = per_case.value_counts()
        return {v: int(vc[v]) for v in VERDICTS if v in vc}


def compare(baseline: Sequence[RunRecord], new: Sequence[RunRecord], options: Options = Options()) -> Comparison:
    """Compare the runs ``baseline`` with the runs ``new``, cases matched by ``case_id``.
    Returns a :class:`Comparison`; raises nothing for differences (they are data)."""
    import pandas as pd

    B, N = _collect(baseline, options.case_glob), _collect(new, options.case_glob)
    ids = list(dict.fromkeys([*B, *N]))
    rows: list[dict[str, Any]] = []
    for i, cid in enumerate(ids):
        b, n = B.get(cid), N.get(cid)
        st = _status_row(cid, b, n)
        if st is not None:
            rows.append(st)
            continue
        for metric in options.metrics:
            r = _compare_metric(cid, metric, b, n, options, options.seed + i)
            if r is not None:
                rows.append(r)
    df = pd.DataFrame(rows)
    for col in ("p_value", "p_adjusted", "change", "ci_low", "ci_high", "detectable", "min_p", "note", "samples"):
        if col not in df.columns:
            df[col] = None
    tested = df["p_value"].notna() & df["verdict"].isna() if "verdict" in df.columns else df["p_value"].notna()
    if "verdict" not in df.columns:
        df["verdict"] = None
        df["regression"] = False
    df["p_adjusted"] = None
    if tested.any():
        df.loc[tested, "p_adjusted"] = adjust(df.loc[tested, "p_value"].astype(float).to_numpy(), options.correction)
    by_name = {m.name: m for m in options.metrics}
    m_tests = int(tested.sum())
    for idx in df.index[df["verdict"].isna()]:
        row = df.loc[idx]
        metric = by_name[row["metric"]]
        pa = row["p_adjusted"]
        pa = None if pa is None or (isinstance(pa, float) and math.isnan(pa)) else float(pa)
        lo, hi = _num(row["ci_low"]), _num(row["ci_high"])
        v = verdict(_num(row["change"]), (lo, hi), pa, threshold=metric.threshold, alpha=options.alpha,
                    higher_is_better=metric.higher_is_better)
        df.at[idx, "verdict"] = v
        df.at[idx, "regression"] = v == "regressed"
        df.at[idx, "note"] = _note(row, v, options, m_tests)
    df["regression"] = df["regression"].astype(bool)
    order = {v: i for i, v in enumerate(VERDICTS)}
    df = df.sort_values(by=["verdict", "case_id"], key=lambda s: s.map(order) if s.name == "verdict" else s,
                        kind="stable").reset_index(drop=True)
    env, hardware = environment_diff(baseline, new)
    hardware += _device_diffs(B, N)
    notes = _notes(df, options, m_tests)
    return Comparison(df, env, tuple(dict.fromkeys(hardware)), notes, options)


def _num(v) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _note(row, v: str, opts: Options, m_tests: int) -> str:
    parts = []
    if row.get("estimated") is True:
        parts.append("energy estimated, not measured")
    if row.get("samples") == "run" and _num(row.get("p_value")) is None:
        parts.append("one value per side: threshold only")
    if v == "inconclusive":
        mp = _num(row.get("min_p"))
        if mp is not None and mp >= opts.alpha:
            need = min_samples(opts.alpha)
            parts.append(f"{int(row['n_baseline'])} vs {int(row['n_new'])} {row['samples']}s cannot reach "
                         f"p < {opts.alpha:g}; needs >= {need} per side")
        else:
            d = _num(row.get("detectable"))
            if d is not None:
                parts.append(f"detectable >= {d:.1%}")
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
    notes.append(f"Mann-Whitney U two-sided, {corr} over {m_tests} tests at {opts.alpha:g}; "
                 f"{opts.confidence:.0%} bootstrap CI of the ratio of medians")
    return tuple(notes)


# ------------------------------------------------------------------ environments
# What is compared between environments (a key missing from both is not shown); any key
# an environment records beyond these (a newer hwbench's facts) is compared too.
ENV_KEYS = ("hostname", "cpu_model", "gpus", "driver_version", "cuda_driver_version", "hwbench_version",
            "hwbench_git_commit", "torch_version", "torch_cuda_version", "python_version", "torch_num_threads",
            "cpu_affinity", "cpu_cores_logical", "cpu_freq_max_mhz", "memory_total_bytes", "cuda_visible_devices", "os")
ENV_IGNORED = ("cpu_flags", "cpu_freq_max_source", "platform", "python_implementation", "machine",
               "cpu_cores_physical")
HARDWARE_KEYS = ("cpu_model", "gpus")


def _env_values(env) -> dict[str, str]:
    d = env.model_dump()
    out: dict[str, str] = {}
    for k, v in d.items():
        if k in ENV_IGNORED:
            continue
        if k == "gpus":
            v = ", ".join(g.get("name", "?") for g in v) or None
            clocks = [str(g[c]) for g in d["gpus"] for c in ("power_limit_w",) if g.get(c) is not None]
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
