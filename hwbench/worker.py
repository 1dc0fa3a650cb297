"""The worker side: runs one case in its own process and sends back a typed outcome.

Workers are forked from a forkserver that has already imported torch and this module,
so a case costs a fork, not an interpreter start. The worker never outlives the runner:
a thread watches a lifeline pipe and ends the process when the runner's end closes.
"""

from __future__ import annotations

import os
import resource
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch  # noqa: F401  (preloaded in the forkserver: the point of it)
import torch._dynamo  # noqa: F401  (optimizers import it on first construction: ~2 s per case otherwise)

from . import backends, models, timing, workloads
from .spec import Case, Settings


@dataclass
class Outcome:
    """What a worker reports. ``status`` is ``ok``, ``failed`` or ``oom``; the runner
    adds ``timeout`` and deaths by signal itself."""

    status: str
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    raw_times_s: list[list[float]] = field(default_factory=list)
    timestamps: dict[str, float] = field(default_factory=dict)  # time.monotonic() marks


@dataclass
class Progress:
    """A mark sent while a case runs: ``window_start`` / ``window_end`` bound the timed
    region (time.monotonic()) so the runner's collectors can cut their samples."""

    event: str
    t: float


def _watch_lifeline(lifeline) -> None:
    try:
        lifeline.recv()  # blocks until the runner's end closes (or the runner dies)
    except (EOFError, OSError):
        pass
    os._exit(3)


OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")


def classify(exc: BaseException) -> str:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return "oom"
    if isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in OOM_MARKERS):
        return "oom"
    return "failed"


def run_case(
    case: Case, settings: Settings, conn, lifeline, t_launch: float, memory_limit_bytes: int | None, fault: str | None = None
) -> None:
    """Entry point in the forked worker. Sends Progress marks and one Outcome on ``conn``.
    ``fault`` (tests only) names a fault to inject: raise, hang, segfault, oom, exit."""
    t_start = time.monotonic()
    # The runner owns Ctrl-C: it decides whether to let this case finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_lifeline, args=(lifeline,), daemon=True).start()
    if memory_limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    try:
        if fault:
            _inject_fault(fault)
        out = _run(case, settings, conn, t_launch, t_start)
    except BaseException as e:  # noqa: BLE001 - every failure becomes a record
        status = classify(e)
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        out = Outcome(status, reason=tb[:2000])
        if os.environ.get("HWBENCH_DEBUG"):
            out.reason += "\n" + traceback.format_exc()
    try:
        conn.send(out)
    finally:
        conn.close()


def _run(case: Case, settings: Settings, conn, t_launch: float, t_start: float) -> Outcome:
    fam, size = models.get(case.model)
    cfg = fam.sizes[size]
    if case.threads is not None:
        torch.set_num_threads(case.threads)
    dev_info = backends.resolve_device(case.device, backends.devices_present())
    device = torch.device(dev_info.name if dev_info else case.device)
    torch.manual_seed(settings.seed)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.cuda.reset_peak_memory_stats(device)
    model = fam.build(cfg)
    prep = backends.prepare(model, case, device, fam.float_inputs)
    inputs, targets = fam.make_batch(cfg, case.batch_size, case.shape, device, prep.input_dtype)
    prep.model = backends.compile_model(prep.model, case)
    step = workloads.make_step(case.mode, prep, fam.loss, inputs, targets)
    timer = timing.Timer(device)
    timer.sync()
    t_ready = time.monotonic()
    marks: dict[str, float] = {}

    def first_timed():
        marks["first_timed"] = time.monotonic()
        conn.send(Progress("window_start", marks["first_timed"]))

    m = timing.measure(
        step,
        timer,
        warmup_iters=settings.warmup_iters,
        warmup_s=settings.warmup_s,
        # energy needs a window the counters can resolve (settings.min_energy_window_s)
        min_time_s=max(settings.min_time_s, settings.min_energy_window_s / settings.repeats),
        min_iters=settings.min_iters,
        max_iters=settings.max_iters,
        repeats=settings.repeats,
        on_first_timed=first_timed,
    )
    conn.send(Progress("window_end", m.window_end))
    stats = timing.latency_stats_ms(m.raw_times_s)
    flops = fam.flops_per_sample(size, case.mode, case.shape)
    median_s = stats["latency_ms_p50"] / 1e3
    metrics: dict[str, Any] = {
        **stats,
        "throughput_samples_per_s": case.batch_size / median_s if median_s > 0 else None,
        "first_iter_ms": m.first_iter_s * 1e3,
        "warmup_s": m.warmup_s,
        "params": fam.param_count(cfg),
        "flops_per_sample": flops,
        "achieved_tflops": flops * case.batch_size / median_s / 1e12 if median_s > 0 else None,
        "measured_s": m.window_end - m.window_start,
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
    }
    if device.type == "cuda":
        metrics["memory_peak_bytes"] = torch.cuda.max_memory_allocated(device)
        metrics["memory_reserved_peak_bytes"] = torch.cuda.max_memory_reserved(device)
    metrics["host_rss_peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return Outcome(
        "ok",
        metrics=metrics,
        raw_times_s=[list(r) for r in m.raw_times_s],
        timestamps={"launch": t_launch, "worker_start": t_start, "ready": t_ready, **marks, "window_end": m.window_end},
    )


def _inject_fault(kind: str) -> None:
    """Faults the tests inject into a real worker process (see Runner.fault_for)."""
    if kind == "raise":
        raise RuntimeError("injected failure")
    if kind == "hang":
        time.sleep(3600)
    if kind == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "oom":
        hog = []
        while True:
            hog.append(bytearray(256 * 1024 * 1024))
    if kind == "exit":
        os._exit(7)
