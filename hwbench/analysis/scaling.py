"""Parallel scaling: pure functions over the results DataFrame
(:func:`hwbench.load_results`) for the cases that ran as a torchrun group
(``parallelism`` ddp, fsdp, tp, pp, ps; docs/parallel.md).

* :func:`parallel_scaling` -- per curve (one workload on one machine under one strategy
  and scaling mode), the group's throughput against world size with the ideal linear
  line, scaling efficiency, communication share and bytes per step.
* :func:`comm_vs_none` -- each gradient-compression setting (``comm``) against ``none``
  for the same workload, strategy and world size: step time, bytes per step, exposed
  communication and the parameters' deviation (the accuracy cost).
* :func:`ps_vs_allreduce` -- the parameter server (``ps``) and allreduce data
  parallelism (``ddp``; FSDP as a third data-parallel column where it ran) side by side
  at each world size: throughput, their ratio, efficiency, communication.

Every number comes from the frame's columns (derived at load,
:mod:`hwbench.analysis.derive`): ``scaling_efficiency`` is throughput(N) / (N x
throughput(1)) against the same case at world size 1. Nothing here reads files or
imports torch.
"""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from ..parallel.strategy import data_parallel
from .numbers import number

from .tradeoffs import _key, _ok

# What a scaling curve holds fixed besides the strategy: the run (curves never mix runs;
# a world-size-1 baseline from another run enters only through derive's
# ``scaling_efficiency``, named in ``scaling_baseline_run_id``), the machine, the suite
# (its settings: pipeline schedule, microbatches), the workload and the scaling mode (weak:
# batch per rank fixed; strong: global batch fixed -- either way the case's batch_size).
WORKLOAD = ("run_id", "hostname", "device_name", "suite", "model", "mode", "batch_size", "seq_len", "image_size", "precision",
            "backend", "variant", "device", "threads", "scaling", "comm")
CURVE = (*WORKLOAD, "parallelism")

CURVE_COLUMNS = (
    "world_size", "case_id", "global_batch_size", "throughput_samples_per_s",
    "throughput_samples_per_s_per_rank", "processed_tokens_per_s", "ideal_throughput_samples_per_s", "speedup",
    "scaling_efficiency", "scaling_baseline_run_id", "latency_ms_p50", "comm_fraction", "comm_s_per_step", "comm_bytes_per_step",
    "rank_memory_peak_bytes_max", "n_points",
)

# The strategies of :func:`ps_vs_allreduce`: the registered data-parallel ones
# (hwbench.parallel), the reference (allreduce) first, then the parameter server.
ALLREDUCE, PS = "ddp", "ps"
DATA_PARALLEL = (ALLREDUCE, PS, *(s for s in data_parallel() if s not in (ALLREDUCE, PS)))
COMPARED = ("case_id", "throughput_samples_per_s", "scaling_efficiency", "comm_bytes_per_step", "comm_fraction")


def workload_id(case_id: str, parallelism: str, world_size: int, comm: str | None = None) -> str:
    """A parallel case's id without its ``/<strategy><N>`` part: the workload it ran
    (``encoder:tiny/train/bs4/seq32/fp32/eager/cpu/ddp2`` -> ``.../cpu``); a ``comm``
    setting stays (``.../cpu/fp16``) unless ``comm`` names it (then it goes too)."""
    if comm not in (None, "none") and case_id.endswith(f"/{comm}"):
        case_id = case_id[: -len(comm) - 1]
    tail = f"/{parallelism}{world_size}"
    if case_id.endswith(tail):
        return case_id[: -len(tail)]
    i = case_id.rfind(tail + "/")  # a comm setting follows: keep it (".../cpu/fp16")
    return case_id[:i] + case_id[i + len(tail):] if i >= 0 else case_id


def parallel_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The ok cases of ``df`` that ran as a group (``parallelism`` other than none)."""
    ok = _ok(df)
    if "parallelism" not in ok:
        return ok.iloc[0:0]
    par = ok["parallelism"].astype("object")
    return ok[par.notna() & (par != "none") & ok["world_size"].notna()]


def parallel_scaling(df: pd.DataFrame) -> pd.DataFrame:
    """The group's throughput against world size, one row per ok parallel case, per
    curve (:data:`CURVE`: same run, machine, suite, workload, scaling mode and
    strategy), sorted by world size. Each run has its own curves.

    Columns: the curve (:data:`CURVE`, the run first), then ``world_size`` (ranks),
    ``case_id``, ``global_batch_size`` (samples per step, the group),
    ``throughput_samples_per_s`` (the group's), ``throughput_samples_per_s_per_rank``
    (the group's / world size), ``processed_tokens_per_s`` (sequence models),
    ``ideal_throughput_samples_per_s`` (linear scaling from world size 1: N x
    throughput(1)), ``speedup`` (throughput(N) / throughput(1), a ratio),
    ``scaling_efficiency`` (speedup / N, a fraction; 1 = linear),
    ``scaling_baseline_run_id`` (the run whose world-size-1 case it is against: this
    one, else the newest that has it), ``latency_ms_p50``
    (median step, ms), ``comm_fraction`` (time in collectives / step, a fraction and an
    upper bound), ``comm_s_per_step`` (s), ``comm_bytes_per_step`` (bytes),
    ``rank_memory_peak_bytes_max`` (bytes) and ``n_points`` (world sizes on the curve).
    Without an ok world-size-1 case of the same case in this run or another, the
    ideal, speed-up and efficiency are NaN."""
    par = parallel_rows(df)
    group = [c for c in CURVE if c in par]
    cols = [*group, *CURVE_COLUMNS]
    if par.empty:
        return pd.DataFrame(columns=cols)
    par = par.assign(_curve=_key(par, group))
    if "created" in par:
        par = par.sort_values("created", kind="stable", na_position="first")
    par = par.drop_duplicates(["_curve", "world_size"], keep="last")
    out = []
    for _, g in par.groupby("_curve", sort=False):
        g = g.sort_values("world_size", kind="stable")
        for r in g.to_dict("records"):
            n = float(r["world_size"])
            thr, eff = number(r.get("throughput_samples_per_s")), number(r.get("scaling_efficiency"))
            out.append({
                **{c: r[c] for c in group}, "world_size": int(r["world_size"]), "case_id": r["case_id"],
                "global_batch_size": r.get("global_batch_size"),
                "throughput_samples_per_s": thr,
                "throughput_samples_per_s_per_rank": number(r.get("throughput_samples_per_s_per_rank")),
                "processed_tokens_per_s": number(r.get("processed_tokens_per_s")),
                # the baseline derive used for the efficiency: N x throughput(1) = throughput / efficiency
                "ideal_throughput_samples_per_s": thr / eff if eff > 0 else math.nan,
                "speedup": eff * n, "scaling_efficiency": eff,
                "scaling_baseline_run_id": r.get("scaling_baseline_run_id"), "latency_ms_p50": number(r.get("latency_ms_p50")),
                "comm_fraction": number(r.get("comm_fraction")), "comm_s_per_step": number(r.get("comm_s_per_step")),
                "comm_bytes_per_step": number(r.get("comm_bytes_per_step")),
                "rank_memory_peak_bytes_max": r.get("rank_memory_peak_bytes_max"), "n_points": len(g),
            })
    frame = pd.DataFrame(out, columns=cols)
    for c in ("world_size", "global_batch_size", "rank_memory_peak_bytes_max", "n_points"):
        frame[c] = frame[c].astype("Int64")
    return frame


COMM_COLUMNS = ("case_id", "latency_ms_p50", "latency_ms_p50_none", "step_speedup_vs_none", "comm_bytes_per_step",
                "comm_compression_ratio", "comm_busy_ms", "comm_exposed_ms", "comm_exposed_ms_none",
                "param_rel_l2_vs_none", "param_rel_l2_steps")


def comm_vs_none(df: pd.DataFrame) -> pd.DataFrame:
    """Every ``comm`` setting against ``none``: one row per ok parallel case whose
    workload (:data:`WORKLOAD` less ``comm``), strategy and world size also ran with
    another comm setting in the same run, ``none`` first. Columns: the workload,
    ``parallelism``, ``world_size``, ``comm``, then ``latency_ms_p50`` (median step,
    ms) and the ``none`` case's, ``step_speedup_vs_none`` (none's step / this step;
    > 1: faster), ``comm_bytes_per_step`` (bytes each rank's collectives carried),
    ``comm_compression_ratio`` (none's bytes / these), ``comm_busy_ms`` (time in
    collectives per step, an upper bound), ``comm_exposed_ms`` (the part no compute
    overlapped) and the ``none`` case's, ``param_rel_l2_vs_none`` (relative L2 deviation
    of the parameters after ``param_rel_l2_steps`` steps from the same steps
    uncompressed). NaN where the ``none`` case is missing."""
    par = parallel_rows(df)
    group = [c for c in WORKLOAD if c in par and c != "comm"] + ["parallelism", "world_size"]
    cols = [*group, "comm", *COMM_COLUMNS]
    if par.empty or "comm" not in par:
        return pd.DataFrame(columns=cols)
    par = par.assign(comm=par["comm"].astype("object").fillna("none"))
    out = []
    for _, g in par.groupby(_key(par, group), sort=False):
        if g["comm"].nunique() < 2 and (g["comm"] == "none").all():
            continue
        recs = sorted(g.to_dict("records"), key=lambda r: (r["comm"] != "none", str(r["comm"])))
        none = next((r for r in recs if r["comm"] == "none"), {})
        for r in recs:
            step, base = number(r.get("latency_ms_p50")), number(none.get("latency_ms_p50"))
            out.append({**{c: r[c] for c in group}, "comm": r["comm"], "case_id": r["case_id"],
                        "latency_ms_p50": step, "latency_ms_p50_none": base, "step_speedup_vs_none": _ratio(base, step),
                        **{c: number(r.get(c)) for c in ("comm_bytes_per_step", "comm_compression_ratio",
                                                         "comm_busy_ms", "comm_exposed_ms", "param_rel_l2_vs_none")},
                        "comm_exposed_ms_none": number(none.get("comm_exposed_ms")),
                        "param_rel_l2_steps": r.get("param_rel_l2_steps")})
    frame = pd.DataFrame(out, columns=cols)
    frame["world_size"] = frame["world_size"].astype("Int64")
    return frame


def ps_vs_allreduce(curves: pd.DataFrame, strategies: Sequence[str] = DATA_PARALLEL) -> pd.DataFrame:
    """The parameter server against allreduce data parallelism, side by side: one row
    per workload (:data:`WORKLOAD`) and world size where both ``ps`` and ``ddp`` ran
    (at one world size or more), from a :func:`parallel_scaling` frame.

    Columns: the workload, ``world_size``, then for each strategy ``s`` of
    ``strategies`` (ddp, ps, fsdp) ``case_id_<s>``, ``throughput_samples_per_s_<s>``,
    ``scaling_efficiency_<s>`` (fraction), ``comm_bytes_per_step_<s>`` (bytes) and
    ``comm_fraction_<s>`` (fraction), NaN where that strategy has no case at that
    world size; and ``throughput_ratio_ps_over_ddp`` (> 1: the parameter server is
    faster) and ``comm_bytes_ratio_ps_over_ddp`` (bytes per step, ps / ddp)."""
    group = [c for c in WORKLOAD if c in curves]
    wide_cols = [f"{m}_{s}" for s in strategies for m in COMPARED]
    cols = [*group, "world_size", *wide_cols, "throughput_ratio_ps_over_ddp", "comm_bytes_ratio_ps_over_ddp"]
    d = curves[curves["parallelism"].isin(list(strategies))] if len(curves) else curves
    out = []
    for _, g in d.groupby(_key(d, group), sort=False):
        if not {ALLREDUCE, PS} <= set(g["parallelism"]):
            continue
        first = g.iloc[0]
        for n, at in g.groupby("world_size", sort=True):
            by = {r["parallelism"]: r for r in at.to_dict("records")}
            row = {**{c: first[c] for c in group}, "world_size": int(n)}
            for s in strategies:
                r = by.get(s, {})
                row.update({f"{m}_{s}": r.get(m, None if m == "case_id" else math.nan) for m in COMPARED})
            row["throughput_ratio_ps_over_ddp"] = _ratio(row[f"throughput_samples_per_s_{PS}"],
                                                         row[f"throughput_samples_per_s_{ALLREDUCE}"])
            row["comm_bytes_ratio_ps_over_ddp"] = _ratio(row[f"comm_bytes_per_step_{PS}"],
                                                         row[f"comm_bytes_per_step_{ALLREDUCE}"])
            out.append(row)
    frame = pd.DataFrame(out, columns=cols)
    frame["world_size"] = frame["world_size"].astype("Int64")
    return frame




def _ratio(a, b) -> float:
    a, b = number(a), number(b)
    return a / b if b > 0 else math.nan
