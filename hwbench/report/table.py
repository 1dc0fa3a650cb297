"""The per-case summary table: latency and throughput (and energy where measured)."""

from __future__ import annotations

import pandas as pd

COLUMNS = [
    ("case_id", "case"),
    ("status", "status"),
    ("latency_ms_p50", "p50 ms"),
    ("latency_ms_p90", "p90 ms"),
    ("latency_iqr_rel", "IQR/med"),
    ("throughput_samples_per_s", "samples/s"),
    ("tokens_per_s", "tokens/s"),
    ("achieved_tflops", "TFLOP/s"),
    ("mfu", "MFU"),
    ("energy_j", "J"),
    ("energy_per_sample_j", "J/sample"),
    ("power_w_mean", "W mean"),
    ("energy_source", "energy source"),
    ("flags", "flags"),
    ("reason", "reason"),
]


def summary_table(df: pd.DataFrame, *, short: bool = True) -> pd.DataFrame:
    """One row per case with the headline columns present in ``df``. ``short`` renames
    columns for the terminal; otherwise the result columns keep their unit-carrying
    names (what CSV output uses)."""
    cols = [(c, label) for c, label in COLUMNS if c in df.columns]
    out = df[[c for c, _ in cols]].copy()
    if "reason" in out:
        out["reason"] = out["reason"].fillna("").astype(str).str.slice(0, 70)
    # A column empty for every row says nothing.
    keep = [c for c, _ in cols if c in ("case_id", "status") or not _empty(out[c])]
    out = out[keep]
    if short:
        out = out.rename(columns=dict(cols))
    return out


def _empty(s: pd.Series) -> bool:
    return bool(s.isna().all() or (s.astype(str) == "").all())
