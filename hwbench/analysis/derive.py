"""Derive at load: results records -> one flat row per case.

Everything here is computed from raw data stored in the results file (raw times, facts,
energy with its source, the environment of the segment that measured the case), so a
better formula re-derives old files. Column names carry their units (docs/architecture.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..records import CaseResult, Facts, Measurement, RunRecord
from .mfu import mfu_flags
from .feeding import input_headroom, io_columns
from .roofline import roofline_columns, roofline_flags
from .serving import loadgen_flags, serving_columns, sibling_capacity
from .stats import latency_stats_ms, noise_flag, percentile

# Columns of the case identity, in this order, present in every row.
IDENTITY = ("model", "family", "size", "mode", "batch_size", "seq_len", "image_size", "gen_tokens", "precision",
            "backend", "device", "threads", "variant", "parallelism", "world_size", "comm", "num_workers",
            "pin_memory", "prefetch_factor", "persistent_workers", "checkpointer", "instances")


def _peak_key(precision: str) -> str | None:
    from .. import precisions

    try:
        return precisions.get(precision).peak_key
    except KeyError:  # a precision this hwbench no longer knows (an old file)
        return None


def _peak(rec: RunRecord, c: CaseResult) -> tuple[float | None, str | None, str | None, str | None]:
    """(peak TFLOP/s, its source, why it is unknown, its confidence) for the case's device
    and precision."""
    from .. import peaks

    key = _peak_key(c.case.precision)
    if key is None:
        return None, None, f"precision {c.case.precision!r} has no peak key", None
    env = rec.environment_of(c)
    kind = (c.device_resolved or c.case.device).split(":")[0]
    # a parallel case's throughput is the group's: its peak is the group's devices'
    ranks = c.case.world_size if c.case.parallelism != "none" else 1
    nnodes = rec.nnodes
    cores = None
    if kind == "cpu":
        physical = env.cpu_cores_physical or env.cpu_cores_logical
        used = (c.facts.threads_used if c.facts else None) or c.case.threads
        if ranks > 1:  # the ranks of a node share its cores
            used = used * max(1, ranks // nnodes) if used else None
        cores = min(used, physical) if used and physical else physical
    memo = (id(env), kind, c.device_name or "", key, cores, ranks, nnodes)
    hit = _PEAK_MEMO.get(memo)
    if hit is not None and hit[0] is env:  # the same environment object, not one at its old address
        return hit[1]
    p = peaks.peak(kind, c.device_name or "", key, cores=cores, env=env.model_dump())
    if p.tflops is None or ranks == 1:
        out = p.tflops, p.source, p.reason, p.confidence
    elif kind == "cpu":
        out = (p.tflops * nnodes, p.source + (f" x {nnodes} nodes" if nnodes > 1 else ""), None, p.confidence)
    else:
        out = p.tflops * ranks, f"{p.source} x {ranks} devices (one per rank)", None, p.confidence
    if len(_PEAK_MEMO) >= 1024:
        _PEAK_MEMO.clear()
    _PEAK_MEMO[memo] = (env, out)
    return out


# _peak's results by (environment, device, peak key, cores, ranks, nodes): the cases of a
# run share a few; each entry holds its (frozen) environment, so the id is not reused
_PEAK_MEMO: dict[tuple, tuple[Any, tuple]] = {}


def case_row(rec: RunRecord, c: CaseResult, path: str = "") -> dict[str, Any]:
    """One case as a flat dict of identity, status, derived statistics and facts."""
    row = _identity(rec, c, path)
    flags = [(f.flag, f.detail) for f in c.flags]
    m, facts = c.measurement, c.facts
    settings = rec.settings()
    # a parallel case's throughput is the group's: every rank's samples per step
    bs = (facts.global_batch_size if facts is not None and facts.global_batch_size else c.case.batch_size)
    if c.case.parallelism != "none":
        row["scaling"] = settings.get("scaling", "weak")
        row["global_batch_size"] = bs
    if m is not None:
        _timing_columns(row, flags, c, m, bs, settings)
    if facts is not None:
        _fact_columns(row, flags, rec, c, facts, bs)
    row.update(io_columns(c, row))  # data / checkpoint cases (hwbench.analysis.feeding)
    row.update(_energy(c, row, flags))
    row.update(serving_columns(c, settings, row))  # LoadGen scenarios, generation under load
    flags.extend(loadgen_flags(c))  # LoadGen's own verdict on the row's load point
    # the host's summary and that of the case's own accelerator (others stay in the file)
    for col in c.collectors.values():
        if col.device in (None, "cpu", c.device_resolved):
            row.update(col.summary)
    # A list of flag names: a column called "flags" would collide with DataFrame.flags.
    row["quality_flags"] = list(dict.fromkeys(f for f, _ in flags))
    row["flag_details"] = "; ".join(f"{f}: {d}" for f, d in flags)
    return row


def _identity(rec: RunRecord, c: CaseResult, path: str) -> dict[str, Any]:
    """A case row's identity columns: the run, its machine, the case and its status."""
    env = rec.environment_of(c)
    ident = c.case.__dict__  # its fields (read only; model_dump's values, without the copy)
    row: dict[str, Any] = {
        "results_file": str(path),
        "run_id": rec.run_id,
        "suite": rec.suite.name,
        "created": rec.created,
        "run_status": rec.status,
        # a multi-node run: how many machines, and which (a part: its own node's rank)
        "nnodes": rec.nnodes,
        "node_hostnames": ",".join(n.hostname for n in rec.nodes) or None,
        "hostname": env.hostname,
        "torch_version": env.torch_version,
        "hwbench_version": env.hwbench_version,
        "segment": c.segment,
        "case_id": c.case_id,
        **{k: ident.get(k) for k in IDENTITY if k in ident},
        "family": c.case.model.partition(":")[0],
        "size": c.case.model.partition(":")[2],
        "device_name": c.device_name,
        "status": c.status,
        "reason": c.reason,
    }
    if c.case.batch_size == 0:  # batch_sizes = ["auto"] before its search resolved it: no batch size
        row["batch_size"] = None
    return row


def _timing_columns(row: dict[str, Any], flags: list[tuple[str, str]], c: CaseResult, m: Measurement,
                    bs: int, settings: dict[str, Any]) -> None:
    """Adds the measured columns to ``row`` (latency statistics, throughput, warmup, compile
    and generation or token rates; ``bs`` the group's samples per step) and the noise flag."""
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
    # a serving case's raw times are its SUT's forward passes of varying batch: no noise verdict
    detail = noise_flag(st, settings.get("noise_threshold", 0.1)) if m.serving is None else None
    if detail:
        flags.append(("noisy", detail))
    if c.case.mode == "generate":
        row.update(_generation(m, c, median_s, bs))
    else:
        row["processed_tokens_per_s"] = _processed_tokens_per_s(c, bs, median_s)


def _fact_columns(row: dict[str, Any], flags: list[tuple[str, str]], rec: RunRecord, c: CaseResult,
                  facts: Facts, bs: int) -> None:
    """Adds what the worker recorded of the case (parameters, FLOPs, accuracy, memory,
    parallel figures) and what follows from it (achieved TFLOP/s, MFU, roofline) to
    ``row``, and their flags to ``flags``."""
    row["params"] = facts.params
    row["flops_per_sample"] = facts.flops_per_sample
    row["flops_per_sample_counted"] = facts.flops_per_sample_counted
    row["flops_counted_vs_analytic"] = (
        facts.flops_per_sample_counted / facts.flops_per_sample
        if facts.flops_per_sample_counted and facts.flops_per_sample else None
    )
    row["flops_counted_reason"] = facts.flops_counted_reason
    row["threads_used"] = facts.threads_used
    row["active_params"] = facts.active_params
    row["student_model"] = facts.student_model
    row["student_params"] = facts.student_params
    if facts.router_tokens_per_expert:
        row.update(router_balance(facts.router_tokens_per_expert))
    if facts.accuracy is not None:
        row.update(facts.accuracy.model_dump())
    row.update(facts.changes)
    for k in ("memory_peak_bytes", "memory_reserved_peak_bytes", "host_rss_peak_bytes"):
        row[k] = getattr(facts, k)
    if c.case.parallelism != "none":
        row.update(_parallel(facts, row, c.case.world_size))
    median_s = (row.get("latency_ms_p50") or 0.0) / 1e3
    achieved = facts.flops_per_sample * bs / median_s / 1e12 if median_s > 0 else None
    peak, source, why, confidence = _peak(rec, c)
    row["achieved_tflops"] = achieved
    row["peak_tflops"] = peak
    row["peak_source"] = source
    row["mfu"] = achieved / peak if achieved and peak else None
    row["mfu_reason"] = why if peak is None else None
    flags.extend(mfu_flags(row["mfu"], achieved, peak, source, confidence))  # above_peak, peak_uncertain
    flags.extend(_dense_equivalent(c.case.variant, row))
    # against the measured peaks of the machine profile the segment recorded (hwbench probe)
    seg = rec.segments[c.segment] if c.segment < len(rec.segments) else rec.segments[0]
    roof = roofline_columns(row, seg.machine_profile, device=c.device_resolved or c.case.device)
    if c.case.parallelism != "none" and c.case.world_size > 1:
        # the roofs are one device's, the achieved FLOP/s a group's (which also communicates)
        roof = {k: None for k in roof} | {"roofline_reason": "a parallel group of "
                                          f"{c.case.world_size} ranks: the roofline is one device's"}
    row.update(roof)
    flags.extend(roofline_flags(roof))


def _dense_equivalent(variant: str, row: dict[str, Any]) -> list[tuple[str, str]]:
    """``dense_equivalent_flops`` on a 2:4-sparse case (``sparse24``) with a FLOP rate:
    its FLOPs are the dense model's, while the sparse kernels skip half the Linear
    layers' multiply-adds, so ``achieved_tflops`` and ``mfu`` (against the dense peak)
    can read up to 2x what the hardware executed."""
    if not str(variant).startswith("sparse24") or not row.get("achieved_tflops"):
        return []
    return [("dense_equivalent_flops", "2:4 sparse: FLOPs counted as the dense model's, MFU against the dense "
             "peak; the sparse kernels skip half of the Linear layers' multiply-adds, so MFU can read up to 2x "
             "what ran (the roofline's compute roof is 2x the dense GEMM peak for this case)")]


def _parallel(facts, row: dict[str, Any], world_size: int) -> dict[str, Any]:
    """A parallel case's communication: seconds and bytes per step in collectives (as the
    rank measured them, ``comm_measured_by``) and ``comm_fraction`` = communication
    time / median step time (its busy time may overlap compute, e.g. DDP's bucketed
    allreduce during the backward pass, so it is an upper bound of the exposed share);
    ``throughput_samples_per_s_per_rank``: the group's samples/s over ``world_size``
    (what each rank contributes on average, whatever the strategy splits).
    ``comm_busy_ms`` is that busy time per step in ms; ``comm_exposed_ms`` the part of
    it no compute overlapped (hwbench.parallel.comm.exposed); ``param_rel_l2_vs_none``
    the accuracy cost of the case's ``comm`` setting, as the ranks measured it."""
    step_s = (row.get("latency_ms_p50") or 0.0) / 1e3
    comm = facts.comm_s_per_step
    thr = row.get("throughput_samples_per_s")
    return {
        "throughput_samples_per_s_per_rank": thr / world_size if thr is not None and world_size else None,
        "comm_s_per_step": comm,
        "comm_bytes_per_step": facts.comm_bytes_per_step,
        "comm_fraction": min(comm / step_s, 1.0) if comm is not None and step_s > 0 else None,
        "comm_measured_by": facts.comm_measured_by,
        "comm_busy_ms": comm * 1e3 if comm is not None else None,
        "comm_exposed_ms": (facts.comm_exposed_s_per_step * 1e3
                            if facts.comm_exposed_s_per_step is not None else None),
        "param_rel_l2_vs_none": facts.param_rel_l2_vs_none,
        "param_rel_l2_steps": facts.param_rel_l2_steps,
        "rank_memory_peak_bytes_max": max(facts.rank_memory_peak_bytes) if facts.rank_memory_peak_bytes else None,
        "rank_host_rss_peak_bytes_max": (max(facts.rank_host_rss_peak_bytes)
                                         if facts.rank_host_rss_peak_bytes else None),
    }


def scaling_efficiency(rows: list[dict[str, Any]]) -> None:
    """Add ``scaling_efficiency`` to parallel rows (in place): throughput(N) / (N x
    throughput(1)) against the same case (same strategy, identity and host) at world
    size 1: the one of the same run, else the newest (``created``) of another run of
    that host and suite; ``scaling_baseline_run_id`` names the run it came from. Weak
    scaling (``scaling = "weak"``, the default: batch per rank fixed) and strong
    scaling (global batch fixed) use the same formula; the ``scaling`` column says
    which one the run held fixed. Rows without an ok world-size-1 partner get none."""
    def key(r):
        return (r.get("hostname"), r.get("suite"), r.get("scaling"),
                *(r.get(k) for k in IDENTITY if k != "world_size"))

    base: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("parallelism") not in (None, "none") and r.get("world_size") == 1 and r.get("status") == "ok" \
                and r.get("throughput_samples_per_s"):
            base.setdefault(key(r), []).append(r)
    for r in rows:
        if r.get("parallelism") in (None, "none") or r.get("status") != "ok":
            continue
        cands = base.get(key(r), [])
        same_run = [b for b in cands if b.get("run_id") == r.get("run_id")]
        b = same_run[0] if same_run else max(cands, key=_created, default=None)
        thr, n = r.get("throughput_samples_per_s"), r.get("world_size") or 1
        ok = b is not None and thr
        r["scaling_efficiency"] = thr / (n * b["throughput_samples_per_s"]) if ok else None
        r["scaling_baseline_run_id"] = b.get("run_id") if ok else None


def _created(r: dict[str, Any]) -> float:
    """A row's run creation time as a POSIX timestamp (-inf where unknown or unreadable)."""
    from datetime import datetime, timezone

    try:
        t = datetime.fromisoformat(str(r.get("created")))
    except ValueError:
        return float("-inf")
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def router_balance(tokens_per_expert: list[list[int]]) -> dict[str, float | None]:
    """Load balance of a mixture-of-experts router from the tokens it sent to each expert
    per layer (summed over the timed iterations): ``router_load_max_over_mean`` is the
    busiest expert's count over the mean, averaged over layers (1 = perfect balance; the
    step waits for the busiest expert), ``router_load_cv`` the coefficient of variation
    of the counts, averaged over layers."""
    import numpy as np

    layers = [np.asarray(t, dtype=float) for t in tokens_per_expert if len(t) and sum(t) > 0]
    if not layers:
        return {"router_load_max_over_mean": None, "router_load_cv": None}
    return {
        "router_load_max_over_mean": float(np.mean([t.max() / t.mean() for t in layers])),
        "router_load_cv": float(np.mean([t.std() / t.mean() for t in layers])),
    }


def seq_len_of(model: str, seq_len: int | None) -> int | None:
    """Tokens per sample of a case: its ``seq_len``, else (a file that did not record it)
    the default sequence length of its model's size; None for models that take no token
    sequences (MLP, CNN, ViT) and for a model this hwbench no longer knows."""
    if seq_len:
        return seq_len
    from .. import models

    try:
        fam, size = models.get(model)
    except KeyError:
        return None
    return fam.default_shape(fam.sizes[size]).seq_len if fam.shape_kind == "seq_len" else None


def _processed_tokens_per_s(c: CaseResult, batch: int, median_s: float) -> float | None:
    """infer / train of a sequence model: tokens through the model per second, batch (the
    group's for a parallel case) x seq_len / median step time. Generation has its own
    ``tokens_per_s`` (generated tokens), so this stays empty there."""
    n = seq_len_of(c.case.model, c.case.seq_len)
    return batch * n / median_s if n and batch and median_s > 0 else None


def _generation(m, c: CaseResult, median_s: float, batch: int) -> dict[str, Any]:
    """generate: ``tokens_per_s`` = generated tokens per second (batch x gen_tokens /
    median iteration time, prefill included), TTFT and TPOT from the raw times."""
    n = c.case.gen_tokens or 1
    out: dict[str, Any] = {"tokens_per_s": batch * n / median_s if median_s > 0 else None}
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
    # a parallel case's energy is the group's (every device it used): per group sample
    samples = (row.get("iterations") or 0) * (row.get("global_batch_size") or c.case.batch_size)
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
    rows = [case_row(rec, c, path) for c in rec.cases]
    record_rules(rows)
    return rows


def record_rules(rows: list[dict[str, Any]]) -> None:
    """The rules across the rows of one record (in place). The streamed frame
    (:mod:`hwbench.analysis.frame`) runs them on a few columns of the rows they select:
    a column a rule comes to read or write must be in its ``CROSS_READS`` /
    ``CROSS_WRITES`` (tests/test_results_stream.py compares the two frames)."""
    sibling_capacity(rows)
    scaling_efficiency(rows)
    compression_ratio(rows)
    input_headroom(rows)


def compression_ratio(rows: list[dict[str, Any]]) -> None:
    """Add ``comm_compression_ratio`` to parallel rows (in place): the bytes per step of
    the same case with ``comm = "none"`` in the same run over this row's (2 for fp16:
    half the bytes); none where that partner is missing, not ok or measured no bytes."""
    def key(r):
        return (r.get("run_id"), r.get("hostname"), *(r.get(k) for k in IDENTITY if k != "comm"))

    if all(r.get("parallelism") in (None, "none") for r in rows):
        return  # no parallel row to give a ratio to
    base = {key(r): r.get("comm_bytes_per_step") for r in rows
            if r.get("comm") in (None, "none") and r.get("status") == "ok"}
    for r in rows:
        if r.get("parallelism") in (None, "none"):
            continue
        b, mine = base.get(key(r)), r.get("comm_bytes_per_step")
        r["comm_compression_ratio"] = b / mine if b and mine and r.get("status") == "ok" else None


# ------------------------------------------------------------------------ the schema
# Every column of load_results(), in order, with its dtype: present in every frame
# (missing values, never missing columns). Integers are pandas' nullable "Int64" (an
# unknown count is <NA>, never 0), text is "string", floats are float64 with NaN for
# missing (what numpy, plotting and statistics libraries take), ``created`` is a UTC
# timestamp and ``quality_flags`` a list of flag names. Columns a file adds beyond these
# (another sampler's readings, a new variant's layer counts) follow, sorted by name.
_STR, _INT, _FLOAT = "string", "Int64", "float64"


def _series(prefix: str, stats: tuple[str, ...], dtype: str = _FLOAT) -> list[tuple[str, str]]:
    return [(f"{prefix}_{s}", dtype) for s in stats]


SCHEMA: list[tuple[str, str]] = [
    # where the row came from
    ("results_file", _STR), ("run_id", _STR), ("suite", _STR), ("created", "datetime64[ns, UTC]"),
    ("run_status", _STR), ("nnodes", _INT), ("node_hostnames", _STR), ("hostname", _STR), ("device_name", _STR), ("torch_version", _STR),
    ("hwbench_version", _STR), ("segment", _INT),
    # the case
    ("case_id", _STR), ("model", _STR), ("family", _STR), ("size", _STR), ("mode", _STR), ("batch_size", _INT),
    ("seq_len", _INT), ("image_size", _INT), ("gen_tokens", _INT), ("precision", _STR), ("backend", _STR),
    ("device", _STR), ("threads", _INT), ("variant", _STR), ("parallelism", _STR), ("world_size", _INT),
    ("comm", _STR), ("status", _STR), ("reason", _STR),
    # timing
    ("latency_ms_p50", _FLOAT), ("latency_ms_p90", _FLOAT), ("latency_ms_p99", _FLOAT), ("latency_ms_mean", _FLOAT),
    ("latency_ms_std", _FLOAT), ("latency_ms_min", _FLOAT), ("latency_cv", _FLOAT), ("latency_iqr_rel", _FLOAT),
    ("iterations", _INT), ("repeats", _INT), ("throughput_samples_per_s", _FLOAT), ("first_iter_ms", _FLOAT),
    ("warmup_s", _FLOAT), ("measured_s", _FLOAT), ("compile_s", _FLOAT),
    # generation
    ("ttft_ms_p50", _FLOAT), ("ttft_ms_p90", _FLOAT), ("tpot_ms_p50", _FLOAT), ("tokens_per_s", _FLOAT),
    # infer / train of sequence models: tokens through the model per second
    ("processed_tokens_per_s", _FLOAT),
    # facts, FLOPs, MFU
    ("params", _INT), ("flops_per_sample", _FLOAT), ("flops_per_sample_counted", _FLOAT),
    ("flops_counted_vs_analytic", _FLOAT), ("flops_counted_reason", _STR), ("threads_used", _INT),
    ("achieved_tflops", _FLOAT), ("peak_tflops", _FLOAT), ("peak_source", _STR), ("mfu", _FLOAT),
    ("mfu_reason", _STR),
    ("mfu_achievable", _FLOAT), ("peak_achievable_tflops", _FLOAT), ("peak_achievable_source", _STR),
    ("arithmetic_intensity", _FLOAT), ("bytes_per_step", _FLOAT), ("bytes_model", _STR),
    ("roof_bandwidth_gbs", _FLOAT), ("roofline_bound_tflops", _FLOAT), ("roofline_limit", _STR),
    ("roofline_fraction", _FLOAT), ("above_roofline", "boolean"), ("roofline_reason", _STR),
    ("machine_profile_id", _STR),
    ("active_params", _INT), ("router_load_max_over_mean", _FLOAT), ("router_load_cv", _FLOAT),
    ("student_model", _STR), ("student_params", _INT),
    # accuracy and what a variant / precision rewrote
    ("max_abs_error", _FLOAT), ("rel_l2_error", _FLOAT), ("accuracy_model", _STR),
    ("pruned_layers", _INT), ("sparse24_layers", _INT), ("int8_layers", _INT), ("fp8_layers", _INT),
    # memory
    ("memory_peak_bytes", _INT), ("memory_reserved_peak_bytes", _INT), ("host_rss_peak_bytes", _INT),
    # energy
    ("energy_j", _FLOAT), ("energy_per_sample_j", _FLOAT), ("energy_per_token_j", _FLOAT), ("power_w_mean", _FLOAT),
    ("energy_window_s", _FLOAT), ("energy_source", _STR), ("estimate_basis", _STR), ("idle_power_w", _FLOAT),
    ("energy_above_idle_j", _FLOAT), ("energy_j_power_integrated", _FLOAT),
    # host readings over the timed window
    ("cpu_util_pct_mean", _FLOAT), ("proc_cpu_pct_mean", _FLOAT),
    *_series("cpu_util_pct_sampled", ("max", "p95")), *_series("proc_cpu_pct_sampled", ("max", "p95")),
    *_series("proc_rss_bytes", ("mean", "max")), *_series("mem_used_bytes", ("mean", "max")),
    *_series("cpu_freq_mhz", ("mean", "max")),
    # the case's GPU over the timed window
    *_series("gpu_util_pct", ("mean", "max", "p95")), *_series("gpu_mem_busy_pct", ("mean", "max", "p95")),
    *_series("gpu_memory_used_bytes", ("mean", "max")), *_series("gpu_power_w", ("mean", "max", "p95")),
    *_series("gpu_sm_clock_mhz", ("mean", "max")), *_series("gpu_mem_clock_mhz", ("mean", "max")),
    *_series("gpu_temperature_c", ("mean", "max")), *_series("gpu_pcie_rx_bytes_per_s", ("mean", "max")),
    *_series("gpu_pcie_tx_bytes_per_s", ("mean", "max")), *_series("gpu_dram_bw_util_pct", ("mean", "max", "p95")),
    *_series("gpu_tensor_active_pct", ("mean", "max", "p95")), *_series("gpu_sm_active_pct", ("mean", "max", "p95")),
    # parallel cases (a torchrun group): the group's batch, scaling, communication, per-rank peaks
    ("scaling", _STR), ("global_batch_size", _INT), ("throughput_samples_per_s_per_rank", _FLOAT),
    ("scaling_efficiency", _FLOAT), ("scaling_baseline_run_id", _STR), ("comm_fraction", _FLOAT),
    ("comm_s_per_step", _FLOAT), ("comm_bytes_per_step", _FLOAT), ("comm_measured_by", _STR),
    ("comm_busy_ms", _FLOAT), ("comm_exposed_ms", _FLOAT), ("comm_compression_ratio", _FLOAT),
    ("param_rel_l2_vs_none", _FLOAT), ("param_rel_l2_steps", _INT),
    ("rank_memory_peak_bytes_max", _INT), ("rank_host_rss_peak_bytes_max", _INT),
    # feeding and saving (hwbench.analysis.feeding): data cases' loader, train cases' input headroom, checkpoints
    ("num_workers", _INT), ("pin_memory", "boolean"), ("prefetch_factor", _INT), ("persistent_workers", "boolean"),
    ("bytes_per_s", _FLOAT), ("data_bytes_per_sample", _FLOAT), ("loader_wait_fraction", _FLOAT),
    ("loader_cpu_util_pct", _FLOAT), ("input_headroom", _FLOAT), ("input_bound", "boolean"), ("input_loader", _STR),
    ("checkpointer", _STR), ("checkpoint_bytes", _INT), ("checkpoint_save_gbs", _FLOAT),
    ("checkpoint_load_gbs", _FLOAT), ("checkpoint_save_s_p50", _FLOAT), ("checkpoint_load_s_p50", _FLOAT),
    ("checkpoint_blocked_s_p50", _FLOAT), ("checkpoint_load_from", _STR), ("scratch_fs_type", _STR),
    # serving under load (hwbench.serving): the row's load point, SLO, capacity, LoadGen's logs
    ("scenario", _STR), ("arrival", _STR), ("instances", _INT), ("latency_slo_ms", _FLOAT), ("ttft_slo_ms", _FLOAT),
    ("tpot_slo_ms", _FLOAT), ("offered_qps", _FLOAT), ("achieved_qps", _FLOAT),
    ("slo_met", "boolean"), ("goodput_rps", _FLOAT), ("capacity_qps_at_slo", _FLOAT), ("capacity_rule", _STR),
    ("fixed_batch_samples_per_s", _FLOAT), ("ttft_ms_p99", _FLOAT), ("tpot_ms_p99", _FLOAT),
    ("itl_ms_max_p99", _FLOAT), ("loadgen_latency_ms_p99", _FLOAT), ("loadgen_log", _STR), ("queries", _INT),
    ("requests", _INT), ("load_points", _INT), ("energy_per_request_j", _FLOAT),
    # measurement quality
    ("quality_flags", "object"), ("flag_details", _STR),
]
COLUMNS = tuple(name for name, _ in SCHEMA)


def _extra_dtype(name: str, values) -> str:
    """The dtype of a column outside :data:`SCHEMA`, from its name and values."""
    if name.endswith(("_layers", "_layers_left")):
        return _INT
    if all(v is None or isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return _FLOAT
    return "object"


def to_frame(rows: list[dict[str, Any]]):
    """Rows of :func:`case_row` -> a DataFrame with the stable schema (:data:`SCHEMA`)."""
    import pandas as pd

    extra = sorted({k for r in rows for k in r} - set(COLUMNS))
    data: dict[str, Any] = {}
    for name, dtype in [*SCHEMA, *((k, _extra_dtype(k, [r.get(k) for r in rows])) for k in extra)]:
        data[name] = column(name, dtype, [r.get(name) for r in rows])
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))


def column(name: str, dtype: str, vals: list[Any]):
    """One column of :func:`to_frame`: the values of rows as a Series of ``dtype``
    (element by element: a column converted in parts and concatenated is the same)."""
    import pandas as pd

    if name == "quality_flags":
        return pd.Series([list(v or []) for v in vals], dtype="object")
    if dtype.startswith("datetime"):
        return pd.to_datetime(pd.Series(vals, dtype="object"), utc=True, errors="coerce",
                              format="ISO8601").astype(dtype)
    if dtype == _FLOAT:
        return pd.Series([float("nan") if v is None else v for v in vals], dtype="float64")
    if dtype == _INT:
        return pd.Series(pd.array(vals, dtype="Int64"))
    if dtype == _STR:
        return pd.Series(pd.array([None if v is None or v == "" else str(v) for v in vals], dtype="string"))
    if dtype == "boolean":  # values and mask built directly: pd.array(..., "boolean") is ~7 us a value
        import numpy as np

        mask = np.fromiter((v is None for v in vals), bool, len(vals))
        data = np.fromiter((v is not None and bool(v) for v in vals), bool, len(vals))
        return pd.Series(pd.arrays.BooleanArray(data, mask))
    return pd.Series(vals, dtype="object")


def load_results(paths, warn: Callable[[str], None] | None = None):
    """Results files (or folders of them) -> DataFrame, one row per case, with the
    stable schema of :data:`SCHEMA` (docs/results.md, docs/reference/columns.md). JSON files
    in a folder that are not results files are skipped, each with a call of ``warn``
    (default: a Python warning). Every file is read whole: ``hwbench.load_results``
    (:func:`hwbench.analysis.frame.load_results`) gives the same frame reading each file
    a case at a time, in bounded memory."""
    return load_results_and_records(paths, warn)[0]


def load_results_and_records(paths, warn: Callable[[str], None] | None = None):
    """(:func:`load_results`, the [(path, RunRecord)] it was read from), each file read
    once: for a report that also draws from the records (environments, raw times)."""
    import warnings

    from ..results import read_many

    if warn is None:
        def warn(msg: str) -> None:
            warnings.warn(msg, stacklevel=4)

    rows: list[dict[str, Any]] = []
    records = read_many(paths, warn)
    for p, rec in records:
        rows += record_rows(rec, str(Path(p)))
    scaling_efficiency(rows)  # across files too: a world-size-1 case from another run of this host
    return to_frame(rows), records


def load_samples(path, case_id: str, sampler: str | None = None):
    """One case's collector time series as a DataFrame: a row per reading, ``sampler``
    (host, nvidia, rapl), ``t_s`` (s, relative to the start of the case's timed window)
    and that sampler's readings (units in the names), sorted by time. ``sampler`` keeps
    one sampler's rows. A case whose samples were not stored (``store_samples = false``)
    gives an empty frame with those columns; an unknown case id is a ResultsError."""
    import difflib

    import pandas as pd

    from ..errors import ResultsError
    from ..results import read_record

    rec = read_record(path)
    case = next((c for c in rec.cases if c.case_id == case_id), None)
    if case is None:
        close = difflib.get_close_matches(case_id, [c.case_id for c in rec.cases], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ResultsError(f"{path}: no case {case_id!r} in this results file{hint}")
    frames = []
    for name, col in case.collectors.items():
        if sampler is not None and name != sampler:
            continue
        if not col.samples:
            continue
        f = pd.DataFrame({k: pd.Series(v, dtype="float64") for k, v in col.samples.items()})
        f.insert(0, "sampler", pd.Series([name] * len(f), dtype="string"))
        frames.append(f)
    if not frames:
        return pd.DataFrame({"sampler": pd.Series([], dtype="string"), "t_s": pd.Series([], dtype="float64")})
    out = pd.concat(frames, ignore_index=True, sort=False)
    cols = ["sampler", "t_s", *[c for c in out.columns if c not in ("sampler", "t_s")]]
    return out[cols].sort_values(["t_s", "sampler"], kind="stable").reset_index(drop=True)
