"""What else the machine was doing, and what differed in the environment, between the
two sides of a comparison (:mod:`hwbench.analysis.compare`): each side's recorded
background load, steal, idle baseline, clocks and throttling, and the environment and
settings keys that differ."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ..records import CaseResult, RunRecord

# "Materially different conditions" (the machine_changed mark): the sides' figures, each
# the mean over the compared results of a case, differ by at least
MACHINE_CPU_POINTS = 10.0  # background CPU load, points of the machine's CPU (all cores = 100)
MACHINE_STEAL_POINTS = 5.0  # CPU steal time (a VM's hypervisor serving others), points
MACHINE_IDLE_POINTS = 10.0  # system CPU load over the idle baseline, points
# ... or a GPU was slowed by the machine (heat, a power brake) on one side only. Not
# sw_power_cap: that is the workload's own power, which the change itself can move.
MACHINE_THROTTLE = ("hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake")


def conditions(results: Iterable[tuple[RunRecord, CaseResult]]) -> dict[str, Any]:
    """What else the machine was doing while ``results`` were measured, as recorded:
    ``background_cpu_pct`` (system busy CPU time minus the worker's, % of the machine;
    steal counts as busy), ``steal_pct`` (CPU steal time, % of the machine),
    ``idle_cpu_pct`` (system load over the segment's idle baseline), ``cpu_mhz`` and
    ``gpu_sm_mhz`` (mean clocks), ``throttle`` (GPU throttle reasons seen). Means over
    the results that recorded each; None where none did."""
    return summarize(readings(results))


READINGS = ("background_cpu_pct", "steal_pct", "idle_cpu_pct", "cpu_mhz", "gpu_sm_mhz")


def readings(results: Iterable[tuple[RunRecord, CaseResult]]) -> dict[str, Any]:
    """The figures :func:`conditions` averages, per result in order (a list per key of
    :data:`READINGS`), and ``throttle``, the set of throttle reasons seen: a few numbers
    per result, so that a comparison can keep them after it dropped the results
    (:func:`merge` joins those of several groups of results)."""
    got: dict[str, Any] = {k: [] for k in READINGS}
    throttle: set[str] = set()
    for rec, c in results:
        host = c.collectors.get("host")
        if host is not None:
            s, ncpu = host.summary, host.info.get("logical_cpus")
            if "cpu_util_pct_mean" in s and "proc_cpu_pct_mean" in s and isinstance(ncpu, int) and ncpu > 0:
                got["background_cpu_pct"].append(max(0.0, s["cpu_util_pct_mean"] - s["proc_cpu_pct_mean"] / ncpu))
            if "cpu_steal_pct_mean" in s:
                got["steal_pct"].append(s["cpu_steal_pct_mean"])
            if "cpu_freq_mhz_mean" in s:
                got["cpu_mhz"].append(s["cpu_freq_mhz_mean"])
        for r in c.collectors.values():
            if r.device is not None and r.device in (c.device_resolved, c.case.device) \
                    and "gpu_sm_clock_mhz_mean" in r.summary:
                got["gpu_sm_mhz"].append(r.summary["gpu_sm_clock_mhz_mean"])
        seg = rec.segments[c.segment] if c.segment < len(rec.segments) else None
        if seg is not None and seg.idle_baseline is not None and seg.idle_baseline.cpu_util_pct is not None:
            got["idle_cpu_pct"].append(seg.idle_baseline.cpu_util_pct)
        for f in c.flags:
            if f.flag == "throttled":
                # "nvidia:0: hw_thermal, sw_power_cap" (NvidiaSampler.quality_flags)
                throttle.update(t.strip() for t in f.detail.split(": ", 1)[-1].split(",") if t.strip())
    got["throttle"] = throttle
    return got


def merge(groups: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The :func:`readings` of several groups of results as those of all of them, in
    the order given."""
    out: dict[str, Any] = {k: [] for k in READINGS}
    out["throttle"] = set()
    for g in groups:
        for k in READINGS:
            out[k] += g[k]
        out["throttle"] |= g["throttle"]
    return out


def summarize(got: dict[str, Any]) -> dict[str, Any]:
    """:func:`conditions` from :func:`readings`: the means, and the throttle reasons sorted."""
    out: dict[str, Any] = {k: (float(np.mean(got[k])) if got[k] else None) for k in READINGS}
    out["throttle"] = sorted(got["throttle"])
    return out


def machine_changes(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The material differences between two sides' :func:`conditions`, one phrase each
    with the figures (empty: comparable conditions)."""
    out = []
    for key, limit, what in (("background_cpu_pct", MACHINE_CPU_POINTS, "background CPU"),
                             ("steal_pct", MACHINE_STEAL_POINTS, "CPU steal"),
                             ("idle_cpu_pct", MACHINE_IDLE_POINTS, "idle-baseline CPU")):
        b, n = base.get(key), new.get(key)
        if b is not None and n is not None and abs(n - b) >= limit:
            out.append(f"{what} {b:.1f} -> {n:.1f} % of the machine")
    for side, mine, other in (("baseline", base, new), ("new run", new, base)):
        only = sorted(set(mine.get("throttle") or ()) - set(other.get("throttle") or ()) & set(MACHINE_THROTTLE))
        if only:
            out.append(f"GPU throttled ({', '.join(only)}) in the {side} only")
    return out


# What is compared between environments (a key missing from both is not shown); any key
# an environment records beyond these (a newer hwbench's facts) is compared too.
ENV_KEYS = ("hostname", "cpu_model", "accelerators", "driver_version", "cuda_driver_version", "hwbench_version",
            "hwbench_git_commit", "torch_version", "torch_cuda_version", "python_version", "torch_num_threads",
            "cpu_affinity", "cpu_cores_logical", "cpu_freq_max_mhz", "memory_total_bytes", "cuda_visible_devices", "os")
ENV_IGNORED = ("cpu_flags", "cpu_freq_max_source", "platform", "python_implementation", "machine",
               "cpu_cores_physical")
HARDWARE_KEYS = ("cpu_model", "accelerators")


def _env_values(env) -> dict[str, str]:
    d = env.model_dump()
    out: dict[str, str] = {}
    for k, v in d.items():
        if k in ENV_IGNORED:
            continue
        if k == "accelerators":
            v = ", ".join(g.get("name", "?") for g in v) or None
            clocks = [str(g[c]) for g in d["accelerators"] for c in ("power_limit_w",) if g.get(c) is not None]
            if clocks:
                out["gpu_power_limit_w"] = ", ".join(clocks)
        if v is None or v == [] or v == {}:
            continue
        out[k] = str(v)[:12] if k == "hwbench_git_commit" else str(v)
    return out


def environment_diff(baseline: Sequence[RunRecord], new: Sequence[RunRecord]):
    """What differs between the environments (every segment) of the two sides, and the
    suites' settings: a DataFrame (key, baseline, new, hardware) and the hardware
    differences (CPU model, GPU names) as one-line strings."""
    import pandas as pd

    def side(recs):
        vals: dict[str, list[str]] = {}
        for rec in recs:
            for seg in rec.segments:
                for k, v in _env_values(seg.environment).items():
                    vals.setdefault(k, [])
                    if v not in vals[k]:
                        vals[k].append(v)
            for k, v in (rec.settings() or {}).items():
                key = f"settings.{k}"
                vals.setdefault(key, [])
                if str(v) not in vals[key]:
                    vals[key].append(str(v))
        return {k: ", ".join(v) for k, v in vals.items()}

    b, n = side(baseline), side(new)
    keys = [k for k in ENV_KEYS if k in b or k in n] + sorted((set(b) | set(n)) - set(ENV_KEYS))
    rows, hardware = [], []
    for k in keys:
        if b.get(k) != n.get(k):
            hw = k in HARDWARE_KEYS
            rows.append({"key": k, "baseline": b.get(k), "new": n.get(k), "hardware": hw})
            if hw:
                hardware.append(f"{k}: {b.get(k)} -> {n.get(k)}")
    return pd.DataFrame(rows, columns=["key", "baseline", "new", "hardware"]), hardware
