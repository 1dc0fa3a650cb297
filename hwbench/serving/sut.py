"""The system under test for MLPerf LoadGen: a dynamic batcher on its own thread.

LoadGen (``mlperf_loadgen``) owns the arrival times and measures every query's latency
from its scheduled issue to ``QuerySamplesComplete``; this SUT only answers. Queries go
into a queue; the batcher thread takes up to ``max_batch`` samples, waiting at most
``max_batch_wait_s`` after the oldest queued one for more to arrive (Server only: in the
other scenarios every sample LoadGen will issue before it waits is already queued, so a
wait would only add latency), runs one forward pass of that many samples, and completes
them together.

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
from typing import Callable

LG_SCENARIO = {"single_stream": "SingleStream", "multi_stream": "MultiStream", "server": "Server",
               "offline": "Offline"}
QSL_SIZE = 1024  # samples LoadGen's query sample library reports (inputs are a fixed batch)


class BatchingSUT:
    """The batcher (module docstring). ``forward(n)`` runs one forward pass of ``n``
    samples and returns when its results are ready (device synchronised)."""

    def __init__(self, lg, forward: Callable[[int], None], max_batch: int, max_batch_wait_s: float):
        self.lg, self.forward, self.max_batch, self.wait_s = lg, forward, max_batch, max_batch_wait_s
        self.queue: deque = deque()
        self.cv = threading.Condition()
        self.done = False
        self.error: BaseException | None = None
        self.batches: list[int] = []
        self.batch_times_s: list[float] = []
        self.completed: list[tuple[list[tuple[int, int]], int]] = []  # (batch of (id, issue ns), done ns)
        self.thread = threading.Thread(target=self._loop, name="hwbench-sut", daemon=True)
        self.thread.start()

    def issue(self, samples) -> None:
        t = time.monotonic_ns()
        with self.cv:
            for s in samples:
                self.queue.append((s.id, t))
            self.cv.notify()

    def flush(self) -> None:
        pass

    def _take(self) -> list[tuple[int, int]]:
        with self.cv:
            while not self.queue and not self.done:
                self.cv.wait(0.05)
            if self.done and not self.queue:
                return []
            if self.wait_s > 0:
                deadline = self.queue[0][1] / 1e9 + self.wait_s
                while len(self.queue) < self.max_batch and not self.done:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.cv.wait(left)
            n = min(self.max_batch, len(self.queue))
            return [self.queue.popleft() for _ in range(n)]

    def _loop(self) -> None:
        lg = self.lg
        response = lg.QuerySampleResponse
        while True:
            batch = self._take()
            if not batch:
                return
            try:
                if self.error is None:
                    t0 = time.perf_counter()
                    self.forward(len(batch))
                    self.batch_times_s.append(time.perf_counter() - t0)
                    self.batches.append(len(batch))
            except BaseException as e:  # noqa: BLE001 - reported by run_test; LoadGen still needs answers
                self.error = e
            self.completed.append((batch, time.monotonic_ns()))
            lg.QuerySamplesComplete([response(qid, 0, 0) for qid, _ in batch])

    def stop(self) -> None:
        with self.cv:
            self.done = True
            self.cv.notify()
        self.thread.join(timeout=10)


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


def run_test(scenario: str, forward: Callable[[int], None], *, max_batch: int, max_batch_wait_s: float,
             outdir: str | Path, duration_s: float, min_queries: int, target_qps: float | None = None,
             slo_ms: float | None = None, pct: float = 99.0, expected_qps: float = 1000.0) -> TestRun:
    """Run one LoadGen test of ``scenario`` (PerformanceOnly) against a
    :class:`BatchingSUT` around ``forward``; logs go to ``outdir``."""
    import mlperf_loadgen as lg

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    trace = scenario != "offline"
    sut = BatchingSUT(lg, forward, max_batch, max_batch_wait_s if scenario == "server" else 0.0)
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
        raise RuntimeError(f"the SUT failed during the LoadGen test: {sut.error}") from sut.error
    summary = parse_summary((outdir / "mlperf_log_summary.txt").read_text(encoding="utf-8", errors="replace"))
    if trace:
        tr = outdir / "mlperf_log_trace.json"
        lat = trace_latencies_s(tr.read_text(encoding="utf-8", errors="replace"), per_query=scenario == "multi_stream")
        os.unlink(tr)
    else:
        lat = [(done - t) / 1e9 for batch, done in sut.completed for _, t in batch]
    with _suppress():
        os.unlink(outdir / "mlperf_log_trace.json")
    window = ((sut.completed[-1][1] - min(t for _, t in sut.completed[0][0])) / 1e9) if sut.completed else 0.0
    return TestRun(lat, summary, str(outdir), elapsed, sut.batches, sut.batch_times_s, window)


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
