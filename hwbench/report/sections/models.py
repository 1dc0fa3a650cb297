"""HTML section "Per model": for each model, throughput against batch size with the
knee, the latency distributions, the Pareto front of each run, FLOP/s / MFU / roofline,
and one case's collector time series."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ...analysis import tradeoffs as tr
from ...analysis.derive import load_samples
from .. import format as fm
from ..escape import esc, svg_text
from ..figures import fig_batch_scaling, fig_latency, fig_pareto, fig_series, series_columns, series_label
from ..fit import abbreviate_ids
from ..page import Page
from . import PAGE, Report

MAX_SERIES = 12  # time-series figures at most (one chosen case per model)
MAX_SAMPLE_ROWS = 60  # rows of a time series shown in its table (the CSV has all)


@dataclass
class _Shared:
    """What the models' subsections share: raw times and sample counts per (run, case),
    each run's results file, the batch curves, and the time-series figures left."""

    raw: dict
    nsamp: dict
    paths: dict
    scaling: pd.DataFrame
    chosen: set = field(default_factory=set)
    series_left: int = MAX_SERIES


@PAGE.register(name="models")
def models_section(page: Page, rep: Report) -> None:
    page.section("Per model", key="models")
    records, several_runs, ok = rep.records, rep.several_runs, rep.ok
    sh = _Shared(_raw_times(records), _n_samples(records), {rec.run_id: p for p, rec in records},
                 tr.batch_scaling(rep.df), set(rep.series_cases or ()))
    for model in dict.fromkeys(ok["model"].dropna()):
        m = ok[ok["model"] == model]
        page.section(f"{model}", level=3, key=f"model-{model}")
        short, common = abbreviate_ids([str(c) for c in m["case_id"]])
        if several_runs:  # the same case in two runs: name the run
            short = [f"{n} run {str(r)[:8]}" for n, r in zip(short, m["run_id"])]
        names = dict(zip(m.index, short))
        if common:
            page.add(f'<p class="note">Every case below: {esc(" · ".join(common))}</p>')
        _batch(page, sh, model, several_runs)
        keys = [(r["run_id"], r["case_id"]) for r in m.to_dict("records")]
        _latency(page, sh, model, m, keys, names)
        pd_ = tr.pareto_fronts(m)
        pd_["case"] = [names[i] for i in pd_.index]
        _pareto(page, model, pd_, names, several_runs)
        _mfu(page, model, m, pd_)
        _series(page, sh, model, m, keys)


def _batch(page: Page, sh: _Shared, model: Any, several_runs: bool) -> None:
    """Throughput against batch size."""
    sc = sh.scaling[sh.scaling["model"] == model]
    sc = sc.assign(config=[series_label(r, several_runs) for r in sc.to_dict("records")])
    if len(sc) and (sc["n_points"] >= 2).any():
        page.pair(fig_batch_scaling(sc, str(model)),
                  "Throughput against batch size per precision / backend (log-log); a ring marks the knee, "
                  "where a larger batch stops gaining 10 % per doubling.",
                  page.frame(sc, [("mode", "mode"), ("config", "precision, backend"), ("batch_size", "batch"),
                                  ("throughput_samples_per_s", "samples/s"), ("latency_ms_p50", "p50"),
                                  ("gain_per_doubling", "gain/doubling"), ("scaling_efficiency", "efficiency"),
                                  ("knee_batch_size", "knee")], csv_name=f"batch-scaling-{svg_text(model)}.csv"))


def _latency(page: Page, sh: _Shared, model: Any, m: pd.DataFrame, keys: list, names: dict) -> None:
    """The latency distributions."""
    have = [(i, sh.raw[k]) for i, k in zip(m.index, keys) if k in sh.raw and len(sh.raw[k])]
    if not have:
        return
    lat = m.loc[[i for i, _ in have]].assign(case=[names[i] for i, _ in have])
    page.pair(fig_latency([names[i] for i, _ in have], [t for _, t in have], str(model)),
              "Per-iteration latency from the raw times in the results file (log scale): box = quartiles, "
              "red line = median, whiskers = 1st-99th percentile; points beyond are not drawn.",
              page.frame(lat, [("case", "case"), ("iterations", "iterations"), ("latency_ms_min", "min"),
                               ("latency_ms_p50", "p50"), ("latency_ms_p90", "p90"), ("latency_ms_p99", "p99"),
                               ("latency_iqr_rel", "IQR/p50"), ("latency_cv", "CV")],
                         csv_name=f"latency-{svg_text(model)}.csv"))


def _pareto(page: Page, model: Any, pd_: pd.DataFrame, names: dict, several_runs: bool) -> None:
    """One Pareto front per run."""
    for run_id, front in pd_.groupby("run_id", sort=False, dropna=False):
        if front[["throughput_samples_per_s", "energy_per_sample_j"]].notna().all(axis=1).sum() < 2:
            continue
        suffix = "-" + svg_text(str(run_id)[:8]) if several_runs else ""
        est = bool((front["energy_source"] == "estimated").any())
        of_run = f" of run {str(run_id)[:8]}" if several_runs else ""
        page.pair(fig_pareto(front, names, str(model) + of_run, est),
                  f"Throughput against energy per sample{of_run}; the red line joins the cases no other case "
                  "beats on both. The table adds the 3-metric front with the output deviation from fp32 eager."
                  + (" Energy here is <b>estimated</b>, not measured." if est else ""),
                  page.frame(front.sort_values("throughput_samples_per_s", ascending=False),
                             [("case", "case"), ("throughput_samples_per_s", "samples/s"),
                              ("energy_per_sample_j", "energy/sample"), ("rel_l2_error", "rel L2 error"),
                              ("on_front_2d", "front (2)"), ("on_front_3d", "front (3)")],
                             csv_name=f"pareto-{svg_text(model)}{suffix}.csv"))


def _mfu(page: Page, model: Any, m: pd.DataFrame, pd_: pd.DataFrame) -> None:
    """FLOP/s, MFU and roofline, folded."""
    roof = [("case", "case"), ("achieved_tflops", "achieved"), ("peak_tflops", "peak"), ("mfu", "MFU"),
            ("mfu_achievable", "MFU (measured peak)"), ("arithmetic_intensity", "FLOP/byte"),
            ("roofline_bound_tflops", "roof"), ("roofline_fraction", "of roof"), ("roofline_limit", "limit")]
    roof = [(c, h) for c, h in roof if c == "case" or m[c].notna().any()]
    if len(roof) > 1:
        why = [str(x) for x in dict.fromkeys(m["mfu_reason"].dropna())] + \
              [str(x) for x in dict.fromkeys(m["roofline_reason"].dropna())]
        note = "".join(f'<p class="note">Not shown: {esc(w)}</p>' for w in why[:2])
        page.add("<details><summary>FLOP/s, MFU and roofline</summary>"
                 + page.frame(pd_, roof, csv_name=f"mfu-{svg_text(model)}.csv") + note + "</details>")


def _series(page: Page, sh: _Shared, model: Any, m: pd.DataFrame, keys: list) -> None:
    """The chosen case's collector time series (default: the case with the most samples)."""
    if sh.series_left <= 0:
        return
    if sh.chosen:
        pick = [k for k in keys if k[1] in sh.chosen]
    else:
        best = max(keys, key=lambda k: sh.nsamp.get(k, 0))
        pick = [best] if sh.nsamp.get(best, 0) >= 2 else []
    for run_id, case_id in pick[:sh.series_left]:
        s = load_samples(sh.paths[run_id], case_id)
        if len(s) < 2 or not series_columns(s):
            continue
        sh.series_left -= 1
        row = m[(m["run_id"] == run_id) & (m["case_id"] == case_id)].iloc[0]
        window = row["energy_window_s"] if not fm.missing(row["energy_window_s"]) else row["measured_s"]
        shown = [c for c in s.columns if c in ("sampler", "t_s") or
                 any(c in cols for *_, cols in series_columns(s))]
        page.pair(fig_series(s, None if fm.missing(window) else float(window), str(case_id)),
                  f"Collector samples of <code>{esc(case_id)}</code> (the case of this model with the most "
                  f"samples); the shaded band is the timed window.",
                  page.frame(s[shown].head(MAX_SAMPLE_ROWS), [(c, c) for c in shown],
                             caption=(f"first {MAX_SAMPLE_ROWS} of {len(s)} samples" if len(s) > MAX_SAMPLE_ROWS
                                      else ""), csv_name=f"samples-{svg_text(model)}.csv"))


def _raw_times(records) -> dict[tuple[str, str], np.ndarray]:
    out = {}
    for _, rec in records:
        for c in rec.cases:
            if c.measurement is not None and c.measurement.raw_times_s:
                out[(rec.run_id, c.case_id)] = np.array([t for rep in c.measurement.raw_times_s for t in rep]) * 1e3
    return out


def _n_samples(records) -> dict[tuple[str, str], int]:
    out = {}
    for _, rec in records:
        for c in rec.cases:
            out[(rec.run_id, c.case_id)] = max((len((s.samples or {}).get("t_s", [])) for s in c.collectors.values()),
                                               default=0)
    return out
