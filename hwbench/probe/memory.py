"""Memory bandwidth: device copy / read-only / write-only / triad kernels by buffer size,
and host<->device copies (CUDA), pinned and pageable, both directions.

Bytes are counted honestly, as read + written by the kernel (STREAM's convention; the
extra read-for-ownership a CPU cache does before a store is *not* counted, so CPU write
figures are what a program sees, not the DRAM traffic):

========  =================================  ===================
kernel    torch call (float32 buffers)        bytes per call
========  =================================  ===================
copy      ``dst.copy_(src)``                  2 x buffer
read      ``torch.sum(src)``                  1 x buffer
write     ``dst.fill_(v)``                    1 x buffer
triad     ``torch.add(b, c, alpha=s, out=a)``  3 x buffer
========  =================================  ===================

Each kernel runs in blocks of back-to-back calls (a single call on a small buffer is
shorter than the timer's resolution); the figure is the median block. Sizes from far
below to far beyond the last cache level give the copy bandwidth curve that the
roofline uses for a working set of a given size; ``memory_bandwidth_gbs`` is the best
copy (median of its blocks) over the sizes beyond the cache: each buffer at least twice
the last cache level, so no buffer stays resident.

A host<->device copy moves each byte across the link once: its GB/s is size / time.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .. import devices
from . import _timing
from .profile import BandwidthResult, TransferResult
from .settings import ProbeSettings

Progress = Callable[[str], None]
KERNELS = {"copy": 2, "read": 1, "write": 1, "triad": 3}  # bytes moved per call, in buffers


def _kernel(name: str, bufs: list[torch.Tensor]) -> Callable[[], object]:
    a, b, c = bufs
    if name == "copy":
        return lambda: a.copy_(b)
    if name == "read":
        return lambda: torch.sum(b)
    if name == "write":
        return lambda: a.fill_(2.0)
    if name == "triad":
        return lambda: torch.add(b, c, alpha=3.0, out=a)
    raise ValueError(name)


def bandwidth(device: torch.device, sizes, s: ProbeSettings, cache: int, progress: Progress,
              kernels_small: tuple[str, ...] = ("copy",), label: str = "memory") -> list[BandwidthResult]:
    """Every kernel at the sizes of at least 2x ``cache`` each buffer (beyond the last cache level),
    ``kernels_small`` (the copy) at the smaller ones, for the bandwidth curve."""
    out: list[BandwidthResult] = []
    for size in sorted(sizes):
        n = max(size // 4, 1)
        beyond = size >= 2 * cache
        try:
            bufs = [torch.empty(n, dtype=torch.float32, device=device) for _ in range(3)]
            for t in bufs:
                t.fill_(1.0)  # touch every page before timing
        except (torch.OutOfMemoryError, RuntimeError) as e:
            progress(f"{label} {device} {size / 2**20:g} MiB: skipped ({str(e).splitlines()[0][:120]})")
            _timing.sync(device)
            continue
        for name in KERNELS if beyond else kernels_small:
            fn = _kernel(name, bufs)
            t1 = max(_timing.one_call_s(device, fn), 1e-7)
            # blocks of about 20 ms, measuring about mem_time_s in all, at least 3 blocks
            calls = max(1, int(0.02 / t1))
            rounds = max(3, min(50, math.ceil(s.mem_time_s / (calls * t1))))
            times = _timing.time_block(device, fn, calls, rounds)
            moved = KERNELS[name] * n * 4
            r = BandwidthResult(kernel=name, buffer_bytes=n * 4, bytes_per_call=moved, median_s=times.median,
                                best_s=times.best, gbs_median=moved / times.median / 1e9,
                                gbs_best=moved / times.best / 1e9, beyond_cache=beyond)
            out.append(r)
            progress(f"{label} {device} {name} {n * 4 / 2**20:g} MiB: {r.gbs_median:.4g} GB/s")
        del bufs
        devices.of_torch(device).empty_cache()
    return out


def headline(results: list[BandwidthResult]) -> float | None:
    """The best copy bandwidth (median of its blocks) over the sizes beyond the cache
    (none probed: the largest size's), GB/s."""
    copies = [r for r in results if r.kernel == "copy"]
    if not copies:
        return None
    beyond = [r for r in copies if r.beyond_cache]
    if not beyond:
        return max(copies, key=lambda r: r.buffer_bytes).gbs_median
    return max(r.gbs_median for r in beyond)


def curve(results: list[BandwidthResult]) -> list[list[float]]:
    """[[working set bytes (read + written per call), copy GB/s], ...] ascending."""
    return [[float(r.bytes_per_call), r.gbs_median] for r in sorted(results, key=lambda r: r.bytes_per_call)
            if r.kernel == "copy"]


def host_device(device: torch.device, sizes, s: ProbeSettings, progress: Progress) -> list[TransferResult]:
    """Host->device and device->host copies of pinned and pageable host memory (CUDA),
    timed with device events around ``copy_`` (pageable copies stage through a driver
    buffer; that cost is the point of measuring them)."""
    out: list[TransferResult] = []
    for size in sizes:
        n = size // 4
        dev = torch.empty(n, dtype=torch.float32, device=device)
        for memory in ("pinned", "pageable"):
            host = torch.ones(n, dtype=torch.float32, pin_memory=(memory == "pinned"))
            for direction in ("h2d", "d2h"):
                if direction == "h2d":
                    fn = lambda: dev.copy_(host, non_blocking=True)  # noqa: E731
                else:
                    fn = lambda: host.copy_(dev, non_blocking=True)  # noqa: E731
                t1 = max(_timing.one_call_s(device, fn), 1e-6)
                reps = max(3, min(20, math.ceil(s.mem_time_s / t1)))
                times = _timing.time_calls(device, fn, reps, None)
                r = TransferResult(direction=direction, memory=memory, size_bytes=n * 4, median_s=times.median,
                                   gbs_median=n * 4 / times.median / 1e9)
                out.append(r)
                progress(f"copy {direction} {memory} {n * 4 / 2**20:g} MiB: {r.gbs_median:.4g} GB/s")
            del host
        del dev
        devices.of_torch(device).empty_cache()
    return out


def transfer_summary(results: list[TransferResult]) -> dict[str, float]:
    """"h2d_pinned" etc. -> GB/s at the largest size."""
    out: dict[str, float] = {}
    for r in sorted(results, key=lambda r: r.size_bytes):
        out[f"{r.direction}_{r.memory}"] = r.gbs_median
    return out
