"""Verdict rules of the self-check: pure functions of what a path measured.

Tolerances are acceptance bounds for a machine running nothing else (the self-check is
run on a quiet machine, unlike the test suite): they catch a path that measures the
wrong thing (a missing synchronisation reads 10x off, a counter in the wrong unit
1000x), not a few percent of drift.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from ..report.format import nbytes

RAN, FAILED, NA = "ran", "failed", "n/a"

# device-event timing, wall clock and torch.utils.benchmark agree within this factor
TIMING_TOLERANCE = 1.25
# NVML energy counter vs trapezoids over NVML power: within 15 % over >= 5 s
ENERGY_TOLERANCE = 0.15
MIN_ENERGY_WINDOW_S = 5.0
# the probe's bf16 GEMM (median of its best shape) against the datasheet dense peak: a
# healthy GPU reaches 0.6-0.85 of it in an MAMF-style search (Hopper ~0.8); below 0.4 a
# clock, power or measuring problem; above 1.05 a wrong peak or a timing error
GEMM_TARGET = (0.4, 1.05)


@dataclass(frozen=True)
class Verdict:
    """One path's verdict: ``status`` ran / failed / n/a, ``detail`` why or what."""

    path: str
    status: str
    detail: str = ""

    def line(self, width: int = 80) -> str:
        text = f"{self.status:<6}  {self.path}: {self.detail}" if self.detail else f"{self.status:<6}  {self.path}"
        return text if len(text) <= width else text[: width - 3] + "..."

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def failed_any(verdicts: Iterable[Verdict]) -> bool:
    return any(v.status == FAILED for v in verdicts)


# ----------------------------------------------------------------- timing
def timing_verdict(path: str, timer_mean_s: float, timer_median_s: float, wall_s: float, bench_s: float,
                   tolerance: float = TIMING_TOLERANCE) -> Verdict:
    """The project's timer (device events on CUDA, perf_counter on CPU; per iteration,
    s) against two independent clocks, like for like: the timer's *mean* over a block
    against the wall clock around the same synchronised block (mean, s) -- a missing
    synchronisation shows here -- and the timer's *median* against
    torch.utils.benchmark's median (s). Ran when both ratios lie within
    [1/tolerance, tolerance]. (A median against a mean would fail on any machine whose
    other load stalls a few iterations.)"""
    figures = (f"timer mean {timer_mean_s * 1e3:.3g} ms vs wall {wall_s * 1e3:.3g} ms, timer median "
               f"{timer_median_s * 1e3:.3g} ms vs torch.utils.benchmark {bench_s * 1e3:.3g} ms")
    if min(timer_mean_s, timer_median_s, wall_s, bench_s) <= 0:
        return Verdict(path, FAILED, f"a non-positive time ({figures})")
    off = [name for name, mine, other in (("wall clock", timer_mean_s, wall_s),
                                          ("torch.utils.benchmark", timer_median_s, bench_s))
           if not 1 / tolerance <= mine / other <= tolerance]
    if off:
        return Verdict(path, FAILED, f"differs from {' and '.join(off)} by more than {tolerance:g}x ({figures})")
    return Verdict(path, RAN, figures)


# ----------------------------------------------------------------- collectors
def energy_verdicts(coll: Any, kind: str, window_s: float, unavailable: dict[str, str],
                    compute_capability: tuple[int, int] | None = None) -> list[Verdict]:
    """Verdicts of the sampling and energy paths from one collected window
    (:class:`hwbench.collectors.CaseCollection`) of ``window_s`` seconds on a device of
    ``kind`` (cuda / cpu); ``unavailable``: the samplers the machine lacks, with why."""
    if kind == "cuda":
        return _nvml_verdicts(coll, window_s, unavailable, compute_capability)
    out = []
    host = coll.collectors.get("host") if coll is not None else None
    ok = host is not None and "cpu_util_pct_mean" in host.summary
    out.append(Verdict("host sampling", RAN if ok else FAILED,
                       f"cpu_util_pct_mean {host.summary['cpu_util_pct_mean']:.0f} %" if ok else "no host summary"))
    e = coll.energy if coll is not None else None
    if "rapl" in unavailable:
        out.append(Verdict("RAPL energy", NA, unavailable["rapl"]))
    elif e is None or e.energy_source != "rapl":
        out.append(Verdict("RAPL energy", FAILED, f"RAPL readable but energy came from "
                                                  f"{e.energy_source if e else 'nowhere'}"))
    else:
        out.append(Verdict("RAPL energy", RAN, f"{e.energy_j:.1f} J over {e.energy_window_s:.1f} s"))
    return out


def _nvml_verdicts(coll, window_s: float, unavailable: dict[str, str], cc) -> list[Verdict]:
    if "nvidia" in unavailable or coll is None:
        why = unavailable.get("nvidia", "no collection")
        return [Verdict(p, FAILED, why) for p in ("NVML sampling", "NVML energy counter vs power", "GPM")]
    gpu = next((r for k, r in coll.collectors.items() if k.startswith("nvidia")), None)
    out = []
    n = len(gpu.samples.get("t_s", [])) if gpu is not None and gpu.samples else 0
    power = gpu.summary.get("gpu_power_w_mean") if gpu is not None else None
    if gpu is None or power is None:
        out.append(Verdict("NVML sampling", FAILED, "no NVIDIA sampler summary with power"))
    else:
        out.append(Verdict("NVML sampling", RAN, f"{n} samples, power mean {power:.0f} W"))
    e = coll.energy
    name = "NVML energy counter vs power"
    if e is None:
        out.append(Verdict(name, FAILED, "no energy for the window"))
    elif e.energy_source != "nvml_counter":
        out.append(Verdict(name, NA, f"energy from {e.energy_source}: this GPU has no energy counter"))
    elif window_s < MIN_ENERGY_WINDOW_S or e.energy_j_power_integrated is None:
        out.append(Verdict(name, FAILED, f"window {window_s:.1f} s, integrated power "
                                         f"{e.energy_j_power_integrated}: nothing to compare"))
    else:
        rel = e.energy_j / e.energy_j_power_integrated - 1 if e.energy_j_power_integrated else float("inf")
        fig = f"counter {e.energy_j:.0f} J, integrated power {e.energy_j_power_integrated:.0f} J over {window_s:.1f} s"
        out.append(Verdict(name, RAN if abs(rel) <= ENERGY_TOLERANCE else FAILED,
                           fig if abs(rel) <= ENERGY_TOLERANCE else f"{rel:+.0%} apart ({fig})"))
    gpm = {k: v for k, v in (gpu.summary.items() if gpu is not None else ()) if "dram_bw_util_pct" in k}
    if gpm:
        out.append(Verdict("GPM", RAN, f"DRAM bandwidth utilisation {next(iter(gpm.values())):.0f} %"))
    elif cc is not None and tuple(cc) < (9, 0):
        out.append(Verdict("GPM", NA, f"GPM metrics need Hopper or later (compute capability {cc[0]}.{cc[1]})"))
    else:
        out.append(Verdict("GPM", FAILED, "the GPU should have GPM metrics and none was sampled"))
    return out


# ----------------------------------------------------------------- suite cases
def _median_ms(c) -> float:
    return statistics.median(t for r in c.measurement.raw_times_s for t in r) * 1e3


def path_of(c) -> str:
    """Which path a self-check case exercises."""
    k = c.case
    if k.parallelism != "none":
        return f"parallel {k.parallelism} world size {k.world_size}"
    if k.mode == "generate":
        return f"generation {k.model}"
    if k.backend != "eager":
        return f"backend {k.backend}"
    return f"precision {k.precision}"


def case_verdict(c, applies: str | None = None) -> Verdict:
    """One case's verdict. ok -> ran (precisions other than fp32 must carry their
    accuracy deviation, generation its time to first token). skipped -> n/a, unless
    ``applies`` says the hardware supports it (then the skip is a failure: a missing
    package, say). failed / oom / timeout -> failed with the reason."""
    path = path_of(c)
    if c.status == "skipped":
        return Verdict(path, FAILED, f"{applies}, yet skipped: {c.reason}") if applies else Verdict(path, NA, c.reason)
    if c.status != "ok":
        return Verdict(path, FAILED, f"{c.status}: {c.reason}")
    detail = f"{_median_ms(c):.3g} ms/step"
    k, m, f = c.case, c.measurement, c.facts
    if k.mode == "generate":
        if not m.ttft_s:
            return Verdict(path, FAILED, "no time to first token recorded")
        detail += f", ttft {statistics.median(m.ttft_s) * 1e3:.3g} ms"
    elif path.startswith("precision") and k.precision != "fp32":
        acc = f.accuracy if f is not None else None
        if acc is None or acc.rel_l2_error is None:
            return Verdict(path, FAILED, "no accuracy deviation recorded")
        detail += f", rel. L2 deviation {acc.rel_l2_error:.2g}"
    elif path.startswith("backend") and not m.first_iter_s > 0:
        return Verdict(path, FAILED, "no compile (first iteration) time recorded")
    elif path.startswith("backend"):
        detail += f", first call {m.first_iter_s:.3g} s"
    return Verdict(path, RAN, detail)


def autobatch_verdict(record) -> Verdict:
    """ran when the search found a limit because an allocation failed under the cap
    (``out of memory at batch size N``) and every swept batch size ran."""
    path = "auto batch under the allocator cap"
    if not record.batch_limits:
        bad = [f"{c.case_id}: {c.reason}" for c in record.cases if c.status != "ok"]
        return Verdict(path, FAILED, bad[0] if bad else "no batch limit recorded")
    (info,) = record.batch_limits.values()
    if not info.limited_by.startswith("out of memory"):
        return Verdict(path, FAILED, f"limit {info.batch_limit} not set by the cap: {info.limited_by}")
    bad = [c for c in record.cases if c.status != "ok"]
    if bad:
        return Verdict(path, FAILED, f"{bad[0].case_id}: {bad[0].status}: {bad[0].reason}")
    return Verdict(path, RAN, f"limit {info.batch_limit} ({info.limited_by}), {len(record.cases)} sizes ran")


# ----------------------------------------------------------------- probe
def probe_verdicts(dev: Any, kind: str) -> list[Verdict]:
    """The probe's GEMM (CUDA: bf16 against :data:`GEMM_TARGET` of the datasheet peak;
    CPU: fp32 measured) and its copy bandwidth (measured, > 0) from a
    :class:`hwbench.probe.profile.DeviceProbe`."""
    dtype = "bf16" if kind == "cuda" else "fp32"
    out = []
    rs = [r for r in dev.gemm if r.dtype == dtype]
    ok = [r for r in rs if r.ok and r.tflops_median]
    path = f"probe {dtype} GEMM"
    if not ok:
        out.append(Verdict(path, FAILED, rs[0].reason if rs else f"no {dtype} GEMM result"))
    else:
        r = max(ok, key=lambda r: r.tflops_median)
        fig = f"{r.tflops_median:.3g} TFLOP/s"
        if kind != "cuda":
            out.append(Verdict(path, RAN, fig))
        elif r.datasheet_fraction is None:
            out.append(Verdict(path, FAILED, f"{fig}; no datasheet peak to hold it against ({r.datasheet_source})"))
        else:
            lo, hi = GEMM_TARGET
            good = lo <= r.datasheet_fraction <= hi
            out.append(Verdict(path, RAN if good else FAILED, f"{fig} = {r.datasheet_fraction:.0%} of the datasheet "
                                                             f"peak (target {lo:.0%}-{hi:.0%})"))
    copy = [b for b in dev.memory if getattr(b, "kernel", "") == "copy" and (b.gbs_median or 0) > 0]
    if copy:
        best = max(copy, key=lambda b: b.gbs_median)
        out.append(Verdict("probe copy bandwidth", RAN, f"{best.gbs_median:.3g} GB/s (median, {nbytes(best.buffer_bytes)} buffers)"))
    else:
        out.append(Verdict("probe copy bandwidth", FAILED, dev.memory_note or "no copy bandwidth measured"))
    return out


# ----------------------------------------------------------------- UUID mapping
def uuid_verdict(described_all: list[dict], described_masked: list[dict], torch_uuid: str | None) -> Verdict:
    """Under CUDA_VISIBLE_DEVICES=<UUID of the last GPU>, the device layer must map
    cuda:0 to that GPU (``described_masked``: describe_all under that variable) and torch
    (``torch_uuid``: torch.cuda.get_device_properties(0).uuid in a process started with
    it; None where not checked) must see the same GPU."""
    path = "UUID mapping under CUDA_VISIBLE_DEVICES"
    if not described_all:
        return Verdict(path, NA, "NVML sees no NVIDIA GPU")
    target = described_all[-1]
    mapped = [d for d in described_masked if d.get("torch_device") == "cuda:0"]
    if len(mapped) != 1 or mapped[0].get("uuid") != target.get("uuid"):
        got = mapped[0].get("uuid") if mapped else None
        return Verdict(path, FAILED, f"cuda:0 maps to {got}, not {target.get('uuid')}")
    if any(d.get("torch_device") for d in described_masked if d is not mapped[0]):
        return Verdict(path, FAILED, "another GPU is still visible to torch")
    if torch_uuid is not None and target["uuid"].removeprefix("GPU-") != torch_uuid.removeprefix("GPU-"):
        return Verdict(path, FAILED, f"torch sees {torch_uuid}, NVML says {target['uuid']}")
    return Verdict(path, RAN, f"cuda:0 = NVML {target.get('index')} ({target['uuid'][:16]}...)")
