"""The worker side: runs one case in its own process and sends back a typed outcome.

Workers are forked from a forkserver that has already imported torch and this module,
so a case costs a fork, not an interpreter start. The worker never outlives the runner:
a thread watches a lifeline pipe and ends the process when the runner's end closes.
"""

from __future__ import annotations

import contextlib
import gc
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

from . import backends, models, peaks, timing, workloads
from . import flops as flops_mod
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


@dataclass(frozen=True)
class Target:
    """Where a case runs, as the runner resolved it: ``device`` ("cuda:0", "cpu") and
    the device's model name (for the peak-throughput table)."""

    device: str
    model: str


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


# oneDNN's only message when it cannot allocate a primitive's workspace; other causes
# exist, so it means oom only where the worker runs under memory_limit_gb.
ONEDNN_ALLOC = "could not create a primitive"
_memory_capped = False


def classify(exc: BaseException) -> str:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return "oom"
    if isinstance(exc, RuntimeError):
        msg = str(exc).lower()
        if any(m in msg for m in OOM_MARKERS) or (_memory_capped and ONEDNN_ALLOC in msg):
            return "oom"
    return "failed"


def _cap_memory(limit_bytes: int | None) -> None:
    global _memory_capped
    if limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
        _memory_capped = True


def _entry(body, conn, lifeline, memory_limit_bytes: int | None, fault: str | None) -> None:
    """What every worker entry point does around its ``body``: leave Ctrl-C to the
    runner (it decides whether the case may finish), die with the runner, cap memory,
    turn every failure into an Outcome, and send it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_lifeline, args=(lifeline,), daemon=True).start()
    _cap_memory(memory_limit_bytes)
    try:
        if fault:
            _inject_fault(fault)
        out = body()
    except BaseException as e:  # noqa: BLE001 - every failure becomes a record
        out = Outcome(classify(e), reason=traceback.format_exception_only(type(e), e)[-1].strip()[:2000])
        if os.environ.get("HWBENCH_DEBUG"):
            out.reason += "\n" + traceback.format_exc()
    try:
        conn.send(out)
    finally:
        conn.close()


def run_case(
    case: Case, settings: Settings, target: Target, conn, lifeline, t_launch: float, memory_limit_bytes: int | None,
    fault: str | None = None,
) -> None:
    """Entry point in the forked worker. Sends Progress marks and one Outcome on ``conn``.
    ``target`` is the device the runner resolved when it planned the run.
    ``fault`` (tests only) names a fault to inject: raise, hang, segfault, oom, exit."""
    t_start = time.monotonic()
    _entry(lambda: _run(case, settings, target, conn, t_launch, t_start), conn, lifeline, memory_limit_bytes, fault)


def _setup(case: Case, target: Target):
    """Model family, config, torch device; intra-op threads set. The device was
    resolved once by the runner: workers do not probe the hardware again."""
    fam, size = models.get(case.model)
    cfg = fam.sizes[size]
    if case.threads is not None:
        torch.set_num_threads(case.threads)
    device = torch.device(target.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return fam, size, cfg, device


def _batch(fam, cfg, case: Case, batch: int, device, seed: int):
    """Inputs in fp32 (ids stay integer) from their own seed, so every precision and
    variant of a case sees the same values."""
    torch.manual_seed(seed + 1)
    return fam.make_batch(cfg, batch, case.shape, device, torch.float32)


def _forward(model, inputs, autocast, mode: str):
    """The output compared for accuracy: logits of a forward pass (for generate, the
    prefill's last-position logits)."""
    model.eval()
    with torch.inference_mode(), autocast():
        if mode == "generate":
            return model(inputs, cache=[], last_only=True)[0][:, -1].float()
        out = model(inputs)
        return out.float()


def deviation(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Output deviation from the fp32 eager reference: max |a - b| and ||a - b|| / ||b||."""
    diff = (out - ref).float()
    return {
        "max_abs_error": diff.abs().max().item(),
        "rel_l2_error": (diff.norm() / ref.float().norm().clamp(min=1e-30)).item(),
    }


def is_reference(case: Case) -> bool:
    return case.precision == "fp32" and case.backend == "eager" and case.variant == "none"


def _run(case: Case, settings: Settings, target: Target, conn, t_launch: float, t_start: float) -> Outcome:
    fam, size, cfg, device = _setup(case, target)
    torch.manual_seed(settings.seed)
    model = fam.build(cfg)
    inputs, targets = _batch(fam, cfg, case, case.batch_size, device, settings.seed)
    ref = None
    if settings.check_accuracy and not is_reference(case):
        torch.manual_seed(settings.seed)
        # kept on the host while the case is timed: it must not count as device memory
        ref = _forward(fam.build(cfg).to(device), inputs, contextlib.nullcontext, case.mode).cpu()
        _free(device)
    prep = backends.prepare(model, case, device, fam.float_inputs)
    if fam.float_inputs:
        inputs = inputs.to(prep.input_dtype)
    accuracy: dict[str, Any] = {}
    if ref is not None and case.mode == "train":
        # training changes the weights while it is timed: compare before, on the eager
        # forward (so a compile backend's own numerics are not part of this figure)
        accuracy = {**deviation(_forward(prep.model, inputs, prep.autocast, case.mode).cpu(), ref), "accuracy_model": "eager"}
        ref = None
    if device.type == "cuda":
        # the peak from here on: the case itself, not the fp32 reference built above
        torch.cuda.reset_peak_memory_stats(device)
    eager = prep.model
    prep.model = backends.compile_model(prep.model, case, settings.compile_mode)
    timer = timing.Timer(device)
    ttft: list[float] = []
    step = workloads.make_step(case.mode, prep, fam.loss, inputs, targets, gen_tokens=case.gen_tokens,
                               sync=timer.sync, ttft_s=ttft)
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
    if ref is not None:
        # inference leaves the weights as they were: compare the model exactly as timed
        # (compiled, where the backend compiles), after timing so the first timed call
        # really was the first
        out = _forward(prep.model, inputs, prep.autocast, case.mode).cpu()
        accuracy = {**deviation(out, ref), "accuracy_model": "compiled" if prep.model is not eager else "eager"}
        del out, ref
    metrics: dict[str, Any] = dict(timing.latency_stats_ms(m.raw_times_s))
    median_s = metrics["latency_ms_p50"] / 1e3
    bs = case.batch_size
    if case.mode == "generate":
        flops = fam.extra["flops_generate"](cfg, case.seq_len, case.gen_tokens)
        n_timed = sum(len(r) for r in m.raw_times_s)
        first_ms = [t * 1e3 for t in ttft[-n_timed:]]  # the timed iterations' TTFTs
        ttft_ms = timing.percentile(first_ms, 50) if first_ms else None
        metrics.update({
            "ttft_ms_p50": ttft_ms,
            "ttft_ms_p90": timing.percentile(first_ms, 90) if first_ms else None,
            "tpot_ms_p50": (metrics["latency_ms_p50"] - ttft_ms) / (case.gen_tokens - 1) if case.gen_tokens > 1 and ttft_ms else None,
            "tokens_per_s": bs * case.gen_tokens / median_s if median_s > 0 else None,
        })
    else:
        flops = fam.flops_per_sample(size, case.mode, case.shape)
    achieved = flops * bs / median_s / 1e12 if median_s > 0 else None
    peak = peaks.peak_tflops(device.type, target.model, case.precision, case.threads or torch.get_num_threads())
    metrics.update({
        "throughput_samples_per_s": bs / median_s if median_s > 0 else None,
        "first_iter_ms": m.first_iter_s * 1e3,
        "warmup_s": m.warmup_s,
        "params": fam.param_count(cfg),
        "flops_per_sample": flops,
        "achieved_tflops": achieved,
        "peak_tflops": peak,
        "mfu": achieved / peak if achieved and peak else None,
        "measured_s": m.window_end - m.window_start,
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        **accuracy,
        **(prep.changes or {}),
    })
    if case.backend != "eager":
        # the first call traces and compiles: that is the compile time
        metrics["compile_s"] = m.first_iter_s
    if device.type == "cuda":
        metrics["memory_peak_bytes"] = torch.cuda.max_memory_allocated(device)
        metrics["memory_reserved_peak_bytes"] = torch.cuda.max_memory_reserved(device)
    metrics["host_rss_peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if settings.count_flops:
        # after timing (so the first timed iteration really is the first), on the
        # eager model: the counter sees every matmul and convolution dispatched
        prep.model = eager
        counted = flops_mod.count(workloads.make_step(case.mode, prep, fam.loss, inputs, targets, gen_tokens=case.gen_tokens))
        metrics["flops_per_sample_counted"] = counted / bs
        metrics["flops_counted_vs_analytic"] = counted / bs / flops if flops else None
    return Outcome(
        "ok",
        metrics=metrics,
        raw_times_s=[list(r) for r in m.raw_times_s],
        timestamps={"launch": t_launch, "worker_start": t_start, "ready": t_ready, **marks, "window_end": m.window_end},
    )


def _free(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def probe_batch(case: Case, settings: Settings, target: Target, conn, lifeline, t_launch: float,
                memory_limit_bytes: int | None, fault: str | None = None) -> None:
    """Entry point for batch_sizes = ["auto"]: find the largest batch for which one step
    of ``case`` (eager) fits in memory. Doubles from 1 until a step runs out of memory
    or max_batch_size is reached, then bisects between the last fit and the first
    failure. Memory is freed between tries. Sends an Outcome whose metrics hold
    ``batch_limit`` and every try."""
    _entry(lambda: _probe(case, settings, target), conn, lifeline, memory_limit_bytes, fault)


# Stop growing the batch once one step takes this long (CPU runs would otherwise take
# hours before memory runs out).
PROBE_STEP_LIMIT_S = 10.0


def _probe(case: Case, settings: Settings, target: Target) -> Outcome:
    fam, size, cfg, device = _setup(case, target)
    torch.manual_seed(settings.seed)
    prep = backends.prepare(fam.build(cfg), case, device, fam.float_inputs)
    timer = timing.Timer(device)
    tries: list[dict[str, Any]] = []

    def fits(bs: int) -> bool:
        inputs = targets = step = None
        try:
            inputs, targets = _batch(fam, cfg, case, bs, device, settings.seed)
            if fam.float_inputs:
                inputs = inputs.to(prep.input_dtype)
            step = workloads.make_step(case.mode, prep, fam.loss, inputs, targets, gen_tokens=case.gen_tokens, sync=timer.sync)
            t0 = time.perf_counter()
            step()
            step()  # a training step allocates optimizer state on its first call
            timer.sync()
            tries.append({"batch_size": bs, "fits": True, "step_s": (time.perf_counter() - t0) / 2})
            return True
        except Exception as e:  # noqa: BLE001
            if classify(e) != "oom":
                raise
            tries.append({"batch_size": bs, "fits": False})
            return False
        finally:
            del inputs, targets, step
            prep.model.zero_grad(set_to_none=True)
            _free(device)

    ok, bad, stop = 0, None, ""
    bs = 1
    while bs <= settings.max_batch_size:
        if not fits(bs):
            bad = bs
            break
        ok = bs
        if tries[-1]["step_s"] > PROBE_STEP_LIMIT_S:
            stop = f"stopped growing: one step took {tries[-1]['step_s']:.1f} s"
            break
        bs *= 2
    else:
        stop = f"reached max_batch_size = {settings.max_batch_size}"
    if ok == 0:
        raise MemoryError("out of memory at batch size 1")
    if bad is not None:
        lo, hi = ok, bad  # lo fits, hi does not
        for _ in range(6):
            if hi - lo <= 1:
                break
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        ok = lo
        stop = stop or f"out of memory at batch size {hi}"
    return Outcome("ok", metrics={"batch_limit": ok, "limited_by": stop, "tries": tries})


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
