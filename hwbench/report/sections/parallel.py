"""Parallel scaling, where cases ran as a torchrun group: the group's throughput and
efficiency against world size per strategy, and the parameter server against allreduce
side by side (:mod:`hwbench.analysis.scaling`). Tables of the ``scaling`` view (and of
the default terminal report) and the HTML section "Parallel scaling"."""

from __future__ import annotations

import pandas as pd

from ...analysis import scaling as sc
from ...analysis import tradeoffs as tr
from ..escape import esc, slug, svg_text
from ..figures import fig_parallel_scaling, fig_ps_vs_allreduce
from ..fit import abbreviate_ids
from ..page import Page
from . import PAGE, Report, Table


def parallel_sections(df: pd.DataFrame) -> list[Table]:
    """The parallel scaling curves and the parameter server against allreduce, for the
    cases of ``df`` that ran as a torchrun group; none without such cases. What every row
    shares (one workload, one scaling mode, one host) is said in the title instead of a
    column, so the numbers fit 80 columns."""
    curves = sc.parallel_scaling(df)
    if curves.empty:
        return []
    curves = _workload_labels(curves)
    cmp = _workload_labels(sc.ps_vs_allreduce(curves), side_by_side=True)
    said = _shared(curves)
    # the workload, host and scaling mode only where they vary
    key = [(c, h) for c, h in (("run_id", "run"), ("workload", "workload"), ("hostname", "host"),
                                ("scaling", "scaling")) if curves[c].nunique(dropna=False) > 1]
    # a world-size-1 baseline from another run: say which
    other = curves["scaling_baseline_run_id"].notna() & (curves["scaling_baseline_run_id"] != curves["run_id"])
    if other.any():
        said += "; baseline run: the run whose world-size-1 case the efficiency is against"
    out: list[Table] = [(
        "parallel scaling: the group's throughput against world size (efficiency = throughput(N) / "
        "(N x throughput(1)); comm share = time in collectives per step, an upper bound)" + said, curves,
        _with_data([*key, ("parallelism", "strategy"), ("world_size", "ranks"),
                    ("throughput_samples_per_s", "samples/s"), ("processed_tokens_per_s", "tokens/s"),
                    ("scaling_efficiency", "efficiency"),
                    *([("scaling_baseline_run_id", "baseline run")] if other.any() else []),
                    ("comm_fraction", "comm share"),
                    ("comm_bytes_per_step", "comm/step"), ("throughput_samples_per_s_per_rank", "samples/s/rank")],
                   curves))]
    if len(cmp):
        # ps and ddp first (the comparison), fsdp after them (dropped first for width)
        pair, other = (sc.ALLREDUCE, sc.PS), [s for s in sc.DATA_PARALLEL if s not in (sc.ALLREDUCE, sc.PS)]
        cols = [*key, ("world_size", "ranks"), *[(f"throughput_samples_per_s_{s}", f"{s} samples/s") for s in pair],
                ("throughput_ratio_ps_over_ddp", "ps/ddp"), *[(f"scaling_efficiency_{s}", f"{s} eff") for s in pair],
                *[(f"comm_bytes_per_step_{s}", f"{s} comm") for s in pair]]
        for s in other:
            cols += [(f"throughput_samples_per_s_{s}", f"{s} samples/s"), (f"scaling_efficiency_{s}", f"{s} eff"),
                     (f"comm_bytes_per_step_{s}", f"{s} comm")]
        out.append(("parameter server (ps) vs allreduce (ddp), side by side: the group's samples/s; ps/ddp > 1: "
                    "the parameter server is faster; eff: scaling efficiency; comm: collective bytes per step",
                    cmp, _with_data(cols, cmp)))
    out += comm_sections(df)
    return out


def _comm_vs_none(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`~hwbench.analysis.scaling.comm_vs_none` with a workload label per row."""
    cmp = sc.comm_vs_none(df)
    if cmp.empty:
        return cmp
    return cmp.assign(workload=[sc.workload_id(str(c), p, n, m) for c, p, n, m in
                                zip(cmp["case_id"], cmp["parallelism"], cmp["world_size"], cmp["comm"])],
                      group=[f"{p}{n}" for p, n in zip(cmp["parallelism"], cmp["world_size"])])


def comm_sections(df: pd.DataFrame) -> list[Table]:
    """Each gradient-compression (``comm``) setting against ``none`` per strategy and
    world size (:func:`~hwbench.analysis.scaling.comm_vs_none`), one table per workload
    (and run) so that the numbers fit 80 columns; none without such cases."""
    cmp = _comm_vs_none(df)
    if cmp.empty:
        return []
    several = cmp["run_id"].nunique() > 1
    out: list[Table] = []
    for (run, work), g in cmp.groupby(["run_id", "workload"], sort=False):
        head = ("gradient compression (comm) vs none: median step, its speed-up, the parameters' relative L2 "
                "deviation from none after the same steps (the accuracy cost), bytes each rank sends per step, "
                "communication not overlapped by compute per step (exposed; busy: all of it, an upper bound), "
                "compression (none's bytes / these); " if not out else "comm vs none: ")
        title = head + str(work) + (f" (run {str(run)[:8]})" if several else "")
        out.append((title, g, _with_data([
            ("group", "group"), ("comm", "comm"), ("latency_ms_p50", "step"), ("step_speedup_vs_none", "speed-up"),
            ("param_rel_l2_vs_none", "param dev"),  # never a speed-up without its cost
            ("comm_bytes_per_step", "comm/step"), ("comm_exposed_ms", "exposed"),
            ("comm_compression_ratio", "compress"), ("comm_busy_ms", "busy")], g)))
    return out


def _with_data(cols: list[tuple[str, str]], df: pd.DataFrame) -> list[tuple[str, str]]:
    """The (column, header) pairs of ``cols`` that ``df`` has a value in (a strategy that
    did not run, tokens of a model without sequences: no empty column)."""
    return [(c, h) for c, h in cols if c in df and df[c].notna().any()]


def _workload_labels(df: pd.DataFrame, side_by_side: bool = False) -> pd.DataFrame:
    """``df`` with a ``workload`` column: the case id without the strategy, without the
    parts every workload shares (from the ``case_id`` of ``df``, or for a side-by-side
    frame of :func:`~hwbench.analysis.scaling.ps_vs_allreduce` from its
    ``case_id_<strategy>`` columns)."""
    df = df.copy()
    if not side_by_side:
        ids = [sc.workload_id(str(c), p, n) for c, p, n in zip(df["case_id"], df["parallelism"], df["world_size"])]
    else:
        ids = []
        for r in df.to_dict("records"):
            s, cid = next(((s, r[f"case_id_{s}"]) for s in sc.DATA_PARALLEL if isinstance(r.get(f"case_id_{s}"), str)))
            ids.append(sc.workload_id(cid, s, r["world_size"]))
    short = abbreviate_ids(ids)[0] if len(set(ids)) > 1 else ids
    df["workload"] = pd.Series(short, index=df.index, dtype="object")
    return df


def _shared(curves: pd.DataFrame) -> str:
    """What every curve shares, as the end of a title: the workload, the scaling mode,
    the host."""
    parts = []
    if curves["workload"].nunique() == 1:
        parts.append(f"every row {curves['workload'].iloc[0]}")
    if curves["scaling"].nunique(dropna=False) == 1 and isinstance(curves["scaling"].iloc[0], str):
        s = curves["scaling"].iloc[0]
        parts.append(f"{s} scaling" + {"weak": " (batch per rank fixed)", "strong": " (global batch fixed)"}.get(s, ""))
    if curves["hostname"].nunique(dropna=False) == 1:
        parts.append(f"on {curves['hostname'].iloc[0]}")
    if curves["run_id"].nunique(dropna=False) > 1:
        parts.append("each run on its own")
    return ("; " + ", ".join(parts)) if parts else ""


_CURVE_TABLE = [("parallelism", "strategy"), ("world_size", "ranks"), ("throughput_samples_per_s", "samples/s"),
                ("ideal_throughput_samples_per_s", "ideal samples/s"), ("scaling_efficiency", "efficiency"),
                ("processed_tokens_per_s", "tokens/s"), ("comm_fraction", "comm share"),
                ("comm_bytes_per_step", "comm bytes/step"), ("comm_s_per_step", "comm time/step"),
                ("throughput_samples_per_s_per_rank", "samples/s per rank"), ("global_batch_size", "global batch"),
                ("rank_memory_peak_bytes_max", "rank memory peak")]
_CMP_TABLE = [("world_size", "ranks"), ("throughput_samples_per_s_ddp", "ddp samples/s"),
              ("throughput_samples_per_s_ps", "ps samples/s"), ("throughput_ratio_ps_over_ddp", "ps / ddp"),
              ("comm_bytes_per_step_ddp", "ddp comm/step"), ("comm_bytes_per_step_ps", "ps comm/step"),
              ("comm_bytes_ratio_ps_over_ddp", "comm ps / ddp"), ("scaling_efficiency_ddp", "ddp efficiency"),
              ("scaling_efficiency_ps", "ps efficiency"), ("throughput_samples_per_s_fsdp", "fsdp samples/s"),
              ("comm_bytes_per_step_fsdp", "fsdp comm/step"), ("scaling_efficiency_fsdp", "fsdp efficiency")]


@PAGE.register(name="parallel")
def parallel_section(page: Page, rep: Report) -> None:
    """"Parallel scaling": per workload that ran as a torchrun group, the group's
    throughput and efficiency against world size per strategy, and the parameter server
    against allreduce side by side. Nothing where no case ran as a group."""
    df, several_hosts = rep.df, len(rep.hosts) > 1
    curves = sc.parallel_scaling(df)
    if curves.empty:
        return
    page.section("Parallel scaling", key="parallel-scaling")
    page.add('<p class="note">Cases that ran as a torchrun group: the group\'s throughput against world size '
             "(log<sub>2</sub>), with the ideal linear scaling from world size 1 dotted; scaling efficiency = "
             "throughput(N) / (N × throughput(1)); comm share = time in collectives per step (it may overlap "
             "compute: an upper bound); comm bytes: what the busiest rank's collectives carried per step.</p>")
    cmp = sc.ps_vs_allreduce(curves)
    group = [c for c in sc.WORKLOAD if c in curves]
    cmp_key = tr._key(cmp, group)
    workloads = list(curves.groupby(tr._key(curves, group), sort=False))
    for i, (key, g) in enumerate(workloads):
        r = g.iloc[0]
        name = sc.workload_id(str(r["case_id"]), r["parallelism"], r["world_size"]) + \
            (f" on {r['hostname']}" if several_hosts else "") + \
            (f" run {str(r['run_id'])[:8]}" if curves["run_id"].nunique() > 1 else "")
        # a world-size-1 baseline from another run (this run has none): the table names it
        other = g["scaling_baseline_run_id"].notna() & (g["scaling_baseline_run_id"] != g["run_id"])
        table = [(c, h) for c, h in _CURVE_TABLE if g[c].notna().any()]
        if other.any():
            table.insert(table.index(("scaling_efficiency", "efficiency")) + 1,
                         ("scaling_baseline_run_id", "baseline run"))
        suffix = f"-{i + 1}" if len(workloads) > 1 else ""
        # a heading, not a page.section: the contents line lists models under level 3
        page.add(f'<h3 id="{slug("parallel-" + name, page.ids)}">{esc(name)}</h3>')
        page.add(f'<p class="note">{esc(r["scaling"])} scaling'
                 + {"weak": " (batch per rank fixed)", "strong": " (global batch fixed)"}.get(str(r["scaling"]), "")
                 + "</p>")
        page.pair(fig_parallel_scaling(g, svg_text(name)),
                  "Group throughput against world size per strategy (log-log); dotted: the ideal, N × the "
                  "throughput at world size 1. Right: scaling efficiency.",
                  page.frame(g, table, title=f"Parallel scaling / {name}",
                             csv_name=f"parallel-scaling{suffix}.csv"))
        mine = cmp[[k == key for k in cmp_key]]
        if len(mine):
            page.pair(fig_ps_vs_allreduce(mine, svg_text(name)),
                      "Parameter server (ps: rank 0 gathers the gradients and sends the parameters back) against "
                      "allreduce data parallelism (ddp) at each world size: the group's throughput and the "
                      "collective bytes per step of the busiest rank. ps / ddp &gt; 1: the parameter server is faster.",
                      page.frame(mine, [(c, h) for c, h in _CMP_TABLE if mine[c].notna().any()],
                                 title=f"Parallel scaling / {name}: parameter server against allreduce",
                                 csv_name=f"ps-vs-allreduce{suffix}.csv"))
    _comm_table(page, df)


_COMM_TABLE = [("run_id", "run"), ("workload", "workload"), ("parallelism", "strategy"), ("world_size", "ranks"),
               ("comm", "comm"), ("latency_ms_p50", "step"), ("step_speedup_vs_none", "speed-up vs none"),
               ("param_rel_l2_vs_none", "param deviation vs none"), ("comm_bytes_per_step", "comm bytes/step"),
               ("comm_compression_ratio", "compression"), ("comm_exposed_ms", "exposed comm/step"),
               ("comm_exposed_ms_none", "none's exposed"), ("comm_busy_ms", "busy comm/step")]


def _comm_table(page: Page, df: pd.DataFrame) -> None:
    """Gradient compression (``comm``) against none, one table; nothing without it."""
    cmp = _comm_vs_none(df)
    if cmp.empty:
        return
    cols = [(c, h) for c, h in _COMM_TABLE if c != "run_id" or cmp["run_id"].nunique() > 1]
    page.add(f'<h3 id="{slug("parallel-comm", page.ids)}">Gradient compression (comm) against none</h3>')
    page.add('<p class="note">Per strategy and world size: the median step and its speed-up over '
             "<code>comm = \"none\"</code>, the parameters' relative L2 deviation from the same steps run "
             "uncompressed (the accuracy cost), the bytes each rank's collectives carried per step, the "
             "compression (none's bytes / these), and communication time per step not overlapped by compute "
             "(exposed) next to all of it (busy, an upper bound).</p>")
    page.add(page.frame(cmp, [(c, h) for c, h in cols if cmp[c].notna().any()], csv_name="comm-vs-none.csv",
                        title="Parallel scaling / Gradient compression (comm) against none"))
