"""Derive at load: results records -> one flat row per case.

Everything here is computed from raw data stored in the results file (raw times, facts,
energy with its source, the environment of the segment that measured the case), so a
better formula re-derives old files. Column names carry their units (DESIGN.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..records import CaseResult, RunRecord
from .stats import latency_stats_ms, noise_flag, percentile

# Columns of the case identity, in this order, present in every row.
IDENTITY = ("model", "family", "size", "mode", "batch_size", "seq_len", "image_size", "gen_tokens", "precision",
            "backend", "device", "threads", "variant")


def _peak_key(precision: str) -> str | None:
    from .. import precisions

    try:
        return precisions.get(precision).peak_key
    except KeyError:  # a precision this hwbench no longer knows (an old file)
        return None


def _peak(rec: RunRecord, c: CaseResult) -> tuple[float | None, str | None, str | None]:
    """(peak TFLOP/s, its source, why it is unknown) for the case's device and precision."""
    from .. import peaks

    key = _peak_key(c.case.precision)
    if key is None:
        return None, None, f"precision {c.case.precision!r} has no peak key"
    env = rec.environment_of(c)
    kind = (c.device_resolved or c.case.device).split(":")[0]
    cores = None
    if kind == "cpu":
        physical = env.cpu_cores_physical or env.cpu_cores_logical
        used = (c.facts.threads_used if c.facts else None) or c.case.threads
        cores = min(used, physical) if used and physical else physical
    p = peaks.peak(kind, c.device_name or "", key, cores=cores, env=env.model_dump())
    return p.tflops, p.source, p.reason


def case_row(rec: RunRecord, c: CaseResult, path: str = "") -> dict[str, Any]:
    """One case as a flat dict of identity, status, derived statistics and facts."""
    env = rec.environment_of(c)
    ident = c.case.model_dump()
    row: dict[str, Any] = {
        "results_file": str(path),
        "run_id": rec.run_id,
        "suite": rec.suite.name,
        "created": rec.created,
        "run_status": rec.status,
        "hostname": env.hostname,
        "segment": c.segment,
        "case_id": c.case_id,
        **{k: ident.get(k) for k in IDENTITY if k in ident},
        "family": c.case.model.partition(":")[0],
        "size": c.case.model.partition(":")[2],
        "device_name": c.device_name,
        "status": c.status,
        "reason": c.reason,
    }
    flags = [(f.flag, f.detail) for f in c.flags]
    m, facts = c.measurement, c.facts
    bs = c.case.batch_size
    settings = rec.settings()
    if m is not None:
        st = latency_stats_ms(m.raw_times_s)
        row.update(st)
        row["repeats"] = len(m.raw_times_s)
        median_s = st.get("latency_ms_p50", 0.0) / 1e3
        row["throughput_samples_per_s"] = bs / median_s if median_s > 0 else None
        row["first_iter_ms"] = m.first_iter_s * 1e3
        row["warmup_s"] = m.warmup_s
        row["measured_s"] = m.measured_s
        if c.case.backend != "eager":
            row["compile_s"] = m.first_iter_s  # the first call traces and compiles
        detail = noise_flag(st, settings.get("noise_threshold", 0.1))
        if detail:
            flags.append(("noisy", detail))
        if c.case.mode == "generate":
            row.update(_generation(m, c, median_s))
    if facts is not None:
        row["params"] = facts.params
        row["flops_per_sample"] = facts.flops_per_sample
        row["flops_per_sample_counted"] = facts.flops_per_sample_counted
        row["flops_counted_vs_analytic"] = (
            facts.flops_per_sample_counted / facts.flops_per_sample
            if facts.flops_per_sample_counted and facts.flops_per_sample else None
        )
        row["flops_counted_reason"] = facts.flops_counted_reason
        row["threads_used"] = facts.threads_used
        if facts.accuracy is not None:
            row.update(facts.accuracy.model_dump())
        row.update(facts.changes)
        for k in ("memory_peak_bytes", "memory_reserved_peak_bytes", "host_rss_peak_bytes"):
            row[k] = getattr(facts, k)
        median_s = (row.get("latency_ms_p50") or 0.0) / 1e3
        achieved = facts.flops_per_sample * bs / median_s / 1e12 if median_s > 0 else None
        peak, source, why = _peak(rec, c)
        row["achieved_tflops"] = achieved
        row["peak_tflops"] = peak
        row["peak_source"] = source
        row["mfu"] = achieved / peak if achieved and peak else None
        row["mfu_reason"] = why if peak is None else None
    row.update(_energy(c, row, flags))
    # the host's summary and that of the case's own accelerator (others stay in the file)
    for col in c.collectors.values():
        if col.device in (None, "cpu", c.device_resolved):
            row.update(col.summary)
    row["flags"] = ",".join(dict.fromkeys(f for f, _ in flags))
    row["flag_details"] = "; ".join(f"{f}: {d}" for f, d in flags)
    return row


def _generation(m, c: CaseResult, median_s: float) -> dict[str, Any]:
    n = c.case.gen_tokens or 1
    out: dict[str, Any] = {"tokens_per_s": c.case.batch_size * n / median_s if median_s > 0 else None}
    if m.ttft_s:
        out["ttft_ms_p50"] = percentile([t * 1e3 for t in m.ttft_s], 50)
        out["ttft_ms_p90"] = percentile([t * 1e3 for t in m.ttft_s], 90)
        if n > 1 and m.decode_s:
            # per iteration from one clock: decode time / tokens after the first
            out["tpot_ms_p50"] = percentile([d * 1e3 / (n - 1) for d in m.decode_s], 50)
    elif m.legacy_summary:
        out.update(m.legacy_summary)
    return out


def _energy(c: CaseResult, row: dict[str, Any], flags: list) -> dict[str, Any]:
    e = c.energy
    if e is None:
        return {}
    out: dict[str, Any] = e.model_dump(exclude_none=True)
    out["power_w_mean"] = e.energy_j / e.energy_window_s if e.energy_window_s > 0 else None
    samples = (row.get("iterations") or 0) * c.case.batch_size
    out["energy_per_sample_j"] = e.energy_j / samples if samples else None
    if c.case.gen_tokens and samples:
        out["energy_per_token_j"] = e.energy_j / (samples * c.case.gen_tokens)
    if e.idle_power_w is not None:
        above = e.energy_j - e.idle_power_w * e.energy_window_s
        out["energy_above_idle_j"] = above
        if above < 0:
            flags.append(("energy_below_idle", f"{above:.3g} J above idle: the case drew less than the idle "
                          f"baseline ({e.idle_power_w:.3g} W); the baseline or the source is off"))
    return out


def record_rows(rec: RunRecord, path: str = "") -> list[dict[str, Any]]:
    return [case_row(rec, c, path) for c in rec.cases]


def load_results(paths, warn: Callable[[str], None] | None = None):
    """Results files (or folders of them) -> DataFrame, one row per case. JSON files in
    a folder that are not results files are skipped, each with a call of ``warn``
    (default: a Python warning)."""
    import warnings

    import pandas as pd

    from ..results import read_many

    if warn is None:
        def warn(msg: str) -> None:
            warnings.warn(msg, stacklevel=3)

    rows: list[dict[str, Any]] = []
    for p, rec in read_many(paths, warn):
        rows += record_rows(rec, str(Path(p)))
    return pd.DataFrame(rows)
