"""The system under test for MLPerf LoadGen: a dynamic batcher per model instance.

LoadGen (``mlperf_loadgen``) owns the arrival times and measures every query's latency
from its scheduled issue to ``QuerySamplesComplete``; this SUT only answers. Queries go
into one queue; each model instance has its own thread, which takes up to
``max_batch`` samples, waiting at most ``max_batch_wait_s`` after the oldest queued one
for more to arrive (Server only: in the other scenarios every sample LoadGen will issue
before it waits is already queued, so a wait would only add latency), runs one forward
pass of that many samples on its instance, and completes them together (LoadGen's
``QuerySamplesComplete`` may be called from any thread). Several instances serve
batches concurrently, each in the order it took them.

Per-query latencies: LoadGen's own, read back from its trace (``Sample`` events,
``complete_ns``: scheduled issue to completion); the trace is deleted once read
(it is about 1 KB per sample). Offline keeps no trace (one query of up to hundreds of
thousands of samples): its per-sample latencies are the SUT's, from the issue call.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

LG_SCENARIO = {"single_stream": "SingleStream", "multi_stream": "MultiStream", "server": "Server",
               "offline": "Offline"}
QSL_SIZE = 1024  # samples LoadGen's query sample library reports (inputs are a fixed batch)


@dataclass(frozen=True)
class Batch:
    """One forward pass the SUT ran: which instance, its samples ((query id, issue
    ns) in issue order), when it was taken from the queue and completed (ns, the
    issue clock: ``time.monotonic_ns``), and the forward pass's own time (s)."""

    instance: int
    samples: list[tuple[int, int]]
    taken_ns: int
    done_ns: int
    forward_s: float | None  # None: not run (the SUT had already failed)


class BatchingSUT:
    """The batcher (module docstring) with one thread per model instance, all pulling
    from one queue. ``forwards[i](n)`` runs instance ``i``'s forward pass of ``n``
    samples and returns when its results are ready (its stream synchronised);
    ``thread_init(i)``, where given, runs first in instance ``i``'s thread (its
    intra-op thread count). The first failure of any instance is kept with the
    instance's number; from then on no instance runs a forward pass, every queued and
    later sample is still completed (LoadGen needs its answers) and ``run_test``
    raises the failure."""

    def __init__(self, lg, forwards: Sequence[Callable[[int], None]] | Callable[[int], None], max_batch: int,
                 max_batch_wait_s: float, thread_init: Callable[[int], None] | None = None):
        forwards = [forwards] if callable(forwards) else list(forwards)
        if not forwards:
            raise ValueError("the SUT needs at least one instance")
        self.lg, self.forwards, self.max_batch, self.wait_s = lg, forwards, max_batch, max_batch_wait_s
        self.thread_init = thread_init
        self.queue: deque = deque()
        self.cv = threading.Condition()
        self.done = False
        self.error: BaseException | None = None
        self.error_instance: int | None = None
        self.log: list[Batch] = []  # every batch, in the order instances completed them
        self.threads = [threading.Thread(target=self._loop, args=(i,), name=f"hwbench-sut-{i}", daemon=True)
                        for i in range(len(forwards))]
        for t in self.threads:
            t.start()

    @property
    def instances(self) -> int:
        return len(self.forwards)

    @property
    def batches(self) -> list[int]:
        return [len(b.samples) for b in self.log if b.forward_s is not None]

    @property
    def batch_times_s(self) -> list[float]:
        return [b.forward_s for b in self.log if b.forward_s is not None]

    def instance_batches(self) -> list[int]:
        """Forward passes each instance ran, by instance."""
        out = [0] * self.instances
        for b in self.log:
            if b.forward_s is not None:
                out[b.instance] += 1
        return out

    def issue(self, samples) -> None:
        t = time.monotonic_ns()
        with self.cv:
            for s in samples:
                self.queue.append((s.id, t))
            self.cv.notify_all()

    def flush(self) -> None:
        pass

    def _take(self) -> list[tuple[int, int]]:
        """Up to max_batch of the oldest queued samples, once the batch is full or the
        oldest queued one has waited wait_s (the oldest is looked at afresh after every
        wake-up: another instance may have taken the one waited for); [] at the end."""
        with self.cv:
            while True:
                if not self.queue:
                    if self.done:
                        return []
                    self.cv.wait(0.05)
                    continue
                if self.wait_s <= 0 or self.done or len(self.queue) >= self.max_batch:
                    break
                left = self.queue[0][1] / 1e9 + self.wait_s - time.monotonic()
                if left <= 0:
                    break
                self.cv.wait(left)
            n = min(self.max_batch, len(self.queue))
            batch = [self.queue.popleft() for _ in range(n)]
            if self.queue:
                self.cv.notify()  # more queued: wake an idle instance for it
            return batch

    def _loop(self, i: int) -> None:
        response = self.lg.QuerySampleResponse
        forward = self.forwards[i]
        try:
            if self.thread_init is not None:
                self.thread_init(i)
        except BaseException as e:  # noqa: BLE001 - reported by run_test
            self._fail(i, e)
        while True:
            batch = self._take()
            if not batch:
                return
            taken, ran = time.monotonic_ns(), None
            if self.error is None:
                try:
                    t0 = time.perf_counter()
                    forward(len(batch))
                    ran = time.perf_counter() - t0
                except BaseException as e:  # noqa: BLE001 - reported by run_test; LoadGen still needs answers
                    self._fail(i, e)
            self.log.append(Batch(i, batch, taken, time.monotonic_ns(), ran))
            self.lg.QuerySamplesComplete([response(qid, 0, 0) for qid, _ in batch])

    def _fail(self, i: int, e: BaseException) -> None:
        with self.cv:
            if self.error is None:
                self.error, self.error_instance = e, i

    def failure(self) -> str | None:
        """The first failure, with its instance where there are several."""
        if self.error is None:
            return None
        where = f" (instance {self.error_instance + 1} of {self.instances})" if self.instances > 1 else ""
        return f"{self.error}{where}"

    def window_s(self) -> float:
        """The first issue of any sample to the last completion of any instance, s
        (instances complete out of order: the extremes, not the log's ends)."""
        if not self.log:
            return 0.0
        first = min(t for b in self.log for _, t in b.samples)
        return (max(b.done_ns for b in self.log) - first) / 1e9

    def stop(self) -> None:
        with self.cv:
            self.done = True
            self.cv.notify_all()
        for t in self.threads:
            t.join(timeout=10)


@dataclass
class TestRun:
    """One LoadGen test: per-query latencies (s), LoadGen's summary figures, where its
    logs are, and the batches the SUT ran."""

    latencies_s: list[float]
    summary: dict[str, str]
    outdir: str
    duration_s: float
    batches: list[int] = field(default_factory=list)
    batch_times_s: list[float] = field(default_factory=list)
    window_s: float = 0.0  # the SUT's first issue to its last completion
    instance_batches: list[int] = field(default_factory=list)  # forward passes per instance
    log: list[Batch] = field(default_factory=list)  # every batch, in completion order


def _settings(lg, scenario: str, *, duration_s: float, min_queries: int, target_qps: float | None,
              slo_ms: float | None, pct: float, expected_qps: float):
    s = lg.TestSettings()
    s.scenario = getattr(lg.TestScenario, LG_SCENARIO[scenario])
    s.mode = lg.TestMode.PerformanceOnly
    s.min_duration_ms = int(duration_s * 1000)
    # a slow SUT must not run min_query_count queries for minutes: stop issuing at 4x
    s.max_duration_ms = int(duration_s * 4000)
    s.min_query_count = min_queries
    if scenario == "server":
        s.server_target_qps = float(target_qps)
        s.server_target_latency_percentile = pct / 100.0
        if slo_ms is not None:
            s.server_target_latency_ns = int(slo_ms * 1e6)
    elif scenario == "offline":
        s.offline_expected_qps = float(expected_qps)
    elif scenario == "single_stream":
        s.single_stream_expected_latency_ns = max(1000, int(1e9 / max(expected_qps, 1e-9)))
    elif scenario == "multi_stream":
        s.multi_stream_expected_latency_ns = max(1000, int(8e9 / max(expected_qps, 1e-9)))
    return s


def run_test(scenario: str, forward: Callable[[int], None] | Sequence[Callable[[int], None]], *, max_batch: int,
             max_batch_wait_s: float, outdir: str | Path, duration_s: float, min_queries: int,
             target_qps: float | None = None, slo_ms: float | None = None, pct: float = 99.0,
             expected_qps: float = 1000.0, thread_init: Callable[[int], None] | None = None) -> TestRun:
    """Run one LoadGen test of ``scenario`` (PerformanceOnly) against a
    :class:`BatchingSUT` around ``forward`` (one callable, or one per model
    instance); logs go to ``outdir``."""
    import mlperf_loadgen as lg

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    trace = scenario != "offline"
    sut = BatchingSUT(lg, forward, max_batch, max_batch_wait_s if scenario == "server" else 0.0, thread_init)
    handle = lg.ConstructSUT(sut.issue, sut.flush)
    qsl = lg.ConstructQSL(QSL_SIZE, QSL_SIZE, lambda idx: None, lambda idx: None)
    out = lg.LogOutputSettings()
    out.outdir = str(outdir)
    out.copy_summary_to_stdout = False
    log = lg.LogSettings()
    log.log_output = out
    log.enable_trace = trace
    t0 = time.monotonic()
    try:
        lg.StartTestWithLogSettings(handle, qsl, _settings(
            lg, scenario, duration_s=duration_s, min_queries=min_queries, target_qps=target_qps, slo_ms=slo_ms,
            pct=pct, expected_qps=expected_qps), log)
    finally:
        elapsed = time.monotonic() - t0
        sut.stop()
        lg.DestroyQSL(qsl)
        lg.DestroySUT(handle)
    if sut.error is not None:
        raise RuntimeError(f"the SUT failed during the LoadGen test: {sut.failure()}") from sut.error
    summary = parse_summary((outdir / "mlperf_log_summary.txt").read_text(encoding="utf-8", errors="replace"))
    if trace:
        tr = outdir / "mlperf_log_trace.json"
        lat = trace_latencies_s(tr.read_text(encoding="utf-8", errors="replace"), per_query=scenario == "multi_stream")
        os.unlink(tr)
    else:
        lat = [(b.done_ns - t) / 1e9 for b in sut.log for _, t in b.samples]
    with _suppress():
        os.unlink(outdir / "mlperf_log_trace.json")
    return TestRun(lat, summary, str(outdir), elapsed, sut.batches, sut.batch_times_s, sut.window_s(),
                   sut.instance_batches(), list(sut.log))


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], OSError)


_SAMPLE = re.compile(r'"name":"Sample","cat":"default","ph":"b".*?"query_seq":(\d+).*?"complete_ns":(\d+)')


def trace_latencies_s(text: str, per_query: bool = False) -> list[float]:
    """Per-sample latencies (s) from LoadGen's trace: each ``Sample`` begin event's
    ``complete_ns`` (scheduled issue to completion). ``per_query``: one per query, its
    slowest sample (MultiStream: LoadGen's query latency)."""
    if not per_query:
        return [int(m.group(2)) / 1e9 for m in _SAMPLE.finditer(text)]
    by_q: dict[int, int] = {}
    for m in _SAMPLE.finditer(text):
        q, ns = int(m.group(1)), int(m.group(2))
        by_q[q] = max(ns, by_q.get(q, 0))
    return [ns / 1e9 for _, ns in sorted(by_q.items())]


_LINE = re.compile(r"^\s*([^:=]+?)\s*:\s*(.+?)\s*$")


def parse_summary(text: str) -> dict[str, str]:
    """``mlperf_log_summary.txt`` -> {key: value} of its ``key : value`` lines (e.g.
    ``"99.00 percentile latency (ns)": "262894"``, ``"Result is": "VALID"``)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and not line.startswith(("=", " *")):
            out.setdefault(m.group(1), m.group(2))
    return out


def summary_percentile_ms(summary: dict[str, str], pct: float) -> float | None:
    """LoadGen's ``pct`` percentile latency (ms) from a parsed summary (Server and
    Offline: per sample; MultiStream: per query), None when it does not print it."""
    for key in (f"{pct:.2f} percentile latency (ns)", f"{pct:.2f} percentile latency (ns) "):
        if key in summary:
            return int(summary[key]) / 1e6
    return None
