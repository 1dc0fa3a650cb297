"""A case on its machine's *measured* roofline. Pure functions, torch-free.

Inputs: a derived case row (a dict from :func:`hwbench.analysis.derive.case_row`, or a
DataFrame of them) and the machine profile its segment recorded
(:class:`hwbench.records.MachineProfile`, from ``hwbench probe``; a plain dict works
too). Outputs, per row (units in the names or here):

* ``peak_achievable_tflops``: the probe's GEMM TFLOP/s for the case's precision (its
  peak key: amp_bf16 -> bf16) on its device; on a CPU at the case's thread count (the
  nearest probed count at or above it, else the largest). ``peak_achievable_source``.
* ``mfu_achievable``: ``achieved_tflops / peak_achievable_tflops`` (``mfu`` stays the
  fraction of the datasheet peak).
* ``bytes_per_step`` and ``arithmetic_intensity`` (FLOP / byte): analytic FLOPs of a step
  over the bytes it moves (:mod:`hwbench.analysis.bytes_model`, a lower bound);
  ``bytes_model`` says what was counted.
* ``roof_bandwidth_gbs``: the measured copy bandwidth for the case's working set -- the
  best the probe saw at that size or larger (cache-aware: a working set that fits in a
  cache gets that cache's bandwidth, not DRAM's).
* ``roofline_bound_tflops`` = ``min(peak_achievable, intensity x bandwidth)``; for a
  ``sparse24`` case, whose FLOPs are counted dense-equivalent, the compute roof is
  :data:`SPARSE24_SPEEDUP` x ``peak_achievable`` (what the 2:4 sparse kernels can reach);
  ``roofline_limit`` which of the two binds ("compute" / "memory"); where no GEMM
  figure exists for the dtype, the memory roof alone.
* ``roofline_fraction`` = ``achieved_tflops / roofline_bound_tflops``.
* ``above_roofline``: True when the case beats its roof by more than
  :data:`ABOVE_ROOF_TOLERANCE` -- impossible for a correct measurement, so
  :func:`roofline_flags` turns it into a quality flag, never a silent number.
* ``roofline_reason``: why the columns are empty (no profile, no device in it, ...).
"""

from __future__ import annotations

from typing import Any, Mapping

# The probe's own run-to-run spread: a case this much above its roof is a measurement
# error (a wrong FLOP count, a timer that missed work, a stale profile).
ABOVE_ROOF_TOLERANCE = 0.05
# 2:4 semi-structured sparsity: the sparse tensor cores' peak over the dense one, the most
# a sparse24 case's dense-equivalent FLOP/s can gain from skipping the zeros.
SPARSE24_SPEEDUP = 2.0


def _sparse24(row: Mapping[str, Any]) -> bool:
    return str(row.get("variant") or "").startswith("sparse24")

COLUMNS = ("peak_achievable_tflops", "peak_achievable_source", "mfu_achievable", "bytes_per_step",
           "arithmetic_intensity", "bytes_model", "roof_bandwidth_gbs", "roofline_bound_tflops", "roofline_limit",
           "roofline_fraction", "above_roofline", "roofline_reason", "machine_profile_id")


def _profile(profile: Any):
    from ..records import MachineProfile

    if profile is None or isinstance(profile, MachineProfile):
        return profile
    return MachineProfile.model_validate(profile)


def _device_key(device: str | None) -> str | None:
    """A case's device as the profile names it: an indexed kind's bare name is its
    device 0 ("cuda" -> "cuda:0", the accelerator layer's resolution)."""
    if not device:
        return None
    from .. import devices

    return devices.of(device).resolve(device) if devices.kind_of(device) in devices.KINDS else device


def _peak_key(precision: str) -> str | None:
    from .. import precisions

    try:
        return precisions.get(precision).peak_key
    except KeyError:
        return None


def achievable_peak(roofs, peak_key: str, threads: int | None) -> tuple[float | None, str]:
    """(TFLOP/s, where from) of ``peak_key`` in one device's roofs; (None, why) if absent."""
    by = roofs.gemm_tflops_by_threads
    if by and threads:
        counts = sorted((int(t) for t, v in by.items() if peak_key in v))
        if counts:
            pick = next((c for c in counts if c >= threads), counts[-1])
            note = "" if pick == threads else f" (nearest probed thread count to {threads})"
            return by[str(pick)][peak_key], f"probe GEMM {peak_key}, {pick} threads{note}"
    v = roofs.gemm_tflops.get(peak_key)
    if v is None:
        return None, f"the probe has no {peak_key} GEMM figure for this device"
    return v, f"probe GEMM {peak_key}"


def bandwidth_for(roofs, working_set: float) -> tuple[float | None, str]:
    """The copy bandwidth (GB/s) for a working set of ``working_set`` bytes: the best
    measured at that size or larger (an upper envelope of the curve); beyond the largest
    size, that size's. Falls back to ``memory_bandwidth_gbs``."""
    curve = sorted((float(ws), float(g)) for ws, g in roofs.bandwidth_curve)
    if not curve:
        bw = roofs.memory_bandwidth_gbs
        return bw, "probe memory_bandwidth_gbs" if bw else "the probe has no memory bandwidth"
    at_or_above = [g for ws, g in curve if ws >= working_set]
    if not at_or_above:
        return curve[-1][1], f"copy at {curve[-1][0] / 2**20:g} MiB (the largest probed)"
    return max(at_or_above), f"best copy at >= {working_set / 2**20:.3g} MiB working set"


def roofline_columns(row: Mapping[str, Any], profile: Any, *, device: str | None = None) -> dict[str, Any]:
    """The roofline columns (see the module docstring) of one derived row against
    ``profile`` (a MachineProfile, its dict, or None). ``device`` is where the case ran
    (the resolved device, "cpu" / "cuda:0"); default the row's ``device``."""
    from .bytes_model import step_bytes

    out: dict[str, Any] = dict.fromkeys(COLUMNS)
    out["above_roofline"] = None
    if row.get("status") not in (None, "ok"):
        out["roofline_reason"] = f"case {row.get('status')}"
        return out
    achieved = row.get("achieved_tflops")
    flops = row.get("flops_per_sample")
    batch = row.get("batch_size")
    # the byte model needs no profile: intensity is a property of the case
    sb, why = step_bytes(row)
    if sb is not None:
        out["bytes_per_step"] = sb.total
        out["bytes_model"] = sb.model
        if flops and batch and sb.total > 0:
            out["arithmetic_intensity"] = flops * batch / sb.total
    prof = _profile(profile)
    if prof is None:
        out["roofline_reason"] = "no machine profile for this run (run `hwbench probe` on this machine first)"
        return out
    out["machine_profile_id"] = prof.profile_id
    key = _device_key(device or row.get("device"))
    roofs = prof.devices.get(key) if key else None
    if roofs is None:
        out["roofline_reason"] = f"the machine profile has no device {key!r} (probed: {', '.join(prof.devices)})"
        return out
    pk = _peak_key(row.get("precision") or "")
    threads = row.get("threads_used") or row.get("threads")
    peak, src = achievable_peak(roofs, pk, threads) if pk else (None, f"precision {row.get('precision')!r} unknown")
    out["peak_achievable_tflops"] = peak
    out["peak_achievable_source"] = src
    reasons = [] if peak else [src]
    if peak and achieved:
        out["mfu_achievable"] = achieved / peak
    if sb is None:
        reasons.append(why or "no byte model")
    intensity = out["arithmetic_intensity"]
    bw, bw_src = bandwidth_for(roofs, sb.working_set) if sb is not None else (None, "")
    out["roof_bandwidth_gbs"] = bw
    memory_roof = intensity * bw / 1e3 if intensity and bw else None  # FLOP/B x GB/s = GFLOP/s
    if memory_roof is None and sb is not None:
        reasons.append(bw_src if not bw else "no FLOP count")
    # 2:4 sparse kernels skip half of the multiply-adds the dense-equivalent FLOP count
    # credits: against that count the compute roof is up to 2 x the dense GEMM peak
    compute_roof = peak * SPARSE24_SPEEDUP if peak and _sparse24(row) else peak
    roofs_known = [r for r in (compute_roof, memory_roof) if r]
    if roofs_known:
        bound = min(roofs_known)
        out["roofline_bound_tflops"] = bound
        out["roofline_limit"] = "memory" if memory_roof is not None and bound == memory_roof else "compute"
        if achieved:
            out["roofline_fraction"] = achieved / bound
            out["above_roofline"] = achieved > bound * (1 + ABOVE_ROOF_TOLERANCE)
    out["roofline_reason"] = "; ".join(reasons) or None
    return out


def roofline_flags(cols: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Quality flags for one row's roofline columns: ``above_roofline`` (a measurement
    error) with the numbers."""
    if not cols.get("above_roofline"):
        return []
    return [("above_roofline",
             f"{cols['roofline_fraction']:.3g}x its roofline bound ({cols['roofline_bound_tflops']:.4g} TFLOP/s, "
             f"{cols['roofline_limit']}-bound, intensity {cols['arithmetic_intensity'] or float('nan'):.3g} FLOP/B, "
             f"profile {cols['machine_profile_id']}): a measurement error -- check the FLOP count, the timing and "
             "whether the profile is this machine's")]


def roofline_frame(df, profile: Any, device_col: str = "device"):
    """``df`` (derived rows) with the roofline columns added against one ``profile``."""
    import pandas as pd

    def clean(r: dict) -> dict:  # NaN / <NA> from the frame read as missing
        return {k: (None if not isinstance(v, (list, tuple)) and pd.isna(v) else v) for k, v in r.items()}

    rows = [roofline_columns(r, profile, device=r.get(device_col)) for r in map(clean, df.to_dict("records"))]
    extra = pd.DataFrame(rows, index=df.index, columns=list(COLUMNS))
    return pd.concat([df.drop(columns=[c for c in COLUMNS if c in df.columns]), extra], axis=1)
