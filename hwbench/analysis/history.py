"""Results history: each case's value over many runs, its trend, and its change points.

Pure functions over records. Runs are ordered by the time they were created, then by
the hwbench git commit they recorded (``environment.hwbench_git_commit``), which labels
them. Change points are found with PELT (Killick, Fearnhead & Eckley 2012, "Optimal
detection of changepoints with a linear computational cost", JASA) as implemented by
the ``ruptures`` library (Truong, Oudre & Vayatis 2020; its compiled ``KernelCPD``
with the linear kernel, which is the l2 cost: see :func:`search`), on the logarithm of the per-run
value, so a step is a ratio:

* cost ``l2`` (a change in mean), ``min_size = 2`` runs per segment (a single outlying
  run is not a step; a step needs two runs after it to be seen, so at least 4 runs);
* penalty ``3 * sigma**2 * ln(n)`` per change point: the modified BIC of Zhang &
  Siegmund (2007), the default of R's ``changepoint`` package, in the l2 cost's units;
  ``sigma`` is the run-to-run noise estimated robustly from the first differences
  (MAD / 0.6745 / sqrt 2, at least 0.5 %): a step must stand out from how much
  consecutive runs usually differ. (Plain BIC, 2 sigma^2 ln n, found a >= 5 % step in
  14 % of pure-noise series of 10 runs at 3 % noise in our simulation; this penalty in
  about 11 %, and 2.5 % at 30 runs; it finds a 10 % step in ~80 % of such series;
  the threshold below removes most of the rest);
* a change point is reported only when the step (ratio of the segments' geometric
  means) is at least ``threshold`` (5 % by default), like ``hwbench compare``.

Each change point names the first run after the step and what differs in its
environment from the run before (the usual cause).
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..records import RunRecord

MIN_SIZE = 2
OUTLIER_SIGMAS = 3.0  # a single run this many sigma from its neighbours is an outlier, not a step
PENALTY = 3.0  # x sigma^2 ln n per change point (modified BIC)
SIGMA_FLOOR = 0.005  # log units: 0.5 %
DEFAULT_THRESHOLD = 0.05
SPARK = "▁▂▃▄▅▆▇█"
METHOD = ("PELT (ruptures KernelCPD, linear kernel = cost l2) on log values, MBIC penalty 3 sigma^2 ln n "
          "with sigma the robust run-to-run noise, at least 2 runs per segment), single outlying runs "
          "(3 sigma from both neighbours) left out first, steps below the threshold dropped")


@dataclass(frozen=True)
class History:
    """DataFrames: ``runs`` (one per run, oldest first), ``series`` (case x run),
    ``trends`` (one per case), ``changes`` (one per change point); ``method`` names the
    change-point method and its settings."""

    runs: Any
    series: Any
    trends: Any
    changes: Any
    metric: str
    method: str
    outliers: Any = None  # DataFrame: single outlying runs (case_id, run_index, run_id, value, reference, change)
    notes: tuple[str, ...] = ()  # e.g. a run given twice, counted once


def order_runs(runs: Sequence[tuple[Path | str, RunRecord]]) -> list[tuple[Path | str, RunRecord]]:
    """Runs oldest first: by creation time, then by recorded git commit, then run id."""
    return sorted(runs, key=lambda pr: (pr[1].created, pr[1].environment.hwbench_git_commit or "", pr[1].run_id))


def robust_sigma(x: np.ndarray) -> float:
    """Run-to-run noise of a series from its first differences: MAD(diff) / 0.6745 /
    sqrt(2) (the differences of independent noise have twice its variance; a few steps
    barely move the median). At least SIGMA_FLOOR."""
    if x.size < 3:
        return SIGMA_FLOOR
    d = np.diff(x)
    mad = float(np.median(np.abs(d - np.median(d))))
    return max(mad / 0.6745 / math.sqrt(2), SIGMA_FLOOR)


def single_outliers(y: np.ndarray, sigma: float) -> np.ndarray:
    """Which points of a (log) series are single outlying runs: a run more than
    OUTLIER_SIGMAS x sigma from each neighbour, on the same side of both, whose two
    neighbours agree with each other (within that distance, or half the run's distance
    from the nearer of them); the first or last run when it is that far from its one
    neighbour and that neighbour agrees with the next (the same way). A
    step has at least two runs on each side of it, so its edges never qualify; a lone
    last run that moved cannot yet be told from the start of a step, and is not one."""
    n = y.size
    out = np.zeros(n, bool)
    lim = OUTLIER_SIGMAS * sigma
    if n < 3:
        return out
    for i in range(n):
        if 0 < i < n - 1:
            lo, hi = y[i] - y[i - 1], y[i] - y[i + 1]
            out[i] = abs(lo) > lim and abs(hi) > lim and lo * hi > 0 and \
                abs(y[i - 1] - y[i + 1]) <= max(lim, min(abs(lo), abs(hi)) / 2)
        else:
            j, k = (1, 2) if i == 0 else (n - 2, n - 3)
            d = abs(y[i] - y[j])
            out[i] = d > lim and abs(y[j] - y[k]) <= max(lim, d / 2)
    return out


def search(y: np.ndarray, pen: float) -> list[int]:
    """PELT breakpoints of a (log) series under the l2 cost and penalty ``pen``: the ends
    of its segments, the last one ``y.size``. ruptures' ``KernelCPD`` with the linear
    kernel is the same search with the same cost (its kernel cost of a segment is the
    segment's sum of squared deviations from its mean) in compiled code, where
    ``Pelt(model="l2")`` recomputes each candidate segment's cost in Python: hours on
    5,000 runs instead of a fraction of a second (docs/regression.md, "Scale")."""
    import ruptures

    algo = ruptures.KernelCPD(kernel="linear", min_size=MIN_SIZE, jump=1)
    return [int(b) for b in algo.fit(y.reshape(-1, 1)).predict(pen=pen)]


def change_points(values: Sequence[float], threshold: float = DEFAULT_THRESHOLD) -> list[dict[str, float]]:
    """Change points of a series of positive per-run values (see the module docstring):
    ``[{"index": first index after the step, "before": ..., "after": ..., "step":
    after / before - 1}]``. Single outlying runs (:func:`single_outliers`) are left out
    before the search, so they are neither a step nor two. Fewer than 2 * MIN_SIZE
    values (outliers left out): none."""
    x = np.asarray(values, float)
    if x.size < 2 * MIN_SIZE or not np.all(np.isfinite(x)):
        return []
    logged = bool(np.all(x > 0))
    y = np.log(x) if logged else x
    sigma = robust_sigma(y) if logged else max(robust_sigma(y), 1e-12)
    keep = np.flatnonzero(~single_outliers(y, sigma))
    y = y[keep]
    if y.size < 2 * MIN_SIZE:
        return []
    pen = PENALTY * sigma**2 * math.log(y.size)
    edges = [0, *search(y, pen)]
    out = []
    for i in range(1, len(edges) - 1):
        start, k, end = edges[i - 1], edges[i], edges[i + 1]
        # the step lands on the first run that moved (nearer the after-mean than the
        # before-mean), and needs MIN_SIZE such runs from there: an unchanged run is
        # never named as the change, a lone moved run at the end is not (yet) a step
        mid, up = (y[start:k].mean() + y[k:end].mean()) / 2, y[k:end].mean() > y[start:k].mean()
        while k < end and (y[k] <= mid if up else y[k] >= mid):
            k += 1
        if end - k < MIN_SIZE:
            continue
        seg_b, seg_a = y[start:k], y[k:end]
        mb, ma = float(seg_b.mean()), float(seg_a.mean())
        before, after = (math.exp(mb), math.exp(ma)) if logged else (mb, ma)
        step = after / before - 1 if before else math.inf
        if abs(step) >= threshold:
            out.append({"index": int(keep[k]), "before": before, "after": after, "step": step})
    return out


def outliers(values: Sequence[float], threshold: float = DEFAULT_THRESHOLD) -> list[dict[str, float]]:
    """The single outlying runs of a series that differ from their neighbours by at
    least ``threshold`` (smaller ones are noise, not news): ``[{"index", "value",
    "reference": the neighbours' mean (geometric for positive series), "change":
    value / reference - 1}]``."""
    x = np.asarray(values, float)
    if x.size < 3 or not np.all(np.isfinite(x)):
        return []
    logged = bool(np.all(x > 0))
    y = np.log(x) if logged else x
    sigma = robust_sigma(y) if logged else max(robust_sigma(y), 1e-12)
    out = []
    for i in np.flatnonzero(single_outliers(y, sigma)):
        nb = [y[j] for j in (i - 1, i + 1) if 0 <= j < y.size]
        ref = math.exp(float(np.mean(nb))) if logged else float(np.mean(nb))
        change = x[i] / ref - 1 if ref else math.inf
        if abs(change) >= threshold:
            out.append({"index": int(i), "value": float(x[i]), "reference": ref, "change": float(change)})
    return out


def sparkline(values: Sequence[float]) -> str:
    """One character per value, lowest to highest (the range of the series)."""
    x = np.asarray(values, float)
    if not x.size:
        return ""
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    if hi <= lo:
        return SPARK[3] * x.size
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / (hi - lo) * len(SPARK)))] for v in x)


def history(runs: Sequence[tuple[Path | str, RunRecord]], *, case_glob: str | None = None,
            metric: str = "latency_ms_p50", threshold: float = DEFAULT_THRESHOLD) -> History:
    """Each case's ``metric`` per run (ok cases; a run's median latency by default),
    trend and change points, for the runs given in any order."""
    from .compare import unique_runs
    from .derive import case_row

    runs, notes = unique_runs(list(runs), record=lambda pr: pr[1], label=lambda pr: str(pr[0]))
    ordered = order_runs(runs)
    values = []
    for p, rec in ordered:
        values.append([(c.case_id, case_row(rec, c).get(metric)) for c in rec.cases
                       if c.status == "ok" and not (case_glob and not fnmatch.fnmatchcase(c.case_id, case_glob))])
    return history_of(ordered, values, metric=metric, threshold=threshold, notes=notes)


def history_of(ordered: Sequence[tuple[Path | str, Any]], values: Sequence[Sequence[tuple[str, Any]]], *,
               metric: str, threshold: float, notes: Sequence[str] = (),
               record: Callable[[int], RunRecord] | None = None) -> History:
    """:func:`history` from runs already de-duplicated and ordered: ``ordered[i]`` is
    (path, run) where the run has ``run_id``, ``created``, ``suite.name`` and
    ``environment`` (``hostname``, ``hwbench_git_commit``); ``values[i]`` the
    (case_id, value) of its ok cases, in the run's order; ``record(i)`` the full
    RunRecord of run ``i`` (default: ``ordered[i][1]``), read only at change points for
    the environment differences (the store passes light runs and reads those two)."""
    import pandas as pd

    from .compare import KNOWN_METRICS, environment_diff

    record = record or (lambda k: ordered[k][1])
    unit = KNOWN_METRICS.get(metric, ("",))[0]
    run_rows, series = [], []
    for i, (p, rec) in enumerate(ordered):
        env = rec.environment
        run_rows.append({"index": i, "run_id": rec.run_id, "created": rec.created, "commit": env.hwbench_git_commit,
                         "hostname": env.hostname, "suite": rec.suite.name, "path": str(p)})
        for case_id, v in values[i]:
            if isinstance(v, (int, float)) and math.isfinite(v):
                series.append({"case_id": case_id, "run_index": i, "run_id": rec.run_id, "created": rec.created,
                               "commit": env.hwbench_git_commit, "value": float(v), "unit": unit,
                               "change_point": False, "outlier": False})
    sdf = pd.DataFrame(series, columns=["case_id", "run_index", "run_id", "created", "commit", "value", "unit",
                                        "change_point", "outlier"])
    trends, changes, odd = [], [], []
    for cid, g in sdf.groupby("case_id", sort=True):
        vals = g["value"].to_numpy()
        idx = g["run_index"].to_numpy()
        slope = None
        if vals.size >= 3 and np.all(vals > 0):
            from scipy.stats import theilslopes

            slope = float(math.expm1(theilslopes(np.log(vals), np.arange(vals.size)).slope))
        trends.append({"case_id": cid, "runs": int(vals.size), "first": float(vals[0]), "last": float(vals[-1]),
                       "change": float(vals[-1] / vals[0] - 1) if vals[0] else None, "trend_per_run": slope,
                       "spark": sparkline(vals), "unit": unit})
        for o in outliers(vals, threshold):
            k = int(idx[o["index"]])
            sdf.loc[(sdf["case_id"] == cid) & (sdf["run_index"] == k), "outlier"] = True
            odd.append({"case_id": cid, "run_index": k, "run_id": ordered[k][1].run_id, "value": o["value"],
                        "reference": o["reference"], "change": o["change"]})
        for cp in change_points(vals, threshold):
            k = int(idx[cp["index"]])
            prev = int(idx[cp["index"] - 1])
            diff, _ = environment_diff([record(prev)], [record(k)])
            what = ", ".join(f"{r.key} {r.baseline} -> {r.new}" for r in diff.itertuples(index=False)
                             if r.key not in ("settings.seed",))
            sdf.loc[(sdf["case_id"] == cid) & (sdf["run_index"] == k), "change_point"] = True
            changes.append({"case_id": cid, "run_index": k, "run_id": ordered[k][1].run_id,
                            "created": ordered[k][1].created, "commit": ordered[k][1].environment.hwbench_git_commit,
                            "before": cp["before"], "after": cp["after"], "step": cp["step"], "env_changes": what})
    return History(
        runs=pd.DataFrame(run_rows),
        series=sdf,
        trends=pd.DataFrame(trends, columns=["case_id", "runs", "first", "last", "change", "trend_per_run", "spark", "unit"]),
        changes=pd.DataFrame(changes, columns=["case_id", "run_index", "run_id", "created", "commit", "before", "after",
                                               "step", "env_changes"]),
        metric=metric,
        method=f"{METHOD} (threshold {threshold:.0%})",
        outliers=pd.DataFrame(odd, columns=["case_id", "run_index", "run_id", "value", "reference", "change"]),
        notes=tuple(notes),
    )
