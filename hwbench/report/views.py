"""Terminal and markdown views of the trade-off analyses (``hwbench report --view``):
the same frames as the HTML report (:mod:`hwbench.analysis.tradeoffs`), for pull-request
comments and CI logs.

* ``tradeoffs``: speed-up of each precision / backend / variant against fp32 eager,
  with the energy ratio and the accuracy cost (output deviation), summarised and per case;
* ``scaling``: throughput against batch size with the knee, per curve, model-size
  power-law fits and, where cases ran as a torchrun group, the parallel scaling curves
  (group throughput against world size) and the parameter server against allreduce side
  by side (:mod:`hwbench.analysis.scaling`; the default report shows these two too);
* ``pareto``: per model, the cases on the front of throughput (max) and energy per
  sample (min), and of those two plus the output deviation (min).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..analysis import scaling as sc
from ..analysis import tradeoffs as tr
from .fit import Column, abbreviate_ids, fit
from .table import formatter_for
from .text import clean

VIEWS = ("tradeoffs", "scaling", "pareto")

# A view: [(title, frame, [(column, header)])]
Section = tuple[str, pd.DataFrame, list[tuple[str, str]]]


def _short(df: pd.DataFrame, col: str = "case_id") -> pd.DataFrame:
    df = df.copy()
    df["case"] = abbreviate_ids([str(c) for c in df[col]])[0] if len(df) else []
    return df


def view_sections(df: pd.DataFrame, view: str) -> list[Section]:
    """The tables of ``view`` (see the module docstring), as raw frames with the columns
    to show and their headers."""
    run = _run_column(df)
    said = runs_said(df)
    if view == "tradeoffs":
        sp = tr.speedup_table(df)
        summ = tr.speedup_summary(sp)
        per = sp[sp["case_id"] != sp["baseline_case_id"]]
        return [
            ("speed-up vs fp32 eager of the same run (geometric mean over cases; accuracy cost = worst deviation "
             "from fp32 eager)" + said,
             summ, [*run, ("hostname", "host"), ("mode", "mode"), ("precision", "precision"), ("backend", "backend"),
                    ("variant", "variant"), ("n_cases", "cases"), ("speedup_geomean", "speed-up"),
                    ("speedup_min", "min"), ("speedup_max", "max"), ("energy_ratio_geomean", "energy ratio"),
                    ("rel_l2_error_max", "rel L2 err")]),
            ("per case", per, [*run, ("case_id", "case"), ("baseline_case_id", "baseline"), ("speedup", "speed-up"),
                               ("energy_ratio", "energy ratio"), ("rel_l2_error", "rel L2 err")]),
        ]
    if view == "scaling":
        knees = tr.batch_knees(tr.batch_scaling(df))
        fits = tr.size_scaling(df)
        # a torchrun group's batch curve is its own: say which strategy and world size
        group = [("parallelism", "strategy"), ("world_size", "ranks")] if len(sc.parallel_rows(df)) else []
        return [
            ("throughput vs batch size (knee: where a larger batch stops gaining 10 % per doubling)" + said, knees,
             [*run, ("hostname", "host"), ("model", "model"), ("mode", "mode"), *group, ("precision", "precision"),
              ("backend", "backend"), ("variant", "variant"), ("batch_sizes", "batches"),
              ("throughput_samples_per_s_first", "samples/s first"), ("throughput_samples_per_s_last", "last"),
              ("best_batch_size", "best batch"), ("knee_batch_size", "knee")]),
            ("model-size scaling: metric = c * params^k", fits,
             [*run, ("hostname", "host"), ("family", "family"), ("mode", "mode"), ("batch_size", "batch"),
              ("precision", "precision"), ("variant", "variant"), ("sizes", "sizes"), ("metric", "metric"),
              ("exponent", "k"), ("r2", "R2"), ("n_points", "points")]),
            *parallel_sections(df),
        ]
    if view == "pareto":
        fronts = tr.pareto_fronts(df)
        front = fronts[fronts["on_front_2d"] | fronts["on_front_3d"]]
        return [("Pareto fronts per run and model: throughput (max) x energy per sample (min) [x deviation from "
                 "fp32 (min)]" + said,
                 front, [*run, ("hostname", "host"), ("case_id", "case"), ("throughput_samples_per_s", "samples/s"),
                         ("energy_per_sample_j", "energy/sample"), ("rel_l2_error", "rel L2 err"),
                         ("on_front_2d", "front 2"), ("on_front_3d", "front 3")])]
    raise ValueError(f"unknown view {view!r}; one of {', '.join(VIEWS)}")


def _run_column(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The (column, header) of the run, where ``df`` holds several runs."""
    return [("run_id", "run")] if df["run_id"].nunique() > 1 else []


def runs_said(df: pd.DataFrame) -> str:
    """Where ``df`` holds several runs, the end of a title saying that each analysis
    keeps to one run; empty for one run."""
    n = df["run_id"].nunique()
    return f"; each of the {n} runs on its own (runs are never pooled)" if n > 1 else ""


def parallel_sections(df: pd.DataFrame) -> list[Section]:
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
    out: list[Section] = [(
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


def comm_sections(df: pd.DataFrame) -> list[Section]:
    """Each gradient-compression (``comm``) setting against ``none`` per strategy and
    world size (:func:`~hwbench.analysis.scaling.comm_vs_none`), one table per workload
    (and run) so that the numbers fit 80 columns; none without such cases."""
    cmp = sc.comm_vs_none(df)
    if cmp.empty:
        return []
    cmp = cmp.assign(workload=[sc.workload_id(str(c), p, n, m) for c, p, n, m in
                               zip(cmp["case_id"], cmp["parallelism"], cmp["world_size"], cmp["comm"])],
                     group=[f"{p}{n}" for p, n in zip(cmp["parallelism"], cmp["world_size"])])
    several = cmp["run_id"].nunique() > 1
    out: list[Section] = []
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


def _columns(cols: Sequence[tuple[str, str]], df: pd.DataFrame) -> list[Column]:
    text = {c for c, _ in cols if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])}
    lead = 3 if cols and cols[0][0] == "run_id" else 2  # the run column comes on top of the first two
    # a per-case speed-up is the number the table is for: shown, the baseline's id cut
    # before the case's (it differs from the case only in precision / backend / variant)
    must = {"speedup"} if "baseline_case_id" in {c for c, _ in cols} else set()
    return [Column(c, h, formatter_for(c), priority=0 if i < lead or c in must else 1 + i, align="left" if c in text else "right",
                   shrink=c in ("baseline_case_id", "workload") or (c == "case_id" and not must), min_width=20)
            for i, (c, h) in enumerate(cols)]


def render_terminal(sections: list[Section], width: int | None) -> list[str]:
    """Each section: its title (wrapped at ``width``), then its table fitted to it."""
    out: list[str] = []
    for title, df, cols in sections:
        if out:
            out.append("")
        out += _wrap(clean(title), width)
        cols = [(c, h) for c, h in cols if c in df]
        if df.empty:
            out.append("  (none)")
            continue
        f = fit(df.to_dict("records"), _columns(cols, df), width)
        out += [clean(line) for line in f.lines]
        if f.hidden:
            note = f"not shown for width: {', '.join(f.hidden)} (--format markdown shows every column)"
            out += _wrap(clean(note), width)
    return out


def _wrap(text: str, width: int | None) -> list[str]:
    """A title or note in lines of at most ``width`` cells (None: one line)."""
    import textwrap

    if not width:
        return [text]
    return textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False) or [""]


def render_markdown(sections: list[Section]) -> str:
    out: list[str] = []
    for title, df, cols in sections:
        out.append(f"### {_md(title)}\n")
        cols = [(c, h) for c, h in cols if c in df]
        if df.empty:
            out += ["(none)", ""]
            continue
        spec = _columns(cols, df)
        out.append("| " + " | ".join(_md(c.header) for c in spec) + " |")
        out.append("|" + "|".join("---:" if c.align == "right" else ":---" for c in spec) + "|")
        for r in df.to_dict("records"):
            out.append("| " + " | ".join(_md(c.cell(r)) for c in spec) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def raw_frame(sections: list[Section]) -> pd.DataFrame:
    """CSV / JSON of a view: the first (main) section's frame with raw numbers."""
    _, df, _ = sections[0]
    return df


def _md(s: str) -> str:
    return clean(s).replace("|", "\\|")
