"""Collectors: sample the hardware in the background while each case runs, then turn
the samples of the case's timed window into summaries, energy and quality flags.

Sampling runs in the runner process, not in the worker, so it never competes with the
timed loop for the worker's interpreter. The worker marks the start and end of its
timed window (``time.monotonic()``, system-wide on Linux) and the runner takes a reading
right then, so energy counters are read at the window's edges rather than up to one
interval away.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from ..devices import nvidia
from ..devices.rapl import Rapl
from ..errors import DeviceNotSupported
from ..timing import percentile
from . import energy as en
from .samplers import HostSampler, NvidiaSampler, RaplSampler

# Watts per physical core assumed when no TDP is configured for an estimate. A rough
# figure for server CPUs (e.g. 280 W / 64 cores ~ 4.4 W, 65 W / 8 cores ~ 8 W); the
# estimate says which TDP it used and is always flagged.
ASSUMED_W_PER_CORE = 8.0
IDLE_FRACTION = 0.3  # estimated package power at 0 % load, as a fraction of TDP


def _summary(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "max": max(values), "p95": percentile(values, 95)}


class CollectorSet:
    """The samplers of one run and their background loop."""

    def __init__(self, samplers: list, settings, unavailable: dict[str, str] | None = None):
        self.samplers = samplers
        self.settings = settings
        self.interval = settings.sample_interval_s
        self.unavailable = unavailable or {}
        self._lock = threading.Lock()
        self._buf: dict[str, list[tuple[float, dict[str, float]]]] = {s.name: [] for s in samplers}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._raised = {s.name: 0 for s in samplers}  # readings that raised, per sampler
        self._errors0: dict[str, int] = {}
        self.idle: dict[str, Any] = {}

    @classmethod
    def for_suite(cls, settings, nvml: Any = None, powercap_root=None) -> "CollectorSet | None":
        """The samplers the suite asks for that this machine has. ``nvml`` and
        ``powercap_root`` replace the real device boundary in tests."""
        wanted = set(settings.collectors)
        if not wanted:
            return None
        samplers: list = []
        unavailable: dict[str, str] = {}
        if "host" in wanted:
            samplers.append(HostSampler(per_core=settings.per_core))
        if "nvidia" in wanted:
            gpus = nvidia.gpus(nvml)
            if gpus:
                samplers += [NvidiaSampler(g) for g in gpus]
            else:
                unavailable["nvidia"] = "no NVIDIA GPU visible to NVML"
        if "rapl" in wanted:
            try:
                samplers.append(RaplSampler(Rapl(powercap_root) if powercap_root else Rapl()))
            except DeviceNotSupported as e:
                unavailable["rapl"] = str(e)
        return cls(samplers, settings, unavailable)

    # -- sampling ------------------------------------------------------------------
    def sample_now(self) -> float:
        """Take one reading of every sampler now; returns its timestamp."""
        t = time.monotonic()
        for s in self.samplers:
            try:
                reading = s.read()
            except Exception:  # noqa: BLE001 - a reading never costs a measurement
                reading = {}
                self._raised[s.name] += 1
            with self._lock:
                self._buf[s.name].append((t, reading))
        return t

    def _loop(self) -> None:
        nxt = time.monotonic()
        while not self._stop.is_set():
            self.sample_now()
            nxt += self.interval
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    def start(self, record: dict[str, Any], measure_idle: bool = True) -> None:
        """Measure the idle baseline (once per run: a resumed run keeps its own), then
        start the background loop."""
        if measure_idle and self.settings.idle_baseline_s > 0 and "idle_baseline" not in record:
            record["idle_baseline"] = self.measure_idle(self.settings.idle_baseline_s)
        else:
            self.sample_now()  # one reading, so the samplers know what their devices offer
        record["collectors"] = {
            "interval_s": self.interval,
            "active": [s.name for s in self.samplers],
            "unavailable": self.unavailable,
            "info": {s.name: _info(s) for s in self.samplers},
        }
        self.idle = record.get("idle_baseline", {})
        self._thread = threading.Thread(target=self._loop, name="hwbench-collectors", daemon=True)
        self._thread.start()

    def measure_idle(self, seconds: float) -> dict[str, Any]:
        """Mean power per device with no case running, W."""
        self._clear()
        t0 = self.sample_now()
        end = t0 + seconds
        while time.monotonic() < end:
            time.sleep(min(self.interval, max(0.0, end - time.monotonic())))
            t1 = self.sample_now()
        out: dict[str, Any] = {"duration_s": t1 - t0}
        for s in self.samplers:
            e = self._energy_for(s, t0, t1)
            if e is not None:
                out[s.device or "cpu"] = {"power_w": e[0] / (t1 - t0), "energy_source": e[1]}
        host = self._buf.get("host")
        if host:
            cpu = [r["cpu_util_pct"] for _, r in host if "cpu_util_pct" in r]
            if cpu:
                out["cpu_util_pct_mean"] = statistics.fmean(cpu)
        self._clear()
        return out

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _clear(self) -> None:
        with self._lock:
            for k in self._buf:
                self._buf[k] = []

    # -- per case --------------------------------------------------------------------
    def case_begin(self, pid: int | None) -> None:
        self._clear()
        self._errors0 = {s.name: self._errors(s) for s in self.samplers}
        for s in self.samplers:
            if isinstance(s, HostSampler):
                s.watch(pid)
        self.sample_now()

    def _errors(self, s) -> int:
        """Failed readings of sampler ``s`` so far: those it counted and those that raised."""
        return s.errors + self._raised[s.name]

    def mark(self, event: str, t: float) -> None:
        """The worker reached a window edge: read the counters now."""
        self.sample_now()

    def case_end(self, window: tuple[float, float] | None, case, res: dict[str, Any], device: str | None) -> dict[str, Any]:
        """Summaries, energy and flags for the case's timed window. ``device`` is the
        resolved device the case ran on (``cuda:0``, ``cpu``)."""
        self.sample_now()
        with self._lock:
            buf = {k: list(v) for k, v in self._buf.items()}
        for s in self.samplers:
            if isinstance(s, HostSampler):
                s.watch(None)
        out: dict[str, Any] = {"collectors": {}, "energy": {}, "flags": []}
        errors = {s.name: self._errors(s) - self._errors0.get(s.name, self._errors(s)) for s in self.samplers}
        for name, n in errors.items():
            if n > 0:
                out["flags"].append({"flag": "collector_error", "detail": f"{name}: {n} failed readings"})
        if window is None:
            return out
        t0, t1 = window
        dev = device or case.device
        for s in self.samplers:
            samples = buf[s.name]
            inside = [r for t, r in samples if t0 <= t <= t1]
            summary: dict[str, float] = {}
            keys = sorted({k for r in inside for k in r if "counter" not in k})
            for k in keys:
                vals = [r[k] for r in inside if k in r]
                if not vals:
                    continue
                st = _summary(vals)
                summary[f"{k}_mean"], summary[f"{k}_max"] = st["mean"], st["max"]
                if k.endswith("_pct") or k.endswith("_w"):
                    summary[f"{k}_p95"] = st["p95"]
            entry: dict[str, Any] = {"device": s.device, "summary": summary, "n_samples": len(inside), "info": _info(s)}
            if self.settings.store_samples:
                entry["samples"] = _columns(samples, t0)
            out["collectors"][s.name] = entry
            if isinstance(s, NvidiaSampler) and s.device == dev:
                thr = {int(r["gpu_throttle_reasons"]) for r in inside if "gpu_throttle_reasons" in r}
                reasons = sorted({n for bits in thr for b, n in nvidia.THROTTLE_BITS.items() if bits & b})
                if reasons:
                    out["flags"].append({"flag": "throttled", "detail": f"{s.name}: {', '.join(reasons)}"})
        out["energy"] = self._case_energy(case, dev, buf, t0, t1, res, out["flags"])
        return out

    def _energy_for(self, s, t0: float, t1: float, buf=None) -> tuple[float, str, float] | None:
        """(joules, source, update period s) for sampler ``s`` over [t0, t1]."""
        samples = (buf or self._buf)[s.name]
        if isinstance(s, NvidiaSampler):
            src = s.energy_source()
            if src is None:
                return None
            kind, key, period = src
            e = en.counter_delta(samples, key, t0, t1) if kind == "nvml_counter" else en.integrate(samples, key, t0, t1)
            return None if e is None else (e, kind, period)
        if isinstance(s, RaplSampler):
            e = en.counter_delta(samples, "cpu_energy_counter_j", t0, t1)
            return None if e is None else (e, "rapl", 0.001)
        if isinstance(s, HostSampler) and not any(isinstance(x, RaplSampler) for x in self.samplers):
            tdp = self._tdp()[0]
            ts, util = en.series(samples, "cpu_util_pct")
            pw = [(t, {"w": tdp * (IDLE_FRACTION + (1 - IDLE_FRACTION) * u / 100)}) for t, u in zip(ts, util)]
            e = en.integrate(pw, "w", t0, t1)
            return None if e is None else (e, "estimated", self.interval)
        return None

    def _tdp(self) -> tuple[float, str]:
        import psutil

        if self.settings.cpu_tdp_w:
            return self.settings.cpu_tdp_w, f"cpu_tdp_w = {self.settings.cpu_tdp_w:g} W from the suite"
        cores = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
        return cores * ASSUMED_W_PER_CORE, f"assumed TDP {cores} cores x {ASSUMED_W_PER_CORE:g} W (set cpu_tdp_w)"

    def _case_energy(self, case, dev: str, buf, t0, t1, res, flags) -> dict[str, Any]:
        window = t1 - t0
        cands = [s for s in self.samplers if s.device == dev] + (
            [s for s in self.samplers if isinstance(s, HostSampler)] if dev == "cpu" else []
        )
        for s in cands:
            got = self._energy_for(s, t0, t1, buf)
            if got is None:
                continue
            joules, source, period = got
            m = res.get("metrics", {})
            samples_done = (m.get("iterations") or 0) * case.batch_size
            e: dict[str, Any] = {
                "energy_j": joules,
                "energy_source": source,
                "energy_window_s": window,
                "power_w_mean": joules / window if window > 0 else None,
                "energy_per_sample_j": joules / samples_done if samples_done else None,
            }
            if case.gen_tokens and samples_done:
                e["energy_per_token_j"] = joules / (samples_done * case.gen_tokens)
            idle = self.idle.get(dev)
            if idle:
                e["idle_power_w"] = idle["power_w"]
                e["energy_above_idle_j"] = joules - idle["power_w"] * window
            if isinstance(s, NvidiaSampler) and source == "nvml_counter":
                # cross-check: the same window from integrated power readings
                pi = en.integrate(buf[s.name], "gpu_power_w", t0, t1)
                if pi is not None:
                    e["energy_j_power_integrated"] = pi
            if window < 10 * period or (source != "nvml_counter" and source != "rapl" and window < 3 * self.interval):
                flags.append({
                    "flag": "energy_window_short",
                    "detail": f"{window:.3f} s window for a {source} source updating every {period:g} s (raise min_energy_window_s)",
                })
            if source == "estimated":
                flags.append({"flag": "energy_estimated", "detail": f"no energy counter; {self._tdp()[1]} and CPU load"})
            return e
        return {}


def _info(sampler) -> dict[str, Any]:
    """What a sampler knows of its device (e.g. which NVML power field it reads)."""
    return sampler.info() if hasattr(sampler, "info") else {}


def _columns(samples, t0: float) -> dict[str, list]:
    """Samples as columns (compact in JSON), time relative to the window start, s."""
    keys = sorted({k for _, r in samples for k in r})
    cols: dict[str, list] = {"t_s": [round(t - t0, 4) for t, _ in samples]}
    for k in keys:
        cols[k] = [None if k not in r else round(r[k], 4) for _, r in samples]
    return cols


def timing_flags(metrics: dict[str, Any], threshold: float) -> list[dict[str, str]]:
    """Measurement-quality flags from the timing statistics."""
    iqr, cv = metrics.get("latency_iqr_rel"), metrics.get("latency_cv")
    if iqr is not None and cv is not None and (iqr > threshold or cv > 2 * threshold):
        return [{"flag": "noisy", "detail": f"IQR/median {iqr:.1%}, CV {cv:.1%} (threshold {threshold:.0%})"}]
    return []
