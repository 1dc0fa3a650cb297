"""Timing primitives of the probe: each timed call alone, caches flushed in between.

As the device's kind says (:mod:`hwbench.devices`): ``perf_counter`` around the call and
the kind's synchronisation (CPU kernels are synchronous); or, for kinds with device
events (CUDA, ROCm, XPU, HPU), events recorded around the call only, read after one
synchronisation per batch, so neither the flush nor a host round trip is in the timed
interval (docs/architecture.md, rule 1).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .. import devices

LLC_SYSFS = "/sys/devices/system/cpu/cpu0/cache"
DEFAULT_LLC_BYTES = 32 * 2**20


def llc_bytes(root: str = LLC_SYSFS) -> int:
    """The CPU's largest cache (sysfs ``cache/index*/size``), bytes; 32 MiB where unknown."""
    best = 0
    for idx in Path(root).glob("index*"):
        try:
            text = (idx / "size").read_text().strip().upper()
        except OSError:
            continue
        mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            best = max(best, int(digits) * mult)
    return best or DEFAULT_LLC_BYTES


def cache_bytes(device: torch.device) -> int:
    """The last cache level a flush must evict: the device's (a GPU's L2), else the CPU's LLC."""
    size = devices.of_torch(device).cache_bytes(device)
    return llc_bytes() if size is None else size


class Flusher:
    """Evicts caches between timed calls by writing a buffer of twice the last cache level
    (a CPU write of every line; a device memset)."""

    def __init__(self, device: torch.device, nbytes: int | None = None):
        self.nbytes = int(nbytes or 2 * cache_bytes(device))
        self.buf = torch.empty(self.nbytes // 4, dtype=torch.float32, device=device)
        self._v = 0.0

    def __call__(self) -> None:
        self._v = 1.0 - self._v  # a different value each time: no write can be skipped
        self.buf.fill_(self._v)


def sync(device: torch.device) -> None:
    devices.of_torch(device).synchronize(device)


@dataclass(frozen=True)
class Times:
    """Seconds per call of the timed calls."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def best(self) -> float:
        return min(self.values)


def time_calls(device: torch.device, fn: Callable[[], object], n: int, flush: Callable[[], None] | None) -> Times:
    """Time ``n`` calls of ``fn``, each alone, ``flush`` before each (untimed)."""
    event = devices.of_torch(device).event()
    if event is not None:
        pairs = [(event(enable_timing=True), event(enable_timing=True)) for _ in range(n)]
        for start, end in pairs:
            if flush is not None:
                flush()
            start.record()
            fn()
            end.record()
        sync(device)
        return Times(tuple(s.elapsed_time(e) / 1e3 for s, e in pairs))
    out = []
    for _ in range(n):
        if flush is not None:
            flush()
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return Times(tuple(out))


def time_block(device: torch.device, fn: Callable[[], object], calls: int, rounds: int) -> Times:
    """Seconds per call over ``rounds`` blocks of ``calls`` back-to-back calls: for
    bandwidth kernels, whose single calls on small buffers are shorter than a timer's
    resolution. No flush: a block streams through memory already."""
    out = []
    event = devices.of_torch(device).event()
    for _ in range(rounds):
        if event is not None:
            start, end = event(enable_timing=True), event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            sync(device)
            out.append(start.elapsed_time(end) / 1e3 / calls)
        else:
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            sync(device)
            out.append((time.perf_counter() - t0) / calls)
    return Times(tuple(out))


def one_call_s(device: torch.device, fn: Callable[[], object]) -> float:
    """One untimed-for-the-record call (warm: first-call costs paid), then one timed call."""
    fn()
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0
