"""Timing: warmup, adaptive iteration count, device synchronisation. Statistics are
derived from the raw times at load (:mod:`hwbench.analysis.stats`).

Measurement rules (docs/architecture.md): synchronise before reading a host clock or time with
device events; warm up first and record the first iteration separately; measure until
both a minimum duration and a minimum iteration count are reached; keep raw times.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch


class Timer:
    """Times one call of ``step`` on a device, as the device's kind says
    (:mod:`hwbench.devices`): with device events recorded around the call, read after
    one synchronisation per block, so timing adds no host-device round trip per
    iteration (CUDA, ROCm, XPU, HPU); else ``perf_counter`` around the call and a
    synchronisation (CPU: none; MPS, XLA: the kind's own)."""

    def __init__(self, device: torch.device, acc=None):
        from . import devices

        self.device = device
        self.acc = acc if acc is not None else devices.of_torch(device)
        self._event = self.acc.event()
        self._events = self._event is not None

    def sync(self) -> None:
        self.acc.synchronize(self.device)

    def run_block(self, step: Callable[[], object], n: int) -> list[float]:
        """Run ``step`` ``n`` times; return each iteration's time in seconds."""
        if self._events:
            ev = self._event
            pairs = [(ev(enable_timing=True), ev(enable_timing=True)) for _ in range(n)]
            for start, end in pairs:
                start.record()
                step()
                end.record()
            self.sync()
            return [s.elapsed_time(e) / 1e3 for s, e in pairs]
        out = []
        sync, clock = self.sync, time.perf_counter
        for _ in range(n):
            t0 = clock()
            step()
            sync()
            out.append(clock() - t0)
        return out


@dataclass(frozen=True)
class Measurement:
    """Raw result of the timing loop. All times in seconds."""

    first_iter_s: float
    warmup_s: float
    raw_times_s: tuple[tuple[float, ...], ...]  # one tuple per repeat
    window_start: float  # time.monotonic() at the start / end of the measured region
    window_end: float
    compiles_in_window: int = 0  # torch.compile compilations during the timed iterations (should be 0)


def measure(
    step: Callable[[], object],
    timer: Timer,
    *,
    warmup_iters: int,
    warmup_s: float,
    min_time_s: float,
    min_iters: int,
    max_iters: int,
    repeats: int,
    on_first_timed: Callable[[], None] | None = None,
    compiles: Callable[[], int] | None = None,
    max_recompile_steps: int = 20,
) -> Measurement:
    """Warm up, then measure ``repeats`` rounds, each until both ``min_time_s`` and
    ``min_iters`` are met (at most ``max_iters``). Iterations run in blocks sized from
    the previous estimate so a round overshoots ``min_time_s`` by little. ``compiles``
    (a compilation counter, :func:`hwbench.backends.compile_counter`): warmup goes on
    while the last step compiled (a recompile, a backward compiled late), at most
    ``max_recompile_steps`` steps more; compilations in the timed window are counted."""
    count = compiles or (lambda: 0)
    first, warm = warm_up(lambda: timer.run_block(step, 1)[0], warmup_iters=warmup_iters, warmup_s=warmup_s,
                          compiles=compiles, max_recompile_steps=max_recompile_steps)
    if on_first_timed is not None:
        on_first_timed()
    c0 = count()
    rounds = []
    w0 = time.monotonic()
    for _ in range(repeats):
        times: list[float] = []
        elapsed = 0.0
        block = 1
        while len(times) < max_iters and (len(times) < min_iters or elapsed < min_time_s):
            got = timer.run_block(step, block)
            times.extend(got)
            elapsed += sum(got)
            per = elapsed / len(times)
            left_t = (min_time_s - elapsed) / per if per > 0 else 1
            want = max(min_iters - len(times), math.ceil(left_t), 1)
            # grow at most 4x per block so a slow first estimate cannot overshoot far
            block = int(min(max(want, 1), block * 4, max_iters - len(times))) or 1
        rounds.append(tuple(times[:max_iters]))
    return Measurement(first, warm, tuple(rounds), w0, time.monotonic(), count() - c0)


def warm_up(
    run_one: Callable[[], float],
    *,
    warmup_iters: int,
    warmup_s: float,
    compiles: Callable[[], int] | None = None,
    max_recompile_steps: int = 20,
    agree: Callable[[bool], bool] | None = None,
    not_ready: Callable[[], bool] | None = None,
) -> tuple[float, float]:
    """Run the first iteration (``run_one`` returns its time, s), then warm up: at least
    ``warmup_iters`` iterations (one at least, the first included) and ``warmup_s``
    seconds, and on while the last iteration compiled (``compiles``, a compilation
    counter), at most ``max_recompile_steps`` iterations more. ``agree`` (the ranks of a
    parallel case, :mod:`hwbench.parallel.rank`): turns this process's wish to go on into
    the group's one decision (True on every rank where any rank wants more), so every
    rank runs the same iterations. ``not_ready``: True while the step is not yet in its
    steady state for a reason of its own (PowerSGD before its start step): warmup goes
    on while it says so. Returns (first iteration's time, warmup's seconds, the first
    iteration included)."""
    count = compiles or (lambda: 0)
    t0 = time.perf_counter()
    seen = count()
    first = run_one()
    done = 1
    limit = max(warmup_iters, 1) + max_recompile_steps
    while True:
        n = count()
        fresh, seen = n != seen, n  # compiled during the last iteration: not steady yet
        more = (done < max(warmup_iters, 1) or time.perf_counter() - t0 < warmup_s or (fresh and done < limit)
                or (not_ready is not None and not_ready()))
        if agree is not None:
            more = agree(more)
        if not more:
            break
        run_one()
        done += 1
    return first, time.perf_counter() - t0


def lockstep_rounds(
    timed: Callable[[], float],
    stop_all: Callable[[bool], bool],
    *,
    repeats: int,
    min_iters: int,
    min_time_s: float,
    max_iters: int,
) -> list[list[float]]:
    """The timed rounds of the ranks of a parallel case: ``repeats`` rounds of single
    steps (``timed`` returns one step's time, s), each until both ``min_time_s`` (wall
    time of the round) and ``min_iters`` are met, at most ``max_iters``. Before each
    step ``stop_all(stop)`` (an allreduce, which also aligns the ranks) hands this
    rank's decision to the group and returns the group's (rank 0 decides), so every
    rank runs the same steps."""
    rounds = []
    for _ in range(repeats):
        times: list[float] = []
        r0 = time.perf_counter()
        while True:
            n, el = len(times), time.perf_counter() - r0
            stop = n >= max_iters or (n >= min_iters and el >= min_time_s)
            if stop_all(stop):
                break
            times.append(timed())
        rounds.append(times)
    return rounds
