"""Serving under load (docs/serving.md): latency against offered load per workload
(p50 and p99, the SLO line, capacity marked), and the fixed-batch throughput beside
the Offline throughput and the capacity at the SLO, so the gap between a closed-loop
figure and what a service at its SLO delivers is visible. View ``serving`` and the HTML
section of that name."""

from __future__ import annotations

import math

import pandas as pd

from ...analysis import serving as sv
from ..escape import svg_text
from ..figures import FIG_W, _COLORS, _figure, _log_axis, to_svg
from .. import format as fm
from ..page import Page, html_table
from . import PAGE, VIEWS, Report, Table, run_column, runs_said

CURVE_COLUMNS = [("workload", "workload"), ("scenario", "scenario"), ("offered_qps", "offered"),
                 ("achieved_qps", "achieved"), ("latency_ms_p50", "p50"), ("latency_ms_p99", "p99"),
                 ("latency_slo_ms", "SLO"), ("slo_met", "met"), ("goodput_rps", "goodput"),
                 ("capacity_qps_at_slo", "capacity")]
GEN_COLUMNS = [("workload", "workload"), ("offered_qps", "offered"), ("achieved_qps", "achieved"),
               ("ttft_ms_p99", "TTFT p99"), ("tpot_ms_p99", "TPOT p99"), ("slo_met", "met"),
               ("goodput_rps", "goodput"), ("tokens_per_s", "tokens/s")]
GAP_COLUMNS = [("workload", "workload"), ("capacity_qps_at_slo", "capacity"), ("capacity_over_fixed", "cap/fixed"),
               ("fixed_batch_samples_per_s", "fixed batch"), ("offline_samples_per_s", "Offline"),
               ("offline_over_fixed", "Offline/fixed"), ("latency_slo_ms", "SLO")]


def curve_columns(inf: pd.DataFrame) -> list[tuple[str, str]]:
    """The load curve's columns; the SUT's model instances beside the scenario where
    they vary."""
    if "instances" in inf and inf["instances"].nunique(dropna=True) > 1:
        return [*CURVE_COLUMNS[:2], ("instances", "inst"), *CURVE_COLUMNS[2:]]
    return CURVE_COLUMNS


@VIEWS.register(name="serving")
def serving_view(df: pd.DataFrame) -> list[Table]:
    run = run_column(df)
    curve = sv.load_curve(df)
    inf = curve[curve["mode"] == "infer"]
    return [
        ("latency vs offered load (LoadGen scenarios; p99 by LoadGen's rule from every query's latency)"
         + runs_said(df), inf, [*run, *curve_columns(inf)]),
        ("generation under load (per request TTFT / TPOT)", curve[curve["mode"] == "generate"], [*run, *GEN_COLUMNS]),
        ("fixed-batch throughput beside serving capacity", sv.capacity_vs_fixed(df), [*run, *GAP_COLUMNS]),
    ]


def fig_latency_vs_load(curve: pd.DataFrame) -> str:
    """p50 (dashed) and p99 (solid) against offered load per workload, the SLO as a
    dotted line, capacity as a vertical line in the workload's colour."""
    fig, (ax,) = _figure(FIG_W, 3.6)
    pts = curve[curve["offered_qps"].notna()]
    for i, (wl, g) in enumerate(pts.groupby("workload", sort=False)):
        c = _COLORS[i % len(_COLORS)]
        g = g.sort_values("offered_qps")
        ax.plot(g["offered_qps"], g["latency_ms_p99"], "o-", color=c, label=svg_text(f"{wl} p99"))
        ax.plot(g["offered_qps"], g["latency_ms_p50"], "s--", color=c, alpha=0.6, label=svg_text(f"{wl} p50"))
        cap = g["capacity_qps_at_slo"].dropna()
        if len(cap):
            ax.axvline(float(cap.max()), color=c, linewidth=1, alpha=0.7)
        slo = g["latency_slo_ms"].dropna()
        if len(slo):
            ax.axhline(float(slo.max()), color=c, linestyle=":", linewidth=1)
    ax.set_xlabel("offered load (queries/s); vertical line: capacity at the SLO")
    ax.set_ylabel("latency (dotted: SLO)")
    if len(pts):
        _log_axis(ax, "x", lambda v: fm.si(v, "/s"))
        _log_axis(ax, "y", fm.duration_ms)
        ax.legend(fontsize=7, loc="upper left")
    return to_svg(fig, "Latency against offered load per workload")


@PAGE.register(name="serving")
def serving_section(page: Page, rep: Report) -> None:
    if "scenario" not in rep.df or rep.df["scenario"].isna().all():
        return
    page.section("Serving under load", key="serving")
    curve = sv.load_curve(rep.df)
    run = rep.run_col
    inf = curve[curve["mode"] == "infer"]
    if len(inf[inf["offered_qps"].notna()]):
        page.pair(fig_latency_vs_load(inf), "Latency against offered load (Server load points, the capacity "
                  "search's at capacity): p99 solid, p50 dashed, the SLO dotted, capacity a vertical line.",
                  html_table(inf, [*run, *curve_columns(inf)], csv_name="serving-load.csv"))
    gen = curve[curve["mode"] == "generate"]
    if len(gen):
        page.add(html_table(gen, [*run, *GEN_COLUMNS], csv_name="serving-generate.csv"))
    gap = sv.capacity_vs_fixed(rep.df)
    if len(gap):
        page.add('<p class="note">Fixed-batch throughput is a closed loop with a full batch always ready; a '
                 "service at its SLO only batches what has queued, and queues cost latency: capacity at the SLO "
                 "is the figure a service would see.</p>")
        page.add(html_table(gap, [*run, *GAP_COLUMNS], csv_name="serving-capacity.csv"))
