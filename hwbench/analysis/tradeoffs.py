"""Trade-offs: pure functions over the results DataFrame (:func:`hwbench.load_results`)
that answer the questions of a report. Each returns a DataFrame (units in the column
names, as in the results frame); renderers (terminal, markdown, HTML) only format them.

* :func:`speedup_table` -- every case against its baseline case (default fp32 eager, no
  variant) of the same machine, model, mode, batch and shape, with the accuracy cost
  (output deviation from fp32 eager) next to the speed-up; :func:`speedup_summary`
  the geometric mean per precision / backend / variant.
* :func:`pareto_mask` / :func:`pareto_front` -- the cases no other case beats on every
  one of 2-3 metrics.
* :func:`batch_scaling` and :func:`knee` -- throughput and latency against batch size,
  and the batch size where throughput stops growing.
* :func:`size_scaling` and :func:`power_law` -- throughput, energy and memory against
  parameter count across sizes of a family, with a fitted power law ``y = c * N^k``.
* :func:`machine_summary` -- per machine: runs, cases by status, quality flags.

Nothing here reads files or imports torch; every number comes from the frame given.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from .numbers import is_number, number

# What identifies a workload on a machine apart from the axes a comparison varies. A
# parallel case (a torchrun group) is a workload of its own: its strategy, world size,
# scaling mode and gradient compression (comm) are part of it, so it is never compared with the single-process case.
PARALLEL = ("parallelism", "world_size", "scaling", "comm")
# Every analysis groups within one run (docs/reports.md): runs of one machine minutes
# apart differ by more than many effects measured, so a speed-up's baseline, a batch
# curve, a size fit and a Pareto front never mix cases of two runs.
RUN = ("run_id",)
WORKLOAD = (*RUN, "hostname", "device_name", "family", "size", "model", "mode", "batch_size", "seq_len",
            "image_size", "gen_tokens", "device", "threads", *PARALLEL)
# The axes a precision / backend comparison varies.
AXES = ("precision", "backend", "variant")
# The baseline case of every speed-up and of the accuracy cost: fp32, eager, no variant.
BASELINE: dict[str, str] = {"precision": "fp32", "backend": "eager", "variant": "none"}

# Metrics and whether more is better (the direction of a speed-up, a Pareto front).
HIGHER_IS_BETTER = {
    "throughput_samples_per_s": True, "tokens_per_s": True, "processed_tokens_per_s": True,
    "throughput_samples_per_s_per_rank": True, "achieved_tflops": True, "mfu": True,
    "samples_per_usd": True, "samples_per_j": True,
    "latency_ms_p50": False, "latency_ms_p90": False, "latency_ms_p99": False, "energy_per_sample_j": False,
    "energy_per_token_j": False, "rel_l2_error": False, "max_abs_error": False, "memory_peak_bytes": False,
    "host_rss_peak_bytes": False, "cost_usd_per_1m_samples": False, "power_w_mean": False,
}


def _key(df: pd.DataFrame, cols: Sequence[str]) -> pd.Series:
    """One hashable key per row from ``cols`` (missing values are a value of their own)."""
    parts = [df[c].astype("object").where(df[c].notna(), None) if c in df else pd.Series([None] * len(df), index=df.index)
             for c in cols]
    return pd.Series(list(zip(*parts)) if parts else [()] * len(df), index=df.index, dtype="object")


# data and checkpoint cases measure I/O, not a model step: their own analysis is
# hwbench.analysis.feeding, and no trade-off, scaling curve or front mixes them in
from ..io import IO_MODES  # noqa: E402  (the one definition; torch-free)


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    ok = df[df["status"] == "ok"] if "status" in df else df
    return ok[~ok["mode"].isin(IO_MODES)] if "mode" in ok else ok


def is_baseline(df: pd.DataFrame, baseline: Mapping[str, str] | None = None) -> pd.Series:
    """True for the rows that are the baseline case (:data:`BASELINE`: fp32, eager, no
    variant, unless ``baseline`` says otherwise)."""
    mask = pd.Series(True, index=df.index)
    for k, v in (BASELINE if baseline is None else baseline).items():
        mask &= df[k].astype("object") == v if k in df else False
    return mask


def with_accuracy(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``rel_l2_error`` 0 on the baseline rows: the accuracy cost is the
    deviation from the baseline, which the baseline itself does not have."""
    out = df.copy()
    out["rel_l2_error"] = out["rel_l2_error"].astype("float64").where(~is_baseline(out), 0.0)
    return out


# ------------------------------------------------------------------- speed-up
def speedup_table(df: pd.DataFrame, baseline: Mapping[str, str] | None = None,
                  metric: str = "throughput_samples_per_s") -> pd.DataFrame:
    """Each ok case against its baseline: the ok case of the same workload
    (:data:`WORKLOAD`: machine, model, mode, batch size, shape, device, threads) whose
    precision / backend / variant are ``baseline`` (default fp32, eager, no variant).

    Columns: the workload and axes, ``case_id``, ``baseline_case_id``, ``metric`` for
    both (``<metric>`` and ``baseline_<metric>``), ``speedup`` (> 1: faster than the
    baseline; for a lower-is-better metric such as latency, baseline / case),
    ``energy_ratio`` (energy per sample over the baseline's: < 1 saves energy) and the
    accuracy cost, ``rel_l2_error`` and ``max_abs_error`` (deviation from fp32 eager on
    the same inputs; 0 for the fp32 eager case itself). Cases without a baseline in the
    frame are left out; the baseline rows themselves are kept (speed-up 1)."""
    base = dict(BASELINE if baseline is None else baseline)
    higher = HIGHER_IS_BETTER.get(metric, True)
    ok = _ok(df)
    axes = [a for a in AXES if a in ok]
    is_base = is_baseline(ok, base)
    key = _key(ok, [c for c in WORKLOAD if c in ok] + [a for a in axes if a not in base])
    bases = ok[is_base]
    first = ~key[is_base].duplicated()
    lookup = dict(zip(key[is_base][first], bases.index[first]))
    rows = []
    for i, r in ok.iterrows():
        j = lookup.get(key[i])
        if j is None:
            continue
        b = ok.loc[j]
        v, bv = r[metric], b[metric]
        speed = (v / bv if higher else bv / v) if is_number(v) and is_number(bv) and v > 0 and bv > 0 else math.nan
        e, be = r.get("energy_per_sample_j"), b.get("energy_per_sample_j")
        same = i == j
        rows.append({
            **{c: r[c] for c in WORKLOAD if c in ok}, **{a: r[a] for a in axes},
            "case_id": r["case_id"], "baseline_case_id": b["case_id"],
            metric: v, f"baseline_{metric}": bv, "speedup": speed,
            "energy_ratio": e / be if is_number(e) and is_number(be) and be > 0 else math.nan,
            "rel_l2_error": 0.0 if same else number(r.get("rel_l2_error")),
            "max_abs_error": 0.0 if same else number(r.get("max_abs_error")),
            "energy_source": r.get("energy_source"),
        })
    cols = [*[c for c in WORKLOAD if c in ok], *axes, "case_id", "baseline_case_id", metric, f"baseline_{metric}",
            "speedup", "energy_ratio", "rel_l2_error", "max_abs_error", "energy_source"]
    return pd.DataFrame(rows, columns=cols)


def speedup_summary(table: pd.DataFrame,
                    by: Sequence[str] = (*RUN, "hostname", "mode", "precision", "backend", "variant")
                    ) -> pd.DataFrame:
    """A :func:`speedup_table` summarised per ``by``: ``n_cases``, the geometric mean,
    min and max of ``speedup``, the geometric mean of ``energy_ratio`` and the worst
    (largest) ``rel_l2_error`` -- the accuracy cost next to the speed-up."""
    by = [b for b in by if b in table]
    out = []
    for k, g in table.groupby(by, dropna=False, sort=True):
        s = g["speedup"].dropna()
        s = s[s > 0]
        e = g["energy_ratio"].dropna()
        e = e[e > 0]
        acc = g["rel_l2_error"].dropna()
        out.append({**dict(zip(by, k if isinstance(k, tuple) else (k,))), "n_cases": len(g),
                    "speedup_geomean": float(np.exp(np.log(s).mean())) if len(s) else math.nan,
                    "speedup_min": float(s.min()) if len(s) else math.nan,
                    "speedup_max": float(s.max()) if len(s) else math.nan,
                    "energy_ratio_geomean": float(np.exp(np.log(e).mean())) if len(e) else math.nan,
                    "rel_l2_error_max": float(acc.max()) if len(acc) else math.nan})
    return pd.DataFrame(out, columns=[*by, "n_cases", "speedup_geomean", "speedup_min", "speedup_max",
                                      "energy_ratio_geomean", "rel_l2_error_max"])






# --------------------------------------------------------------------- Pareto
def pareto_mask(df: pd.DataFrame, objectives: Mapping[str, str]) -> pd.Series:
    """True for the rows on the Pareto front of ``objectives`` ({column: "max" | "min"},
    2 or 3 of them): no other row is at least as good on every objective and better on
    one. Rows with a missing value in any objective are never on the front (and do not
    dominate); rows with equal values are all kept."""
    if not 1 <= len(objectives) <= 4:
        raise ValueError("a Pareto front needs 1 to 4 objectives")
    for col, sense in objectives.items():
        if sense not in ("max", "min"):
            raise ValueError(f"objective {col!r}: {sense!r} is neither 'max' nor 'min'")
    # every objective turned into "smaller is better"
    vals = np.column_stack([
        (-1.0 if sense == "max" else 1.0) * pd.to_numeric(df[col], errors="coerce").astype("float64").to_numpy()
        for col, sense in objectives.items()]) if len(df) else np.empty((0, len(objectives)))
    valid = np.isfinite(vals).all(axis=1)
    mask = np.zeros(len(df), dtype=bool)
    idx = np.flatnonzero(valid)
    v = vals[idx]
    for n, i in enumerate(idx):
        dominated = np.all(v <= v[n], axis=1) & np.any(v < v[n], axis=1)
        mask[i] = not dominated.any()
    return pd.Series(mask, index=df.index, name="on_front")


# The fronts of a report: throughput against energy per sample, and with the deviation
# from the baseline (the accuracy cost) as a third objective.
FRONT_2D = {"throughput_samples_per_s": "max", "energy_per_sample_j": "min"}
FRONT_3D = {**FRONT_2D, "rel_l2_error": "min"}
PARETO_GROUP = (*RUN, "hostname", "model")


def pareto_fronts(df: pd.DataFrame) -> pd.DataFrame:
    """The ok cases of ``df`` with ``on_front_2d`` (:data:`FRONT_2D`) and
    ``on_front_3d`` (:data:`FRONT_3D`), each front taken within a run, machine and
    model (:data:`PARETO_GROUP`); ``rel_l2_error`` as :func:`with_accuracy` gives it."""
    ok = with_accuracy(_ok(df))
    ok["on_front_2d"] = pd.Series(False, index=ok.index, dtype=bool)
    ok["on_front_3d"] = pd.Series(False, index=ok.index, dtype=bool)
    for _, g in ok.groupby(_key(ok, [c for c in PARETO_GROUP if c in ok]), sort=False):
        ok.loc[g.index, "on_front_2d"] = pareto_mask(g, FRONT_2D)
        ok.loc[g.index, "on_front_3d"] = pareto_mask(g, FRONT_3D)
    return ok


def pareto_front(df: pd.DataFrame, objectives: Mapping[str, str], ok_only: bool = True) -> pd.DataFrame:
    """The rows of ``df`` (ok cases unless ``ok_only`` is False) on the Pareto front of
    ``objectives``, sorted by the first objective, best first."""
    d = _ok(df) if ok_only else df
    front = d[pareto_mask(d, objectives)]
    first, sense = next(iter(objectives.items()))
    return front.sort_values(first, ascending=(sense == "min"), kind="stable")


# ---------------------------------------------------------- batch-size scaling
def knee(batch_sizes: Sequence[float], throughput: Sequence[float], min_gain: float = 0.1) -> float | None:
    """The batch size where throughput stops growing: the smallest batch size ``b``
    from which no larger batch in the curve gains ``min_gain`` (10 %) or more throughput
    per doubling of the batch (``(T(b') / T(b)) ** (1 / log2(b' / b)) - 1``). None
    where even the last step still gains that much (the knee lies beyond the largest
    batch run) or the curve has fewer than two points."""
    pts = sorted((float(b), float(t)) for b, t in zip(batch_sizes, throughput)
                 if is_number(b) and is_number(t) and b > 0 and t > 0)
    if len(pts) < 2:
        return None
    for i, (b, t) in enumerate(pts[:-1]):
        gains = [(t2 / t) ** (1.0 / math.log2(b2 / b)) - 1.0 for b2, t2 in pts[i + 1:] if b2 > b]
        if gains and max(gains) < min_gain:
            return b
    return None


SCALING_GROUP = (*RUN, "hostname", "device_name", "model", "mode", "precision", "backend", "variant", "seq_len",
                 "image_size", "gen_tokens", "device", "threads", *PARALLEL)


def batch_scaling(df: pd.DataFrame, metric: str = "throughput_samples_per_s", min_gain: float = 0.1) -> pd.DataFrame:
    """Throughput and latency against batch size, one row per ok case, per curve (the
    cases of :data:`SCALING_GROUP` that differ only in batch size), sorted by batch.

    Columns: the curve's identity, ``batch_size``, ``case_id``, ``<metric>``,
    ``latency_ms_p50``, ``gain_per_doubling`` (throughput growth per doubling of the
    batch from the previous point), ``scaling_efficiency`` (throughput over the
    smallest batch's throughput x batch ratio: 1 = perfectly linear), ``knee_batch_size``
    (:func:`knee` of the curve, the same on every row of it; NaN where not reached) and
    ``at_knee`` (this row is the knee)."""
    ok = _ok(df)
    ok = ok[ok["batch_size"].notna()]
    group = [c for c in SCALING_GROUP if c in ok]
    cols = [*group, "batch_size", "case_id", metric, "latency_ms_p50", "gain_per_doubling", "scaling_efficiency",
            "knee_batch_size", "at_knee", "n_points"]
    out = []
    for _, g in ok.groupby(_key(ok, group), sort=False):
        g = g.sort_values("batch_size", kind="stable")
        bs = g["batch_size"].astype("float64").to_numpy()
        t = pd.to_numeric(g[metric], errors="coerce").astype("float64").to_numpy()
        k = knee(bs, t, min_gain)
        b0, t0 = bs[0], t[0]
        prev = None
        for (_, r), b, v in zip(g.iterrows(), bs, t):
            gain = math.nan
            if prev is not None and prev[0] < b and prev[1] > 0 and v > 0:
                gain = (v / prev[1]) ** (1.0 / math.log2(b / prev[0])) - 1.0
            prev = (b, v)
            out.append({**{c: r[c] for c in group}, "batch_size": int(b), "case_id": r["case_id"], metric: v,
                        "latency_ms_p50": r.get("latency_ms_p50"), "gain_per_doubling": gain,
                        "scaling_efficiency": v / (t0 * b / b0) if t0 > 0 and b0 > 0 else math.nan,
                        "knee_batch_size": math.nan if k is None else k, "at_knee": k is not None and b == k,
                        "n_points": len(g)})
    return pd.DataFrame(out, columns=cols)


def batch_knees(scaling: pd.DataFrame, metric: str = "throughput_samples_per_s") -> pd.DataFrame:
    """One row per curve of :func:`batch_scaling`: its batch sizes, the throughput at the
    smallest and largest, the best and the knee."""
    group = [c for c in SCALING_GROUP if c in scaling]
    out = []
    for _, g in scaling.groupby(_key(scaling, group), sort=False):
        r = g.iloc[0]
        best = g.loc[g[metric].idxmax()] if g[metric].notna().any() else r
        out.append({**{c: r[c] for c in group}, "batch_sizes": ",".join(str(int(b)) for b in g["batch_size"]),
                    f"{metric}_first": g[metric].iloc[0], f"{metric}_last": g[metric].iloc[-1],
                    f"{metric}_best": best[metric], "best_batch_size": int(best["batch_size"]),
                    "knee_batch_size": r["knee_batch_size"]})
    return pd.DataFrame(out, columns=[*group, "batch_sizes", f"{metric}_first", f"{metric}_last", f"{metric}_best",
                                      "best_batch_size", "knee_batch_size"])


# ---------------------------------------------------------- model-size scaling
def power_law(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Least-squares fit of ``log y = log c + k log x`` (``y = c * x^k``) over the
    positive pairs (scipy.stats.linregress on the logs). Returns ``coefficient`` (c),
    ``exponent`` (k), ``r2`` (of the log fit), ``exponent_stderr`` and ``n_points``; NaN
    where fewer than two distinct x remain (with exactly two the fit is exact: r2 = 1,
    no standard error)."""
    from scipy import stats

    pts = [(float(a), float(b)) for a, b in zip(x, y) if is_number(a) and is_number(b) and a > 0 and b > 0]
    nan = {"coefficient": math.nan, "exponent": math.nan, "r2": math.nan, "exponent_stderr": math.nan,
           "n_points": len(pts)}
    if len({a for a, _ in pts}) < 2:
        return nan
    lx, ly = np.log([a for a, _ in pts]), np.log([b for _, b in pts])
    fit = stats.linregress(lx, ly)
    two = len(pts) == 2
    return {"coefficient": float(np.exp(fit.intercept)), "exponent": float(fit.slope),
            "r2": 1.0 if two else float(fit.rvalue ** 2), "exponent_stderr": math.nan if two else float(fit.stderr),
            "n_points": len(pts)}


SIZE_GROUP = (*RUN, "hostname", "device_name", "family", "mode", "batch_size", "precision", "backend", "variant", "seq_len",
              "image_size", "gen_tokens", "device", "threads", *PARALLEL)
SIZE_METRICS = ("throughput_samples_per_s", "energy_per_sample_j", "memory_peak_bytes", "host_rss_peak_bytes")


def size_scaling(df: pd.DataFrame, metrics: Sequence[str] = SIZE_METRICS, x: str = "params") -> pd.DataFrame:
    """Each metric against parameter count (``x``) across the sizes of a family, per
    workload (:data:`SIZE_GROUP`: same machine, mode, batch, precision, backend,
    shape), fitted with :func:`power_law`: one row per workload and metric with at
    least two sizes: ``sizes`` (the sizes, smallest first), ``params`` (theirs),
    ``metric``, ``values``, ``coefficient``, ``exponent`` (e.g. throughput ~ N^-0.9),
    ``r2``, ``exponent_stderr``, ``n_points``."""
    ok = _ok(df)
    ok = ok[ok[x].notna()] if x in ok else ok.iloc[0:0]
    group = [c for c in SIZE_GROUP if c in ok]
    out = []
    for _, g in ok.groupby(_key(ok, group), sort=False):
        if g[x].nunique() < 2:
            continue
        g = g.sort_values(x, kind="stable")
        r = g.iloc[0]
        for m in metrics:
            if m not in g or g[m].notna().sum() < 2:
                continue
            fit = power_law(g[x].astype("float64"), g[m].astype("float64"))
            if math.isnan(fit["exponent"]):
                continue
            out.append({**{c: r[c] for c in group}, "sizes": ",".join(map(str, g["size"])),
                        "params": ",".join(str(int(p)) for p in g[x]), "metric": m,
                        "values": ",".join(f"{float(v):.6g}" for v in g[m]), **fit})
    return pd.DataFrame(out, columns=[*group, "sizes", "params", "metric", "values", "coefficient", "exponent", "r2",
                                      "exponent_stderr", "n_points"])


# ------------------------------------------------------------------- machines
def machine_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per machine (host name and device names): ``runs``, ``suites``, ``cases`` and
    how many are ``ok`` / ``skipped`` / ``not_ok`` (failed, oom, timeout), the software
    (``torch_version``, ``hwbench_version``), ``energy_sources`` and the quality flags
    with their counts (``quality_flags``: "noisy 12, energy_estimated 41")."""
    out = []
    host = df["hostname"].astype("object").where(df["hostname"].notna(), "unknown host")
    for h in dict.fromkeys(host):
        g = df[host == h]
        flags: dict[str, int] = {}
        for fl in g["quality_flags"]:
            for f in fl if isinstance(fl, (list, tuple)) else ():
                flags[f] = flags.get(f, 0) + 1
        out.append({
            "hostname": h, "device_name": ", ".join(str(d) for d in dict.fromkeys(g["device_name"].dropna())),
            "runs": int(g["run_id"].nunique()), "suites": ", ".join(str(s) for s in dict.fromkeys(g["suite"].dropna())),
            "cases": len(g), "ok": int((g["status"] == "ok").sum()), "skipped": int((g["status"] == "skipped").sum()),
            "not_ok": int((~g["status"].isin(["ok", "skipped"])).sum()),
            "torch_version": ", ".join(str(v) for v in dict.fromkeys(g["torch_version"].dropna())),
            "hwbench_version": ", ".join(str(v) for v in dict.fromkeys(g["hwbench_version"].dropna())),
            "energy_sources": ", ".join(str(v) for v in dict.fromkeys(g["energy_source"].dropna())),
            "quality_flags": ", ".join(f"{f} {n}" for f, n in sorted(flags.items(), key=lambda kv: -kv[1])),
        })
    return pd.DataFrame(out, columns=["hostname", "device_name", "runs", "suites", "cases", "ok", "skipped", "not_ok",
                                      "torch_version", "hwbench_version", "energy_sources", "quality_flags"])


def not_ok_cases(df: pd.DataFrame) -> pd.DataFrame:
    """The cases that did not run ok (skipped, failed, oom, timeout) with their reasons."""
    cols = ["hostname", "run_id", "case_id", "status", "reason"]
    return df.loc[df["status"] != "ok", cols].reset_index(drop=True)
