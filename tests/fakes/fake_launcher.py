"""An in-process stand-in for :class:`hwbench.launch.ProcessLauncher` (as pyperf's
InProcessManager stands in for its worker processes): no fork, no torch. Each case is
answered at once with a typed :class:`hwbench.worker.Outcome` whose numbers follow from
the case, so tests of the runner's scheduling (order, saving after each case, resume,
process-isolated repeats, auto batch, signals) know every answer in advance.

The runner's fault injection (``run_suite(fault="glob=kind")``) is honoured the way a
real worker honours it: ``raise`` fails the case, ``oom`` is out of memory, ``segfault``
and ``exit`` are deaths, ``hang`` waits until the runner abandons the case or its
``timeout_s`` passes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from hwbench.launch import CaseRun, WorkerJob
from hwbench.records import BatchLimit, Facts, Measurement

STEP_S = 0.001  # the fake step time of a batch of one, seconds


@dataclass(frozen=True)
class Mark:
    """What a worker's progress message looks like to the runner (event, time)."""

    event: str
    t: float


def step_s(case) -> float:
    """The fake time of one step of ``case``: STEP_S per sample."""
    return STEP_S * (case.batch_size or 1)


@dataclass
class FakeLauncher:
    """``batch_limit``: what every batch-limit search finds (None: the search fails).
    ``before_case(job)``: called as each worker starts (a test sends itself a signal
    there, or reads the results file). ``jobs`` / ``groups``: what was asked, in order."""

    batch_limit: int | None = 8
    before_case: Callable[[WorkerJob], None] | None = None
    jobs: list[WorkerJob] = field(default_factory=list)
    groups: list[Any] = field(default_factory=list)
    starts: int = 0

    def prestart(self) -> None:
        pass

    def start(self) -> float:
        self.starts += 1
        return 0.0

    def run_worker(self, job: WorkerJob, *, name: str, timeout_s: float, memory_capped_gb: float | None,
                   on_start=lambda pid: None, on_progress=lambda msg: None,
                   should_abandon=lambda: None) -> CaseRun:
        from hwbench.worker import Outcome

        self.jobs.append(job)
        launch = time.monotonic()
        on_start(os.getpid())
        if self.before_case is not None:
            self.before_case(job)
        if job.fault == "hang":
            return self._hang(launch, timeout_s, should_abandon)
        if job.fault in ("segfault", "exit"):
            why = "worker killed by signal SIGSEGV" if job.fault == "segfault" else \
                "worker exited with code 7 before reporting a result"
            return CaseRun("failed", why, launch=launch, end=time.monotonic())
        if job.fault in ("raise", "oom"):
            status, reason = ("failed", "RuntimeError: injected failure") if job.fault == "raise" else \
                ("oom", "MemoryError: injected allocation failure")
            return CaseRun(status, reason, Outcome(status, reason), launch=launch, end=time.monotonic())
        if job.probe:
            if self.batch_limit is None:
                return CaseRun("oom", "out of memory at batch size 1", launch=launch, end=time.monotonic())
            info = BatchLimit(batch_limit=self.batch_limit, limited_by="the fake's limit")
            return CaseRun("ok", "", Outcome("ok", batch_limit=info), launch=launch, end=time.monotonic())
        out = self._outcome(job.case, job.settings, launch, on_progress)
        return CaseRun("ok", "", out, window=(out.timestamps["first_timed"], out.timestamps["window_end"]),
                       launch=launch, end=time.monotonic())

    def run_group(self, case, settings, *, on_start=lambda pid: None, should_abandon=lambda: None,
                  **kw) -> CaseRun:
        self.groups.append(case)
        launch = time.monotonic()
        on_start(os.getpid())
        out = self._outcome(case, settings, launch, lambda msg: None)
        return CaseRun("ok", "", out, window=(out.timestamps["first_timed"], out.timestamps["window_end"]),
                       launch=launch, end=time.monotonic())

    @staticmethod
    def _hang(launch: float, timeout_s: float, should_abandon) -> CaseRun:
        while time.monotonic() < launch + timeout_s:
            why = should_abandon()
            if why:
                return CaseRun("abandoned", why, launch=launch, end=time.monotonic())
            time.sleep(0.01)
        return CaseRun("timeout", f"no result within timeout_s = {timeout_s:g} s; worker killed",
                       launch=launch, end=time.monotonic())

    @staticmethod
    def _outcome(case, settings, launch: float, on_progress):
        """An ok outcome: ``settings.repeats`` lists of ``settings.min_iters`` steps of
        :func:`step_s`, timestamps in the launcher's clock, window marks sent."""
        from hwbench.worker import Outcome

        step = step_s(case)
        n = max(settings.min_iters, 1)
        t0 = time.monotonic()
        on_progress(Mark("window_start", t0))
        on_progress(Mark("window_end", t0 + 1e-6))
        m = Measurement(raw_times_s=[[step] * n for _ in range(settings.repeats)], first_iter_s=step,
                        warmup_s=step, measured_s=step * n * settings.repeats)
        facts = Facts(params=1000, flops_per_sample=2000.0)
        ts = {"launch": launch, "worker_start": launch, "ready": t0, "first_timed": t0, "window_end": t0 + 1e-6}
        return Outcome("ok", measurement=m, facts=facts, timestamps=ts)
