"""The sampling thread: the one thread that owns every sampler.

Samplers keep state between readings (RAPL's last counter value, psutil's previous CPU
times, NVML's GPM sample), so two threads reading one sampler corrupt it: a stale RAPL
value taken as a counter wrap once turned 3.2 J into 1.3 GJ. Here every ``read()`` and
``watch()`` call, and every access to the sample buffers, happens on this thread. Other
threads send it functions to run (:meth:`SamplingThread.call`), answered in order of
arrival and before the next periodic reading, so a reading asked for at a window edge
is taken at once.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

from .energy import Sample
from .samplers import Sampler


class SamplingThread:
    """Reads every sampler every ``interval_s`` seconds and on request.

    Between cases only each sampler's latest reading is kept (``keep`` False); during a
    case or an idle baseline, every reading is."""

    def __init__(self, samplers: list[Sampler], interval_s: float):
        self.samplers = samplers
        self.interval_s = interval_s
        # owner-side state: touched only by the sampling thread once it runs
        self.buffers: dict[str, list[Sample]] = {s.name: [] for s in samplers}
        self.raised = {s.name: 0 for s in samplers}  # readings / watch calls that raised
        self.keep = False
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    # -- any thread -------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hwbench-sampling", daemon=True)
            self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn`` on the sampling thread; its result (or exception) in the future.
        Before ``start`` and after ``stop`` there is no sampling thread to race with,
        so ``fn`` runs at once in the caller."""
        fut: Future = Future()
        if not self.alive():
            _run_into(fn, fut)
        else:
            self._q.put((fn, fut))
        return fut

    def call(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run ``fn`` on the sampling thread and wait for its result."""
        return self.submit(fn).result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        if self.alive():
            self._q.put(None)
            self._thread.join(timeout)

    # -- the sampling thread only -----------------------------------------------------
    def errors(self) -> dict[str, int]:
        """Failed readings so far per sampler: those it counted and those that raised."""
        return {s.name: s.errors + self.raised[s.name] for s in self.samplers}

    def read_all(self) -> None:
        """One reading of every sampler, each stamped with the middle of its read."""
        for s in self.samplers:
            a = time.monotonic()
            try:
                reading = s.read()
            except Exception:  # noqa: BLE001 - a reading never costs a measurement
                reading = {}
                self.raised[s.name] += 1
            buf = self.buffers[s.name]
            buf.append(((a + time.monotonic()) / 2, reading))
            if not self.keep:
                del buf[:-1]

    def watch(self, pid: int | None) -> None:
        for s in self.samplers:
            try:
                s.watch(pid)
            except Exception:  # noqa: BLE001 - as a failed reading
                self.raised[s.name] += 1

    def clear(self) -> None:
        for buf in self.buffers.values():
            buf.clear()

    def snapshot(self) -> dict[str, list[Sample]]:
        return {k: list(v) for k, v in self.buffers.items()}

    def _run(self) -> None:
        nxt = time.monotonic()
        while True:
            if time.monotonic() >= nxt:  # checked first: a stream of requests never starves the ticks
                self.read_all()
                nxt += self.interval_s
                now = time.monotonic()
                if nxt < now:  # fell behind (a slow reading): skip ticks instead of bursting
                    nxt = now + self.interval_s
            try:
                item = self._q.get(timeout=max(0.0, nxt - time.monotonic()))
            except queue.Empty:
                continue
            if item is None:
                return
            _run_into(*item)


def _run_into(fn: Callable[[], Any], fut: Future) -> None:
    if not fut.set_running_or_notify_cancel():
        return
    try:
        fut.set_result(fn())
    except BaseException as e:  # noqa: BLE001 - handed to the caller
        fut.set_exception(e)
