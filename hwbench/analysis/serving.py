"""Serving columns, derived at load from a serving case's load points (raw per-query
latencies) and the suite's SLO settings (docs/serving.md).

Per case (one row): the headline load point -- the case's only one, or for a Server
capacity search the probe at capacity (the lowest probe where none passed) -- gives
``offered_qps``, ``achieved_qps``, ``latency_ms_p50/p90/p99`` (LoadGen's percentile
rule, :func:`hwbench.serving.slo.percentile_lg`), ``slo_met`` and ``goodput_rps``.
``capacity_qps_at_slo``: a search's own result; for load points listed in
``server_qps`` / ``request_rates``, over the case's sibling rows (same case but the
load): the highest offered rate that met the SLO with every lower one meeting it too.
"""

from __future__ import annotations

import re
from typing import Any

from ..serving.slo import percentile_lg, request_ok, slo_met

LOAD_SUFFIX = re.compile(r"@[0-9.e+-]+(qps|rps)$")


def headline(serving) -> Any:
    """The load point a case's row shows (module docstring)."""
    pts = serving.points
    if not pts:
        return None
    if serving.capacity_qps_at_slo is not None:
        return min(pts, key=lambda p: abs((p.offered_qps or 0) - serving.capacity_qps_at_slo))
    if len(pts) > 1:
        return min(pts, key=lambda p: p.offered_qps or 0)
    return pts[0]


def _ms(values) -> list[float]:
    return [v * 1e3 for v in values or ()]


def point_columns(p, settings: dict[str, Any], scenario: str = "server") -> dict[str, Any]:
    """One load point's columns (module docstring), from its raw latencies. The
    latency SLO applies to every scenario but Offline (one query of every sample: its
    latencies are queueing, not service); generation is judged by TTFT and TPOT
    (MLPerf's LLM rules), its end-to-end latency is reported only."""
    pct = float(settings.get("latency_slo_percentile", 99.0))
    lat_slo, ttft_slo, tpot_slo = (settings.get(k) for k in ("latency_slo_ms", "ttft_slo_ms", "tpot_slo_ms"))
    if scenario == "offline" or p.ttft_s is not None:
        lat_slo = None
    if p.ttft_s is None:
        ttft_slo = tpot_slo = None
    lat, ttft, tpot = _ms(p.latencies_s), _ms(p.ttft_s), _ms(p.tpot_s)
    generation = p.ttft_s is not None
    out: dict[str, Any] = {
        "offered_qps": p.offered_qps, "achieved_qps": p.achieved_qps,
        "latency_ms_p50": percentile_lg(lat, 50), "latency_ms_p90": percentile_lg(lat, 90),
        "latency_ms_p99": percentile_lg(lat, 99), "loadgen_log": p.loadgen_log,
        "queries": len(lat),
        # the other latency statistics of the row are the queries' too (not the SUT's batches)
        "latency_ms_mean": sum(lat) / len(lat) if lat else None, "latency_ms_min": min(lat) if lat else None,
        "latency_ms_std": None, "latency_cv": None, "latency_iqr_rel": None,
    }
    lg99 = p.loadgen_summary.get("99.00 percentile latency (ns)")
    out["loadgen_latency_ms_p99"] = int(lg99) / 1e6 if lg99 and lg99.isdigit() else None
    if generation:
        out["ttft_ms_p99"] = percentile_lg(ttft, 99)
        out["tpot_ms_p99"] = percentile_lg(tpot, 99)
        out["itl_ms_max_p99"] = percentile_lg(_ms(p.itl_max_s), 99)
        if p.output_tokens and p.duration_s > 0:
            out["tokens_per_s"] = sum(p.output_tokens) / p.duration_s
        verdicts = [slo_met(lat, lat_slo, pct), slo_met(ttft, ttft_slo, pct), slo_met(tpot, tpot_slo, pct)]
        # tpot_s holds the requests with more than one output token, in order
        tpots = iter(tpot)
        per_tpot = [next(tpots, None) if n > 1 else None for n in (p.output_tokens or [2] * len(lat))]
        per_req = [request_ok(e, lat_slo, t, ttft_slo, tp, tpot_slo if tp is not None else None)
                   for e, t, tp in zip(lat, ttft, per_tpot)]
    else:
        verdicts = [slo_met(lat, lat_slo, pct)]
        per_req = [request_ok(e, lat_slo) for e in lat]
    known = [v for v in verdicts if v is not None]
    out["slo_met"] = all(known) if known else None
    any_slo = any(s is not None for s in (lat_slo, ttft_slo, tpot_slo))
    out["goodput_rps"] = sum(per_req) / p.duration_s if any_slo and p.duration_s > 0 else None
    return out


def serving_columns(c, settings: dict[str, Any], row: dict[str, Any] | None = None) -> dict[str, Any]:
    """A serving case's row columns; {} for any other case. Throughput figures of the
    row (``row``: what derive computed from the SUT's batch times) are replaced by the
    load point's: samples/s, FLOP/s and MFU at the achieved rate, tokens through the
    model per second (generation: FLOP/s and MFU are left empty, its requests' lengths
    vary)."""
    m = c.measurement
    out: dict[str, Any] = {"scenario": c.case.scenario if c.case.scenario != "none" else (
        "generate" if c.case.arrival != "none" else None), "arrival": None if c.case.arrival == "none" else c.case.arrival}
    if m is None or m.serving is None:
        return out if out["scenario"] else {}
    s = m.serving
    p = headline(s)
    if p is None:
        return out
    # the SLOs the case ran with (block or settings), else the settings' (older files)
    slos = {k: getattr(c.case, k) if getattr(c.case, k) is not None else settings.get(k)
            for k in ("latency_slo_ms", "ttft_slo_ms", "tpot_slo_ms")}
    if s.scenario == "offline" or c.case.mode == "generate":  # no latency SLO (point_columns)
        slos["latency_slo_ms"] = None
    if c.case.mode != "generate":
        slos["ttft_slo_ms"] = slos["tpot_slo_ms"] = None
    out.update(point_columns(p, {**settings, **slos}, s.scenario))
    out.update(slos)
    out["capacity_qps_at_slo"] = s.capacity_qps_at_slo
    out["capacity_rule"] = s.capacity_rule or None
    out["fixed_batch_samples_per_s"] = s.fixed_batch_samples_per_s
    out["load_points"] = len(s.points)
    out["throughput_samples_per_s"] = p.achieved_qps
    row = row or {}
    flops = c.facts.flops_per_sample if c.facts is not None else None
    gen = c.case.mode == "generate"
    out["achieved_tflops"] = flops * p.achieved_qps / 1e12 if flops and not gen else None
    peak = row.get("peak_tflops")
    out["mfu"] = out["achieved_tflops"] / peak if out["achieved_tflops"] and peak else None
    out["processed_tokens_per_s"] = p.achieved_qps * c.case.seq_len if c.case.seq_len and not gen else None
    # the roofline places a full batch's step; a load point's batches vary in size
    out.update(mfu_achievable=None, roofline_fraction=None, above_roofline=None,
               roofline_reason="serving case: batches vary with load (see the fixed-batch case)")
    requests = sum(len(q.latencies_s) for q in s.points)
    out["requests"] = requests
    if c.energy is not None and requests:
        out["energy_per_request_j"] = c.energy.energy_j / requests
        samples = round(sum(q.achieved_qps * q.duration_s for q in s.points))
        out["energy_per_sample_j"] = c.energy.energy_j / samples if samples else None
    return out


# LoadGen's own checks of a test, as its summary prints them (``Result is : INVALID``
# names which failed): its latency target at its percentile, the minimum duration and
# query count, and early stopping (too few queries to bound the percentile)
LOADGEN_CHECKS = ("Performance constraints satisfied", "Min duration satisfied", "Min queries satisfied",
                  "Early stopping satisfied")


def loadgen_flags(c) -> list[tuple[str, str]]:
    """``loadgen_invalid`` where LoadGen judged the row's load point (:func:`headline`)
    INVALID, with the checks that failed: the point's figures are hwbench's own from
    its per-query latencies, but LoadGen says the test could not support them (too
    short, too few queries for its percentile, or its latency target missed)."""
    m = c.measurement
    p = headline(m.serving) if m is not None and m.serving is not None else None
    if p is None or p.loadgen_summary.get("Result is", "").upper() != "INVALID":
        return []
    failed = [k for k in LOADGEN_CHECKS if p.loadgen_summary.get(k, "").strip().lower() == "no"]
    where = f" at {p.offered_qps:g} q/s" if p.offered_qps is not None else ""
    return [("loadgen_invalid", f"LoadGen judged the {m.serving.scenario} test{where} INVALID "
                                f"({'; '.join(failed) + ': no' if failed else 'no check named'}); see "
                                f"{p.loadgen_log or 'its log'}/mlperf_log_summary.txt")]


def sibling_capacity(rows: list[dict[str, Any]]) -> None:
    """``capacity_qps_at_slo`` of listed load points (in place), over the rows of the
    same run and case but the load (module docstring)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        cid = r.get("case_id") or ""
        if r.get("offered_qps") is None or not LOAD_SUFFIX.search(cid) or r.get("status") != "ok":
            continue
        groups.setdefault((r.get("run_id"), r.get("hostname"), LOAD_SUFFIX.sub("", cid)), []).append(r)
    for members in groups.values():
        cap = capacity_from_points([(r["offered_qps"], r.get("slo_met")) for r in members])
        for r in members:
            r["capacity_qps_at_slo"] = cap


def capacity_from_points(points: list[tuple[float, bool | None]]) -> float | None:
    """The highest offered rate that met the SLO with every lower rate meeting it too;
    None where the lowest missed it or no SLO was judged."""
    cap = None
    for rate, ok in sorted(points):
        if ok is not True:
            break
        cap = rate
    return cap


# ------------------------------------------------------------------ report frames
SCENARIO_SUFFIX = re.compile(r"/(single_stream|multi_stream|server|offline)(@[0-9.e+-]+qps)?$|/(poisson|constant)@[0-9.e+-]+rps$")


INSTANCES_SUFFIX = re.compile(r"/inst[0-9]+$")


def workload_of(case_id: str) -> str:
    """What a serving case serves: its id without the scenario / load part
    (``encoder:tiny/infer/bs16/seq32/fp32/eager/cpu/server@100qps`` ->
    ``encoder:tiny/infer/bs16/seq32/fp32/eager/cpu``). A SUT of several model
    instances keeps its ``inst<N>`` part: its curve is its own."""
    return SCENARIO_SUFFIX.sub("", case_id)


def fixed_case_of(workload: str) -> str:
    """The fixed-batch case a workload is compared with: its id without an
    ``inst<N>`` part (one model, a full batch back to back)."""
    return INSTANCES_SUFFIX.sub("", workload)


def load_curve(df):
    """The serving rows that ran, one per load point shown, with their ``workload``,
    sorted by workload and offered load (Offline rows have no offered load)."""
    ok = df[(df["status"] == "ok") & df["scenario"].notna()].copy()
    ok["workload"] = [workload_of(c) for c in ok["case_id"]]
    return ok.sort_values(["run_id", "workload", "scenario", "offered_qps"], kind="stable", na_position="first")


def capacity_vs_fixed(df):
    """Per run and workload: the fixed-batch throughput (the plain infer case of the
    same model, batch, shape, precision, backend and device), the Offline scenario's
    samples/s, and the capacity at the SLO, with ``capacity_over_fixed`` (capacity /
    fixed-batch throughput: how much of the closed-loop figure a service at the SLO
    keeps)."""
    import pandas as pd

    curve = load_curve(df)
    fixed = {(r.run_id, r.case_id): r.throughput_samples_per_s for r in df[df["status"] == "ok"].itertuples()}
    rows = []
    for (run, wl), g in curve.groupby(["run_id", "workload"], sort=False):
        if (g["mode"] != "infer").all():
            continue
        off = g[g["scenario"] == "offline"]["achieved_qps"]
        caps = g["capacity_qps_at_slo"].dropna()
        fx = fixed.get((run, fixed_case_of(wl)))
        cap = float(caps.max()) if len(caps) else None
        if cap is None and not len(off):
            continue  # SingleStream / MultiStream only: nothing to set beside the fixed batch
        rows.append({"run_id": run, "workload": wl, "fixed_batch_samples_per_s": fx,
                     "offline_samples_per_s": float(off.iloc[0]) if len(off) else None,
                     "capacity_qps_at_slo": cap, "latency_slo_ms": g["latency_slo_ms"].dropna().max(),
                     "capacity_over_fixed": cap / fx if cap and fx else None,
                     "offline_over_fixed": float(off.iloc[0]) / fx if len(off) and fx else None})
    cols = ["run_id", "workload", "fixed_batch_samples_per_s", "offline_samples_per_s", "capacity_qps_at_slo",
            "latency_slo_ms", "capacity_over_fixed", "offline_over_fixed"]
    return pd.DataFrame(rows, columns=cols)
