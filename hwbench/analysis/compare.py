"""Compare two sets of runs case by case: ratio of medians with a confidence interval, a
rank test, a correction for the number of cases compared, and a verdict per case and
metric. Pure functions over records; the verdicts are data (a DataFrame), and the exit
code is decided once, at the command line (:mod:`hwbench.commands.regression`).

The statistics, with their defaults (each function's docstring says more; the test and
intervals are in :mod:`.significance`, the rules in :mod:`.verdicts`, the machine
conditions and environment differences in :mod:`.conditions`):

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
from typing import Any, Callable, Iterable, Iterator, Literal, Protocol, Sequence

import numpy as np

from ..errors import UserError
from ..records import PROCESS_ISOLATED_REPEATS, CaseResult, RunRecord

# The method's parts, each in its own module, are importable from here too.
from .conditions import (ENV_IGNORED, ENV_KEYS, HARDWARE_KEYS, MACHINE_CPU_POINTS, MACHINE_IDLE_POINTS,  # noqa: F401
                         MACHINE_STEAL_POINTS, MACHINE_THROTTLE, conditions, environment_diff, machine_changes,
                         merge, readings, summarize)
from .significance import (CI_RULE_CONFIDENCE, DEFAULT_ALPHA, DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES,  # noqa: F401
                           MAX_BOOTSTRAP_N, MAX_EXACT_PAIRS, POWER, adjust, detectable_change, difference_of_medians,
                           min_p_value, min_samples, rank_test, ratio_of_medians)
from .verdicts import RULES, VERDICTS, Decision, decide  # noqa: F401

DEFAULT_THRESHOLD = 0.05


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


# ------------------------------------------------------------------------ the cases
def unique_runs(runs: Sequence[Any], record: Callable[[Any], RunRecord] = lambda r: r,
                label: Callable[[Any], str] | None = None,
                size: Callable[[Any], int] | None = None) -> tuple[list[Any], list[str]]:
    """``runs`` with each ``run_id`` once (a copied results file, or the same run given
    twice: counting it twice would double its samples). Of the copies the most recently
    updated is kept (then the one with most cases, then the first given). Returns the
    runs kept, in the order given, and one warning per run_id given more than once.
    ``record`` gets the RunRecord of an item (e.g. of a (path, record) pair), ``label``
    names an item in the warning (default: nothing more than the run_id), ``size`` its
    number of cases (default: ``len(record(item).cases)``; runs held without their cases
    count them with :func:`case_count`)."""
    size = size or (lambda item: len(record(item).cases))
    by_id: dict[str, list[int]] = {}
    for i, item in enumerate(runs):
        by_id.setdefault(record(item).run_id, []).append(i)
    keep: set[int] = set()
    warnings: list[str] = []
    for rid, idx in by_id.items():
        best = max(idx, key=lambda i: (record(runs[i]).updated or record(runs[i]).created,
                                       size(runs[i]), -i))
        keep.add(best)
        if len(idx) > 1:
            where = f" ({', '.join(label(runs[i]) for i in idx)}; kept {label(runs[best])})" if label else ""
            warnings.append(f"run {rid} is given {len(idx)} times{where}: counted once")
    return [item for i, item in enumerate(runs) if i in keep], warnings


class CaseSource(Protocol):
    """Where :func:`compare` finds the cases of runs given without them (the store,
    :mod:`hwbench.store.records`): it then holds each run's record and one case's
    results at a time, not every run's results (raw times included) at once."""

    def case_ids(self, rec: RunRecord) -> Sequence[str] | None:
        """The case_ids of ``rec``'s cases, in the run's order; None for a run that
        holds its cases (``rec.cases``)."""

    def load(self, wanted: Iterable[tuple[str, list[tuple[RunRecord, int]]]]) -> Iterator[list[CaseResult]]:
        """For each ``(case_id, [(run, index of the case in the run), ...])`` of
        ``wanted``, in order, those cases' results (raw times included), in the order
        asked. It may read ahead in ``wanted`` (to fetch several cases at once)."""


def case_count(rec: RunRecord, source: CaseSource | None = None) -> int:
    """The number of cases of ``rec``, held or not (:class:`CaseSource`)."""
    held = source.case_ids(rec) if source is not None else None
    return len(rec.cases) if held is None else len(held)


@dataclass
class _Side:
    """Every result of one case on one side (several runs when given a folder). A
    result not loaded yet (:class:`CaseSource`) is its index in its run."""

    results: list[tuple[RunRecord, Any]] = field(default_factory=list)

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


def _collect(records: Iterable[RunRecord], case_glob: str | None,
             source: CaseSource | None = None) -> dict[str, _Side]:
    sides: dict[str, _Side] = {}
    for rec in sorted(records, key=lambda r: r.created):
        held = source.case_ids(rec) if source is not None else None
        cases = [(c.case_id, c) for c in rec.cases] if held is None else [(cid, k) for k, cid in enumerate(held)]
        for cid, c in cases:
            if case_glob and not fnmatch.fnmatchcase(cid, case_glob):
                continue
            sides.setdefault(cid, _Side()).results.append((rec, c))
    return sides


def _loaded(ids: list[str], B: dict[str, _Side], N: dict[str, _Side],
            source: CaseSource | None) -> Iterator[tuple[str, _Side | None, _Side | None]]:
    """Each case of ``ids`` in order with its sides, every result loaded (from
    ``source`` where it holds them): one case's results in memory at a time (the sides
    loaded for a case are emptied when the next case is asked for)."""
    if source is None:
        yield from ((cid, B.get(cid), N.get(cid)) for cid in ids)
        return

    def wanted():
        for cid in ids:
            yield cid, [(r, c) for side in (B.get(cid), N.get(cid)) if side is not None
                        for r, c in side.results if isinstance(c, int)]

    for cid, got in zip(ids, source.load(wanted())):
        it = iter(got)

        def fill(side: _Side | None) -> _Side | None:
            return None if side is None else _Side([(r, next(it) if isinstance(c, int) else c)
                                                    for r, c in side.results])

        b, n = fill(B.get(cid)), fill(N.get(cid))
        got.clear()
        yield cid, b, n
        for side in (b, n):  # judged: its results go before the next case's are read
            if side is not None:
                side.results.clear()


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


def compare(baseline: Sequence[RunRecord], new: Sequence[RunRecord], options: Options = Options(),
            source: CaseSource | None = None) -> Comparison:
    """Compare the runs ``baseline`` with the runs ``new``, cases matched by ``case_id``.
    A run given twice on one side (same run_id) counts once, with a note. Returns a
    :class:`Comparison` (rows empty when no case matches); raises nothing for
    differences (they are data). Runs given without their cases are read from
    ``source`` one case at a time (:class:`CaseSource`): the same Comparison."""
    import pandas as pd

    size = None if source is None else (lambda r: case_count(r, source))
    baseline, dup_b = unique_runs(list(baseline), size=size)
    new, dup_n = unique_runs(list(new), size=size)
    B, N = _collect(baseline, options.case_glob, source), _collect(new, options.case_glob, source)
    ids = list(dict.fromkeys([*B, *N]))
    rows: list[dict[str, Any]] = []
    # what is kept of a case once judged: its sides' machine readings and devices
    seen: dict[str, dict[str, Any]] = {"baseline": {}, "new": {}}
    devices: list[str] = []
    for i, (cid, b, n) in enumerate(_loaded(ids, B, N, source)):
        for name, side in (("baseline", b), ("new", n)):
            if side is not None:
                seen[name][cid] = readings(side.ok)
        if b is not None and n is not None:
            devices += _device_diff(b, n)
        st = _status_row(cid, b, n)
        if st is not None:
            rows.append(st)
            continue
        changed = machine_changes(summarize(seen["baseline"][cid]), summarize(seen["new"][cid]))
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
    hardware += sorted(set(devices))
    notes = [*dup_b, *dup_n, *_notes(df, options, m_tests)] if len(df) else [*dup_b, *dup_n]
    load = {name: summarize(merge(seen[name][cid] for cid in side))  # in each side's own case order
            for name, side in (("baseline", B), ("new", N))}
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


def _device_diff(b: _Side, n: _Side) -> list[str]:
    """The device names of a case's ok results when they differ between the sides."""
    bd = {c.device_name for _, c in b.ok}
    nd = {c.device_name for _, c in n.ok}
    if bd and nd and bd != nd:
        return [f"device: {', '.join(map(str, sorted(bd, key=str)))} -> {', '.join(map(str, sorted(nd, key=str)))}"]
    return []
