"""Precision and backend trade-offs: the speed-up of each precision / backend / variant
against fp32 eager of the same run and workload, with the energy ratio and the accuracy
cost (output deviation). View ``tradeoffs`` and the HTML section of that name."""

from __future__ import annotations

import pandas as pd

from ...analysis import tradeoffs as tr
from ..figures import fig_speedup
from ..page import Page
from . import PAGE, VIEWS, Report, Table, run_column, runs_said


@VIEWS.register(name="tradeoffs")
def tradeoffs_view(df: pd.DataFrame) -> list[Table]:
    run = run_column(df)
    sp = tr.speedup_table(df)
    summ = tr.speedup_summary(sp)
    per = sp[sp["case_id"] != sp["baseline_case_id"]]
    return [
        ("speed-up vs fp32 eager of the same run (geometric mean over cases; accuracy cost = worst deviation "
         "from fp32 eager)" + runs_said(df),
         summ, [*run, ("hostname", "host"), ("mode", "mode"), ("precision", "precision"), ("backend", "backend"),
                ("variant", "variant"), ("n_cases", "cases"), ("speedup_geomean", "speed-up"),
                ("speedup_min", "min"), ("speedup_max", "max"), ("energy_ratio_geomean", "energy ratio"),
                ("rel_l2_error_max", "rel L2 err")]),
        ("per case", per, [*run, ("case_id", "case"), ("baseline_case_id", "baseline"), ("speedup", "speed-up"),
                           ("energy_ratio", "energy ratio"), ("rel_l2_error", "rel L2 err")]),
    ]


@PAGE.register(name="tradeoffs")
def tradeoffs_section(page: Page, rep: Report) -> None:
    df = rep.df
    page.section("Precision and backend trade-offs", key="tradeoffs")
    sp = tr.speedup_table(df)
    summ = tr.speedup_summary(sp)
    others = summ[~tr.is_baseline(summ)]
    run_col = rep.run_col
    if rep.several_runs:
        page.add(f'<p class="note">These {df["run_id"].nunique()} runs are analysed each on its own: every speed-up, '
                 "batch curve, size fit, Pareto front and scaling curve below keeps to one run (its baseline is in "
                 "the same run); the <b>run</b> column and legends name it (see Runs above).</p>")
    if not len(others):
        page.add('<p class="note">No case has an fp32 eager baseline of the same workload to compare with.</p>')
        return
    page.pair(fig_speedup(others), "Speed-up of each precision / backend / variant against fp32 eager of the "
              "same run, model, mode, batch and shape (throughput ratio; geometric mean over cases), with the "
              "worst output deviation from fp32 eager beside it in the table.",
              page.frame(others, run_col + [("hostname", "host")] * (len(rep.hosts) > 1) + [
                  ("mode", "mode"), ("precision", "precision"),
                  ("backend", "backend"), ("variant", "variant"), ("n_cases", "cases"),
                  ("speedup_geomean", "speed-up"), ("speedup_min", "min"), ("speedup_max", "max"),
                  ("energy_ratio_geomean", "energy/sample ratio"),
                  ("rel_l2_error_max", "worst rel L2 error")], csv_name="speedup-summary.csv"))
    page.add("<details><summary>Every case against its baseline</summary>" + page.frame(
        sp[sp["case_id"] != sp["baseline_case_id"]],
        [*run_col, ("case_id", "case"), ("baseline_case_id", "baseline"),
         ("throughput_samples_per_s", "samples/s"),
         ("baseline_throughput_samples_per_s", "baseline samples/s"), ("speedup", "speed-up"),
         ("energy_ratio", "energy/sample ratio"), ("rel_l2_error", "rel L2 error"),
         ("max_abs_error", "max abs error")], csv_name="speedup.csv",
        title="Precision and backend trade-offs / Every case against its baseline") + "</details>")
