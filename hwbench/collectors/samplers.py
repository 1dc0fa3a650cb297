"""Samplers and the registry of sampler kinds.

A *sampler* takes one reading of one piece of hardware per ``read()`` call and says what
it knows about that hardware: the device it describes (``device``: "cpu", "cuda:0", or
None for the machine as a whole), the energy sources it offers for that device (each
with its update period, so too-short windows can be flagged), how its window is
summarised and which quality flags its readings raise. Samplers are not thread-safe:
one sampling thread (:mod:`hwbench.collectors.thread`) makes every ``read()`` and
``watch()`` call.

A *sampler kind* (``host``, ``nvidia``, ``rapl``, ``hlml``, ...) is one :class:`SamplerKind` object in
:data:`KINDS`: its name (what a suite's ``collectors`` lists) and how its samplers are
made from the settings and the device boundary. Adding a collector is registering one
more kind.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import psutil

from ..devices import amd, habana, intel, nvidia
from ..devices.rapl import Rapl
from ..errors import DeviceNotSupported
from ..registry import Registry
from ..records import Flag
from . import energy as en

# Watts per physical core assumed when no TDP is configured for an estimate. A rough
# figure for server CPUs (e.g. 280 W / 64 cores ~ 4.4 W, 65 W / 8 cores ~ 8 W); the
# estimate says which TDP it used and is always flagged.
ASSUMED_W_PER_CORE = 8.0
IDLE_FRACTION = 0.3  # estimated package power at 0 % load, as a fraction of TDP

# CPU times advance in clock ticks (USER_HZ, 100 per second on Linux): the resolution of
# every CPU-time delta, and so the update period of the CPU-time based estimate.
try:
    CLOCK_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # not POSIX
    CLOCK_TICK_S = 0.01


class Sampler:
    """Base of every sampler: defaults for the optional parts.

    ``errors`` counts failed readings the sampler caught itself (readings that raise are
    counted by the sampling thread)."""

    name: str = "sampler"
    device: str | None = None
    errors: int = 0

    def read(self) -> dict[str, float]:
        """One reading: ``{key: value}``, the unit in the key. Cumulative counters have
        ``counter`` in the key (they are interpolated at window edges, not averaged)."""
        raise NotImplementedError

    def watch(self, pid: int | None) -> None:
        """Follow the worker process ``pid`` (None: none). Most samplers ignore it."""

    def energy_sources(self) -> list[Any]:
        """Energy sources for ``device``, best first (:mod:`.energy` CounterEnergy /
        PowerEnergy or any object with ``source``, ``device``, ``kind``, ``period_s``
        and ``measure(samples, t0, t1)``). Asked on the sampling thread after readings,
        so it may depend on what the readings showed."""
        return []

    def info(self) -> dict[str, Any]:
        """What the sampler knows of its device (e.g. which NVML power field it reads)."""
        return {}

    def summarise(self, samples: en.Samples, t0: float, t1: float) -> dict[str, float]:
        """Summaries over the window [t0, t1] (s): ``<key>_mean`` and ``_max`` of every
        reading, ``_p95`` of percentages and powers. Counters are left out."""
        return _summarise(samples, t0, t1, skip=())

    def quality_flags(self, samples: en.Samples, t0: float, t1: float) -> list[Flag]:
        """Measurement-quality flags raised by this sampler's readings in the window."""
        return []


def _inside(samples: en.Samples, t0: float, t1: float) -> list[en.Sample]:
    return [(t, r) for t, r in samples if t0 <= t <= t1]


def _summarise(samples: en.Samples, t0: float, t1: float, skip: tuple[str, ...]) -> dict[str, float]:
    inside = _inside(samples, t0, t1)
    out: dict[str, float] = {}
    for k in sorted({k for _, r in inside for k in r if "counter" not in k and k not in skip}):
        st = en.stats([r[k] for _, r in inside if k in r])
        if not st:
            continue
        out[f"{k}_mean"], out[f"{k}_max"] = st["mean"], st["max"]
        if k.endswith("_pct") or k.endswith("_w"):
            out[f"{k}_p95"] = st["p95"]
    return out


# ------------------------------------------------------------------------------ host
def _busy_total(ct) -> tuple[float, float]:
    """(busy, total) CPU seconds from a psutil cpu_times tuple, as psutil's cpu_percent
    counts them: guest time is already inside user time on Linux, iowait is idle."""
    total = sum(ct)
    total -= getattr(ct, "guest", 0.0) + getattr(ct, "guest_nice", 0.0)
    idle = ct.idle + getattr(ct, "iowait", 0.0)
    return total - idle, total


def cpu_tdp(settings) -> tuple[float, str]:
    """(TDP W, how it was chosen) for the CPU energy estimate."""
    if getattr(settings, "cpu_tdp_w", None):
        return settings.cpu_tdp_w, f"cpu_tdp_w = {settings.cpu_tdp_w:g} W from the suite"
    cores = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
    w = cores * ASSUMED_W_PER_CORE
    return w, f"assumed TDP {cores} cores x {ASSUMED_W_PER_CORE:g} W = {w:g} W (set cpu_tdp_w)"


@dataclass(frozen=True)
class EstimatedCpuEnergy:
    """CPU package energy estimated as TDP x (0.3 + 0.7 x load), the load being busy
    CPU time over the window (``cpu_busy_counter_s`` delta / (window x logical CPUs)).
    Not a measurement: always flagged ``energy_estimated``."""

    tdp_w: float
    tdp_basis: str
    logical_cpus: int
    source: str = "estimated"
    device: str = "cpu"
    kind: str = "estimate"
    period_s: float = CLOCK_TICK_S

    def measure(self, samples: en.Samples, t0: float, t1: float) -> en.EnergyReading | None:
        busy = en.counter_delta(samples, "cpu_busy_counter_s", t0, t1)
        if busy is None or t1 <= t0:
            return None
        load = min(1.0, max(0.0, busy / ((t1 - t0) * self.logical_cpus)))
        joules = self.tdp_w * (IDLE_FRACTION + (1 - IDLE_FRACTION) * load) * (t1 - t0)
        basis = f"{self.tdp_basis} x ({IDLE_FRACTION:g} + {1 - IDLE_FRACTION:g} x CPU load {load:.1%} from CPU-time deltas)"
        return en.EnergyReading(joules, basis)


class HostSampler(Sampler):
    """psutil: system and worker CPU time, CPU steal time (Linux), worker RSS, system
    memory, CPU clock. "Worker"
    is the followed process with all its descendants: a parallel case's agent and its
    ranks, a worker and its compile subprocesses (CPU time and RSS summed over them).

    CPU load over a window comes from CPU-time *deltas* (cumulative ``*_counter_s``
    keys interpolated at the window edges), not from averaging percentages: a
    percentage over the few milliseconds between two close readings is quantised to
    0 / 50 / 100 % and would dominate a short window. The sampled percentages
    (``cpu_util_pct``, ``proc_cpu_pct``) are kept for plotting, each over at least
    ``min_span_s`` since the previous one."""

    name = "host"

    def __init__(self, per_core: bool = False, min_span_s: float = 0.05, tdp: tuple[float, str] | None = None):
        self.per_core = per_core
        self.min_span_s = min_span_s
        self.errors = 0
        self.logical_cpus = psutil.cpu_count() or 1
        self.tdp = tdp
        self.proc: psutil.Process | None = None
        self._base: tuple[float, float, float, list[tuple[float, float]]] | None = None  # t, busy, total, per core
        self._proc_base: tuple[float, float] | None = None  # t, worker CPU s

    def watch(self, pid: int | None) -> None:
        self.proc, self._proc_base = None, None
        if pid is not None:
            try:
                self.proc = psutil.Process(pid)
            except psutil.NoSuchProcess:
                pass  # the worker already ended: nothing to follow, not an error
            except psutil.Error:
                self.errors += 1

    def read(self) -> dict[str, float]:
        now = time.monotonic()
        ct = psutil.cpu_times()
        busy, total = _busy_total(ct)
        out: dict[str, float] = {"cpu_busy_counter_s": busy}
        if hasattr(ct, "steal"):  # Linux: time a VM's CPUs waited for the hypervisor
            out["cpu_steal_counter_s"] = ct.steal
        cores = [_busy_total(c) for c in psutil.cpu_times(percpu=True)] if self.per_core else []
        base = self._base
        if base is None:
            self._base = (now, busy, total, cores)
        elif now - base[0] >= self.min_span_s:
            if total > base[2]:
                out["cpu_util_pct"] = 100.0 * (busy - base[1]) / (total - base[2])
            for i, ((b, tot), (b0, tot0)) in enumerate(zip(cores, base[3])):
                if tot > tot0:
                    out[f"cpu{i}_util_pct"] = 100.0 * (b - b0) / (tot - tot0)
            self._base = (now, busy, total, cores)
        out["mem_used_bytes"] = float(psutil.virtual_memory().used)
        try:
            f = psutil.cpu_freq()
            if f is not None and f.current:
                out["cpu_freq_mhz"] = float(f.current)
        except (OSError, NotImplementedError):
            pass
        if self.proc is not None:
            try:
                with self.proc.oneshot():
                    ct = self.proc.cpu_times()
                    rss = self.proc.memory_info().rss
                kids = self.proc.children(recursive=True)
            except psutil.NoSuchProcess:
                self.proc = None  # the worker ended: not an error
            except psutil.Error:
                self.errors += 1
            else:
                # children_* cover reaped children only (a rank the agent has reaped);
                # the live descendants (a parallel case's ranks, compile workers) add theirs
                used = ct.user + ct.system + ct.children_user + ct.children_system
                for k in kids:
                    try:
                        with k.oneshot():
                            kt = k.cpu_times()
                            krss = k.memory_info().rss
                    except psutil.Error:
                        continue  # ended between the listing and the reading
                    used += kt.user + kt.system
                    rss += krss
                out["proc_cpu_counter_s"] = used
                out["proc_rss_bytes"] = float(rss)
                pb = self._proc_base
                if pb is None:
                    self._proc_base = (now, used)
                elif now - pb[0] >= self.min_span_s:
                    out["proc_cpu_pct"] = 100.0 * (used - pb[1]) / (now - pb[0])
                    self._proc_base = (now, used)
        return out

    def energy_sources(self) -> list[Any]:
        if self.tdp is None:
            return []
        return [EstimatedCpuEnergy(self.tdp[0], self.tdp[1], self.logical_cpus)]

    def info(self) -> dict[str, Any]:
        return {"logical_cpus": self.logical_cpus, "cpu_load": "CPU-time deltas over the window"}

    def summarise(self, samples: en.Samples, t0: float, t1: float) -> dict[str, float]:
        """``cpu_util_pct_mean``: system busy CPU time / (window x logical CPUs) x 100
        (steal time counts as busy); ``cpu_steal_pct_mean``: CPU steal time (Linux VMs:
        the hypervisor ran something else) / (window x logical CPUs) x 100;
        ``proc_cpu_pct_mean``: worker CPU time / window x 100 (200 % = two cores busy).
        Statistics of the sampled percentages are named ``*_sampled_max`` / ``_p95``."""
        rates = ("cpu_util_pct", "proc_cpu_pct")
        out = _summarise(samples, t0, t1, skip=rates)
        inside = _inside(samples, t0, t1)
        for k in rates:
            st = en.stats([r[k] for _, r in inside if k in r])
            if st:
                out[f"{k}_sampled_max"], out[f"{k}_sampled_p95"] = st["max"], st["p95"]
        if t1 > t0:
            # CPU times move in clock ticks: over a window of a few ticks a delta can
            # exceed what the machine can do, so it is clipped to that; and system busy
            # time is total - idle, two fields read a moment apart, so over a tiny window
            # it can step back by a hair: clipped at 0
            busy = en.counter_delta(samples, "cpu_busy_counter_s", t0, t1)
            if busy is not None:
                out["cpu_util_pct_mean"] = min(100.0, max(0.0, 100.0 * busy / ((t1 - t0) * self.logical_cpus)))
            steal = en.counter_delta(samples, "cpu_steal_counter_s", t0, t1)
            if steal is not None:
                out["cpu_steal_pct_mean"] = min(100.0, max(0.0, 100.0 * steal / ((t1 - t0) * self.logical_cpus)))
            used = en.counter_delta(samples, "proc_cpu_counter_s", t0, t1)
            if used is not None:
                out["proc_cpu_pct_mean"] = min(100.0 * self.logical_cpus, max(0.0, 100.0 * used / (t1 - t0)))
        return out


# ------------------------------------------------------------------------------ GPUs
class GpuSampler(Sampler):
    """One GPU through its vendor's device object (:mod:`hwbench.devices`: ``sample()``,
    ``errors``, ``unsupported``, ``power_source``, ``index``, ``torch_device``).
    ``device`` is the GPU's name in results ("cuda:N", "rocm:N"); None when torch does
    not see it (it is still sampled, but no case's energy comes from it). A vendor
    declares its sampler name prefix, its two energy source names (counter, power),
    the counter's update period and how throttle bits read."""

    prefix = "gpu"
    counter_source = ""
    power_source_name = ""
    counter_period_s = 0.1
    default_kind = "cuda"

    def __init__(self, gpu):
        self.gpu = gpu
        self.name = f"{self.prefix}:{gpu.index}"
        self.device = getattr(gpu, "torch_device", f"{self.default_kind}:{gpu.index}")
        self._keys: set[str] = set()  # what the last reading offered

    def throttle_names(self, bits: int) -> list[str]:
        return []

    @property
    def errors(self) -> int:
        return self.gpu.errors

    def read(self) -> dict[str, float]:
        out = {k if k.startswith("gpu_") else f"gpu_{k}": v for k, v in self.gpu.sample().items()}
        self._keys = set(out)
        return out

    def energy_sources(self) -> list[Any]:
        """The energy counter (Volta and later), then integrated power; decided from what
        the readings offered, so no extra NVML call is made here."""
        if self.device is None:
            return []
        out: list[Any] = []
        if "gpu_energy_counter_j" in self._keys:
            out.append(en.CounterEnergy(self.counter_source, self.device, "gpu_energy_counter_j", self.counter_period_s))
        if "gpu_power_w" in self._keys:
            # averaged readings cover about one second on most GPUs
            period = 0.1 if self.gpu.power_source == "instant" else 1.0
            out.append(en.PowerEnergy(self.power_source_name, self.device, "gpu_power_w", period))
        return out

    def info(self) -> dict[str, Any]:
        return {"unsupported": sorted(self.gpu.unsupported), "power_source": self.gpu.power_source}

    def quality_flags(self, samples: en.Samples, t0: float, t1: float) -> list[Flag]:
        bits = {int(r["gpu_throttle_reasons"]) for _, r in _inside(samples, t0, t1) if "gpu_throttle_reasons" in r}
        reasons = sorted({n for b in bits for n in self.throttle_names(b)})
        return [Flag(flag="throttled", detail=f"{self.name}: {', '.join(reasons)}")] if reasons else []


class NvidiaSampler(GpuSampler):
    """One NVIDIA GPU through :class:`hwbench.devices.nvidia.NvidiaGPU` (NVML)."""

    prefix = "nvidia"
    counter_source = "nvml_counter"
    power_source_name = "nvml_power"

    def throttle_names(self, bits: int) -> list[str]:
        return [n for bit, n in nvidia.THROTTLE_BITS.items() if bits & bit]


class AmdSampler(GpuSampler):
    """One AMD GPU through :class:`hwbench.devices.amd.AmdGPU` (AMD SMI). The energy
    accumulator's update period is taken as 1 ms-scale firmware updates bounded by
    the sampling itself: 0.1 s, as NVML's (unverified on hardware)."""

    prefix = "amdsmi"
    counter_source = "amdsmi_counter"
    power_source_name = "amdsmi_power"
    default_kind = "rocm"

    def throttle_names(self, bits: int) -> list[str]:
        return amd.throttle_names(bits)


# ------------------------------------------------------------------------------ RAPL
class RaplSampler(Sampler):
    """CPU package energy (all packages) from RAPL."""

    name = "rapl"
    device = "cpu"

    def __init__(self, rapl: Rapl):
        self.rapl = rapl

    @property
    def errors(self) -> int:
        return self.rapl.errors

    def read(self) -> dict[str, float]:
        e = self.rapl.energy_j()
        return {} if e is None else {"cpu_energy_counter_j": e}

    def energy_sources(self) -> list[Any]:
        # powercap counters update about every millisecond
        return [en.CounterEnergy("rapl", "cpu", "cpu_energy_counter_j", 0.001)]

    def info(self) -> dict[str, Any]:
        return {"domains": [d.name for d in self.rapl.domains]}


# -------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Boundary:
    """What a sampler kind is made from: the suite's settings and the device boundary
    (``libs``: vendor library name -> module or fake, e.g. ``"pynvml"``, ``"amdsmi"``,
    ``"pyhlml"``;
    ``powercap_root``: a powercap tree; ``sysfs_root``: a /sys tree; missing or None:
    the real hardware)."""

    settings: Any
    libs: Mapping[str, Any] = field(default_factory=dict)
    powercap_root: Path | None = None
    sysfs_root: Path | None = None

    def lib(self, name: str) -> Any:
        """The replacement for vendor library ``name``, or None (the real one)."""
        return self.libs.get(name)


@dataclass(frozen=True)
class SamplerKind:
    """One kind of collector. ``create`` returns its samplers or raises
    DeviceNotSupported with the reason this machine lacks it."""

    name: str
    create: Callable[[Boundary], list[Sampler]]
    describes: str  # which device(s) its samplers describe
    energy: str = ""  # the energy source it offers and that source's update period


# the sampler-kind registry (hwbench.registry): a suite's ``collectors`` name its entries
KINDS: Registry[SamplerKind] = Registry("sampler kind")
register, unregister = KINDS.register, KINDS.unregister


def _host(b: Boundary) -> list[Sampler]:
    s = b.settings
    # the CPU estimate is always offered; RAPL outranks it (records.ENERGY_SOURCE_ORDER), so it
    # only stands in where RAPL is absent or has no reading for the window
    return [HostSampler(per_core=s.per_core, min_span_s=s.sample_interval_s / 2, tdp=cpu_tdp(s))]


def _each(devices: list, sampler: Callable[[Any], Sampler], none: str) -> list[Sampler]:
    """A sampler per device of a vendor library's list; DeviceNotSupported(``none``)
    where the list is empty."""
    if not devices:
        raise DeviceNotSupported(none)
    return [sampler(d) for d in devices]


def _nvidia(b: Boundary) -> list[Sampler]:
    return _each(nvidia.gpus(b.lib("pynvml")), NvidiaSampler, "no NVIDIA GPU visible to NVML")


def _rapl(b: Boundary) -> list[Sampler]:
    return [RaplSampler(Rapl(b.powercap_root) if b.powercap_root is not None else Rapl())]


register(SamplerKind(
    "host", _host, "the machine (CPU time, memory) and the worker process; device 'cpu' for the estimate",
    f"estimated CPU energy, TDP x ({IDLE_FRACTION:g} + {1 - IDLE_FRACTION:g} x load), load from CPU time (clock tick)",
))
register(SamplerKind(
    "nvidia", _nvidia, "each NVIDIA GPU NVML sees, as torch numbers it ('cuda:N')",
    "nvml_counter (total energy, ~0.1 s) or nvml_power (instant 0.1 s / averaged 1 s)",
))
register(SamplerKind("rapl", _rapl, "the CPU packages ('cpu')", "rapl package counters, ~0.001 s"))


class IntelHwmonSampler(GpuSampler):
    """One Intel GPU's energy counter through hwmon (:mod:`hwbench.devices.intel`).
    The counter's update period is not documented: 0.1 s is assumed (unverified)."""

    prefix = "intel_hwmon"
    counter_source = "hwmon_counter"
    default_kind = "xpu"


def _intel_hwmon(b: Boundary) -> list[Sampler]:
    return _each(intel.gpus(b.sysfs_root), IntelHwmonSampler,
                 "no Intel GPU with an i915 / xe hwmon energy counter in sysfs")


register(SamplerKind(
    "intel_hwmon", _intel_hwmon, "each Intel GPU whose i915 / xe driver exposes hwmon energy ('xpu:N')",
    "hwmon_counter (energy1_input, µJ; update period assumed 0.1 s)",
))


def _amdsmi(b: Boundary) -> list[Sampler]:
    return _each(amd.gpus(b.lib("amdsmi")), AmdSampler,
                 "no AMD GPU visible to AMD SMI (amdsmi missing, or no amdgpu driver)")


register(SamplerKind(
    "amdsmi", _amdsmi, "each AMD GPU AMD SMI sees, as HIP numbers it ('rocm:N')",
    "amdsmi_counter (energy accumulator, ~0.1 s) or amdsmi_power (current 0.1 s / averaged 1 s)",
))


class HlmlSampler(GpuSampler):
    """One Gaudi through :class:`hwbench.devices.habana.HabanaDevice` (HLML). Neither
    the energy counter's nor the power reading's update period is documented: 0.1 s
    and 1 s are assumed (unverified on hardware)."""

    prefix = "hlml"
    counter_source = "hlml_counter"
    power_source_name = "hlml_power"
    default_kind = "hpu"

    def throttle_names(self, bits: int) -> list[str]:
        return habana.throttle_names(bits)


def _hlml(b: Boundary) -> list[Sampler]:
    return _each(habana.devices(b.lib("pyhlml")), HlmlSampler,
                 "no Gaudi visible to HLML (pyhlml missing, or no habanalabs driver)")


register(SamplerKind(
    "hlml", _hlml, "each Gaudi HLML sees; the one this process uses as 'hpu'",
    "hlml_counter (total energy, mJ; ~0.1 s assumed) or hlml_power (power usage, mW; 1 s assumed)",
))
