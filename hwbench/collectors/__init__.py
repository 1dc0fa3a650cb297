"""Collectors: sample the hardware in the background while each case runs, then turn
the samples of the case's timed window into summaries, energy and quality flags.

Sampling runs in the runner process, not in the worker, so it never competes with the
timed loop for the worker's interpreter. One sampling thread owns every sampler
(:mod:`.thread`); the runner's thread only asks it for readings and for copies of the
buffers. The worker marks the start and end of its timed window (``time.monotonic()``,
system-wide on Linux); a mark makes the sampling thread take a reading at once, and
counters (energy, CPU time) are interpolated to the marked times between the readings
around them.

The runner calls, from one thread::

    cs = CollectorSet.for_suite(settings)        # None when no collector is asked for
    cs.start(); cs.info(); cs.machine_notes()
    cs.measure_idle(settings.idle_baseline_s)    # once the workers are ready
    for each case:
        cs.case_begin(pid); cs.mark("window_start", t0); cs.mark("window_end", t1)
        cs.case_end((t0, t1), "cuda:0")          # -> CaseCollection
    cs.stop()
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeviceNotSupported
from ..records import CollectorsInfo, Energy, Flag, IdleBaseline, SamplerResult, energy_source_rank
from . import energy as en
from .samplers import (
    ASSUMED_W_PER_CORE,
    CLOCK_TICK_S,
    IDLE_FRACTION,
    KINDS,
    Boundary,
    GpuSampler,
    HostSampler,
    Sampler,
    SamplerKind,
    cpu_tdp,
    register,
    unregister,
)
from .thread import SamplingThread

__all__ = [
    "ASSUMED_W_PER_CORE", "IDLE_FRACTION", "IDLE_MAX_CPU_PCT", "KINDS", "Boundary", "CaseCollection", "CollectorSet",
    "Sampler", "SamplerKind", "register", "unregister",
]

# Above this system CPU load (% of the machine) an idle baseline is flagged not idle.
IDLE_MAX_CPU_PCT = 10.0
# A window needs this many updates of its energy source to be resolved (else flagged).
MIN_UPDATES = 10


@dataclass(frozen=True)
class CaseCollection:
    """What the collectors measured over one case: per-sampler summaries, the energy of
    the timed window (None without a window or a source for the device) and flags."""

    collectors: dict[str, SamplerResult]
    energy: Energy | None
    flags: tuple[Flag, ...]


@dataclass(frozen=True)
class _Snapshot:
    """Copies of the sampling thread's state at a window's end."""

    samples: dict[str, list[en.Sample]]
    errors: dict[str, int]  # failed readings so far, per sampler
    errors0: dict[str, int]  # ... at the case's start
    sources: dict[str, list[Any]]  # energy sources per sampler, best first
    info: dict[str, dict[str, Any]]


class CollectorSet:
    """The samplers of one run and the thread that owns them."""

    def __init__(self, samplers: list[Sampler], settings, unavailable: dict[str, str] | None = None):
        self.samplers = list(samplers)
        self.settings = settings
        self.interval = settings.sample_interval_s
        self.unavailable = dict(unavailable or {})
        self._thread = SamplingThread(self.samplers, self.interval)
        # a reading of every sampler takes milliseconds; this long means the thread is stuck
        self._timeout = max(10.0, 50 * self.interval)
        self.marks: dict[str, float] = {}  # this case's window edges as the worker marked them, s
        self._pending: list[Future] = []
        self._errors0: dict[str, int] = {}  # written and read on the sampling thread
        self._idle: IdleBaseline | None = None

    @classmethod
    def for_suite(cls, settings, nvml: Any = None, powercap_root: Path | str | None = None,
                  libs: dict[str, Any] | None = None, sysfs_root: Path | str | None = None) -> "CollectorSet | None":
        """The samplers the suite asks for that this machine has (None when it asks for
        none). ``libs`` (vendor library name -> module: ``pynvml``, ``amdsmi``; ``nvml``
        is short for ``libs={"pynvml": nvml}``), ``powercap_root`` and ``sysfs_root``
        replace the real device boundary in tests."""
        if not settings.collectors:
            return None
        libs = {**(libs or {}), **({"pynvml": nvml} if nvml is not None else {})}
        b = Boundary(settings, libs, Path(powercap_root) if powercap_root is not None else None,
                     Path(sysfs_root) if sysfs_root is not None else None)
        samplers: list[Sampler] = []
        unavailable: dict[str, str] = {}
        for name in settings.collectors:
            if name not in KINDS:
                unavailable[name] = f"no such collector (known: {', '.join(sorted(KINDS))})"
                continue
            kind = KINDS.get(name)
            try:
                samplers += kind.create(b)
            except DeviceNotSupported as e:
                unavailable[name] = str(e)
        return cls(samplers, settings, unavailable)

    # -- the run ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the sampling thread and take a first reading (so samplers know what
        their devices offer)."""
        self._thread.start()
        self._thread.call(self._thread.read_all, self._timeout)

    def stop(self) -> None:
        self._thread.stop()

    def info(self) -> CollectorsInfo:
        """Which samplers run, which are unavailable and why, what each knows."""
        infos = self._thread.call(lambda: {s.name: s.info() for s in self.samplers}, self._timeout)
        return CollectorsInfo(
            interval_s=self.interval, active=[s.name for s in self.samplers], unavailable=self.unavailable, info=infos
        )

    def machine_notes(self) -> list[str]:
        """Machine-level facts to say once before a run (energy estimated, GPUs that no
        case's energy can come from, collectors this machine lacks)."""
        sources = self._thread.call(lambda: [x for s in self.samplers for x in s.energy_sources()], self._timeout)
        cpu = {x.source for x in sources if x.device == "cpu"}
        notes = []
        if "rapl" not in cpu:
            why = self.unavailable.get("rapl", "the rapl collector is not in this suite's collectors")
            if "estimated" in cpu:
                basis = cpu_tdp(self.settings)[1]
                notes.append(
                    f"CPU energy is estimated: no RAPL ({why}); {basis} x ({IDLE_FRACTION:g} + "
                    f"{1 - IDLE_FRACTION:g} x CPU load)"
                )
            else:
                notes.append(f"CPU cases get no energy figure: no RAPL ({why}) and no host collector to estimate it")
        for s in self.samplers:
            if isinstance(s, GpuSampler) and s.device is None:
                notes.append(f"{s.name} is not visible to torch: sampled, but no case's energy is taken from it")
        notes += [f"collector {k} unavailable: {v}" for k, v in self.unavailable.items() if k != "rapl"]
        return notes

    # -- idle baseline ---------------------------------------------------------------
    def measure_idle(self, seconds: float) -> IdleBaseline | None:
        """Power per device and system CPU load with no case running, over ``seconds``
        (at least two readings, however short). None when ``seconds`` <= 0 or no
        sampler gave two readings. Flags ``idle_not_idle`` (CPU load above
        IDLE_MAX_CPU_PCT % of the machine) and ``idle_baseline_short``."""
        if seconds <= 0:
            return None
        th = self._thread

        def begin() -> None:
            th.keep = True
            th.clear()
            th.read_all()

        th.call(begin, self._timeout)
        time.sleep(seconds)
        snap = th.call(lambda: self._finish(unwatch=False), self._timeout)
        spans = {k: (v[0][0], v[-1][0]) for k, v in snap.samples.items() if len(v) >= 2}
        if not spans:
            return None
        duration = max(b for _, b in spans.values()) - min(a for a, _ in spans.values())
        power: dict[str, float] = {}
        source: dict[str, str] = {}
        periods = [self.interval]
        for name, src in _ranked(snap.sources):
            if src.device in power or name not in spans:
                continue
            a, b = spans[name]
            r = src.measure(snap.samples[name], a, b)
            if r is not None and b > a and np.isfinite(r.energy_j):
                power[src.device], source[src.device] = r.energy_j / (b - a), src.source
                if src.kind != "power":  # counters (and the CPU-time estimate) quantise
                    periods.append(MIN_UPDATES * src.period_s)
        flags: list[Flag] = []
        cpu_pct = None
        host = next((s for s in self.samplers if isinstance(s, HostSampler) and s.name in spans), None)
        if host is not None:
            a, b = spans[host.name]
            periods.append(MIN_UPDATES * CLOCK_TICK_S)
            busy = en.counter_delta(snap.samples[host.name], "cpu_busy_counter_s", a, b)
            if busy is not None and b - a >= MIN_UPDATES * CLOCK_TICK_S:
                cpu_pct = 100.0 * busy / ((b - a) * host.logical_cpus)
                if cpu_pct > IDLE_MAX_CPU_PCT:
                    flags.append(Flag(
                        flag="idle_not_idle",
                        detail=f"system CPU load {cpu_pct:.1f} % of the machine over {b - a:.2f} s "
                        f"(threshold {IDLE_MAX_CPU_PCT:g} %): idle power is overstated",
                    ))
        if duration < max(periods):
            detail = f"{duration:.4f} s baseline; its sources need {max(periods):g} s to resolve (raise idle_baseline_s)"
            flags.append(Flag(flag="idle_baseline_short", detail=detail + ("; CPU load not judged" if cpu_pct is None else "")))
        self._idle = IdleBaseline(
            duration_s=duration, power_w=power, energy_source=source, cpu_util_pct=cpu_pct, flags=flags
        )
        return self._idle

    # -- per case --------------------------------------------------------------------
    def case_begin(self, pid: int | None) -> None:
        """A case starts; ``pid`` is its worker process (None: no process to follow).
        Waits for the first reading: the window's start must come after one."""
        th = self._thread
        self.marks = {}

        def begin() -> None:
            th.keep = True
            th.clear()
            self._errors0 = th.errors()
            th.watch(pid)
            th.read_all()

        self._pending = []
        th.call(begin, self._timeout)

    def mark(self, event: str, t: float) -> None:
        """The worker reached a window edge (``event``) at ``t`` (time.monotonic(), s):
        the sampling thread takes a reading at once; the caller does not wait."""
        self.marks[event] = t
        self._pending.append(self._thread.submit(self._thread.read_all))

    def case_end(self, window: tuple[float, float] | None, device: str | None,
                 devices: tuple[str, ...] | None = None) -> CaseCollection:
        """Summaries, energy and flags for the timed ``window`` (t0, t1: time.monotonic(),
        s, as marked; None: no window, only reading errors are reported) of a case run on
        ``device`` ("cpu", "cuda:0"). ``devices``: every device the case used (a parallel
        case's GPUs on this machine); its energy is then the sum over them. Takes a last
        reading and waits for it."""
        try:
            for f in self._pending:
                f.result(self._timeout)
            snap: _Snapshot = self._thread.call(lambda: self._finish(unwatch=True), self._timeout)
        except FutureTimeout:
            detail = f"the sampling thread did not answer within {self._timeout:g} s (a hung device call?)"
            return CaseCollection({}, None, (Flag(flag="collector_error", detail=detail),))
        finally:
            self._pending = []
        flags: list[Flag] = []
        for name, n in snap.errors.items():
            n -= snap.errors0.get(name, n)
            if n > 0:
                flags.append(Flag(flag="collector_error", detail=f"{name}: {n} failed readings"))
        if window is None:  # no timed window (a failed case): errors only
            return CaseCollection({}, None, tuple(flags))
        t0, t1 = window
        collectors: dict[str, SamplerResult] = {}
        for s in self.samplers:
            samples = snap.samples[s.name]
            summary = {k: v for k, v in s.summarise(samples, t0, t1).items() if np.isfinite(v)}
            collectors[s.name] = SamplerResult(
                device=s.device,
                n_samples=sum(1 for t, _ in samples if t0 <= t <= t1),
                summary=summary,
                info=snap.info[s.name],
                samples=_columns(samples, t0) if self.settings.store_samples else None,
            )
            if device is not None and s.device in (devices or (device,)):
                flags += s.quality_flags(samples, t0, t1)
        if device is None:
            energy = None
        elif devices and len(devices) > 1:
            energy = self._energy_sum(snap, devices, t0, t1, flags)
        else:
            energy = self._energy(snap, device, t0, t1, flags)
        return CaseCollection(collectors, energy, tuple(flags))

    def _energy_sum(self, snap: _Snapshot, devices: tuple[str, ...], t0: float, t1: float,
                    flags: list[Flag]) -> Energy | None:
        """The energy of several devices over one window: the sum of each device's best
        source (:meth:`Energy.total`); None unless every device has one (a partial sum is
        not the case's)."""
        got: list[Energy] = []
        for d in devices:
            own: list[Flag] = []
            e = self._energy(snap, d, t0, t1, own)
            if e is None:
                flags.append(Flag(flag="energy_unavailable", detail=f"no energy source for {d}: no total "
                                  f"over {', '.join(devices)}"))
                return None
            got.append(e)
            for f in own:
                if f not in flags:
                    flags.append(f)
        return Energy.total(list(zip(devices, got)))

    def _finish(self, unwatch: bool) -> _Snapshot:
        """On the sampling thread: a last reading, then copies of what the window needs."""
        th = self._thread
        th.read_all()
        snap = _Snapshot(
            samples=th.snapshot(),
            errors=th.errors(),
            errors0=dict(self._errors0),
            sources={s.name: list(s.energy_sources()) for s in self.samplers},
            info={s.name: s.info() for s in self.samplers},
        )
        if unwatch:
            th.watch(None)
        th.keep = False
        for buf in th.buffers.values():
            del buf[:-1]
        return snap

    def _energy(self, snap: _Snapshot, device: str, t0: float, t1: float, flags: list[Flag]) -> Energy | None:
        """Energy of [t0, t1] from the best source for ``device`` that has a value."""
        if t1 < t0:
            return None
        window = t1 - t0
        for name, src in _ranked(snap.sources):
            if src.device != device:
                continue
            r = src.measure(snap.samples[name], t0, t1)
            if r is None or not np.isfinite(r.energy_j):
                continue
            cross = None
            if src.kind == "counter":  # cross-check a counter with the same sampler's power readings
                p = next((x for x in snap.sources[name] if x.kind == "power" and x.device == device), None)
                got = p.measure(snap.samples[name], t0, t1) if p is not None else None
                cross = got.energy_j if got is not None and np.isfinite(got.energy_j) else None
            if window < MIN_UPDATES * src.period_s:
                flags.append(Flag(
                    flag="energy_window_short",
                    detail=f"{window:.3f} s window for a {src.source} source updating every {src.period_s:g} s: "
                    f"fewer than {MIN_UPDATES} updates (raise min_energy_window_s)",
                ))
            if src.source == "estimated":
                flags.append(Flag(flag="energy_estimated", detail=f"not measured: {r.basis or 'no basis given'}"))
            idle = self._idle.power_w.get(device) if self._idle is not None else None
            return Energy(
                energy_j=r.energy_j,
                energy_source=src.source,
                energy_window_s=window,
                idle_power_w=idle,
                energy_j_power_integrated=cross,
                estimate_basis=r.basis,
            )
        return None


def _ranked(sources: dict[str, list[Any]]) -> list[tuple[str, Any]]:
    """(sampler name, source) pairs, best source first (records.ENERGY_SOURCE_ORDER, then the
    sampler's own order)."""
    pairs = [(energy_source_rank(x.source), i, name, x) for name, xs in sources.items() for i, x in enumerate(xs)]
    pairs.sort(key=lambda p: p[:2])
    return [(name, x) for _, _, name, x in pairs]


def _columns(samples: en.Samples, t0: float) -> dict[str, list]:
    """Samples as columns (compact in JSON), time relative to the window start, s."""
    keys = sorted({k for _, r in samples for k in r})
    cols: dict[str, list] = {"t_s": [round(t - t0, 4) for t, _ in samples]}
    for k in keys:
        cols[k] = [round(r[k], 4) if k in r and np.isfinite(r[k]) else None for _, r in samples]
    return cols
