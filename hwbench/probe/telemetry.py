"""Clocks, temperature, power and throttle state while the probe runs.

One background thread samples the probed device every ``interval_s``: a CUDA GPU
through :mod:`hwbench.devices.nvidia` (the only NVML importer), a CPU through psutil
(current clock; temperatures where the OS exposes them). Each phase of the probe is
summarised (min / mean / max per reading; the throttle reasons seen), so a figure
measured while the GPU was power- or thermally-throttled says so.
"""

from __future__ import annotations

import statistics
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from .profile import PhaseTelemetry


def cpu_reader() -> Callable[[], dict[str, float]]:
    import psutil

    def read() -> dict[str, float]:
        out: dict[str, float] = {}
        try:
            f = psutil.cpu_freq()
            if f is not None and f.current:
                out["cpu_freq_mhz"] = float(f.current)
        except (OSError, NotImplementedError, RuntimeError):
            pass
        temps = getattr(psutil, "sensors_temperatures", None)
        if temps is not None:
            try:
                vals = [t.current for ts in temps().values() for t in ts if t.current]
            except (OSError, RuntimeError):
                vals = []
            if vals:
                out["cpu_temperature_c"] = float(max(vals))
        return out

    return read


def gpu_reader(torch_device: str, nvml: Any = None) -> tuple[Callable[[], dict[str, float]] | None, str]:
    """A reader of the NVIDIA GPU torch calls ``torch_device``, or (None, why not)."""
    from ..devices import nvidia

    gpus = [g for g in nvidia.gpus(nvml) if g.torch_device == torch_device]
    if not gpus:
        return None, f"no NVML reading for {torch_device} (NVML unavailable or the GPU is not an NVIDIA one)"
    g = gpus[0]

    def read() -> dict[str, float]:
        r = g.sample()
        keep = ("sm_clock_mhz", "mem_clock_mhz", "temperature_c", "power_w", "throttle_reasons")
        return {f"gpu_{k}" if not k.startswith("throttle") else k: v for k, v in r.items() if k in keep}

    return read, ""


def throttle_names(bits: int) -> list[str]:
    from ..devices.nvidia import THROTTLE_BITS

    return [name for bit, name in THROTTLE_BITS.items() if bits & bit]


class Monitor:
    """Samples ``read()`` in a thread; :meth:`phase` brackets one part of the probe."""

    def __init__(self, read: Callable[[], dict[str, float]] | None, interval_s: float = 0.2):
        self.read = read
        self.interval_s = interval_s
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.phases: list[PhaseTelemetry] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Monitor:
        if self.read is not None:
            self._thread = threading.Thread(target=self._loop, name="hwbench-probe-telemetry", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self.read()))
            except Exception:  # noqa: BLE001 - a failed reading never costs a measurement
                pass
            self._stop.wait(self.interval_s)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            t1 = time.monotonic()
            self.phases.append(summarise(name, t1 - t0, [s for t, s in list(self.samples) if t0 <= t <= t1]))


def summarise(name: str, duration_s: float, samples: list[dict[str, float]]) -> PhaseTelemetry:
    keys = sorted({k for s in samples for k in s} - {"throttle_reasons"})
    summary: dict[str, float] = {"n_samples": float(len(samples))}
    for k in keys:
        vals = [s[k] for s in samples if k in s]
        summary[f"{k}_min"], summary[f"{k}_mean"], summary[f"{k}_max"] = min(vals), statistics.fmean(vals), max(vals)
    bits = 0
    for s in samples:
        bits |= int(s.get("throttle_reasons", 0))
    return PhaseTelemetry(phase=name, duration_s=duration_s, summary=summary, throttle=throttle_names(bits))
