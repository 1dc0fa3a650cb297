"""The worker: one case in its own process, forked from the forkserver.

Stages: set up the device, build the model and inputs, build the fp32 reference (true
fp32), apply precision / variant / backend, time the step, measure the accuracy cost,
gather facts. It sends :class:`Progress` marks (the timed window's edges, for the
runner's collectors) and one :class:`Outcome` holding raw data only (records.py types);
statistics are derived later, at load. A thread watches a lifeline pipe and ends the
process when the runner's end closes.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import resource
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any

import torch  # noqa: F401  (preloaded in the forkserver: the point of it)
import torch._dynamo  # noqa: F401  (optimizers import it on first construction: ~2 s per case otherwise)

from . import backends, devices, models, precisions, serving, timing, variants, workloads
from . import flops as flops_mod
from .case import Case
from .records import Accuracy, BatchLimit, Facts, Flag, Measurement
from .spec import Settings


@dataclass(frozen=True)
class Outcome:
    """What a worker reports. ``status`` is ``ok``, ``failed`` or ``oom``; the launcher
    adds ``timeout`` and deaths by signal itself. Raw data only."""

    status: str
    reason: str = ""
    measurement: Measurement | None = None
    facts: Facts | None = None
    flags: tuple[Flag, ...] = ()
    timestamps: dict[str, float] = field(default_factory=dict)  # time.monotonic() marks
    batch_limit: BatchLimit | None = None


@dataclass(frozen=True)
class Target:
    """Where a case runs, as the runner resolved it: ``device`` ("cuda:0", "cpu") and
    the device's model name."""

    device: str
    model: str


@dataclass(frozen=True)
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
    from .io import scratch  # a data / checkpoint case's files: the worker is going, they go too

    scratch.remove_open()
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


def cap_memory(limit_bytes: int | None, device: str) -> None:
    """Cap the worker's address space (RLIMIT_AS) where the device's kind allows it
    (the CPU). Never for GPU workers: their runtimes reserve far more address space
    than memory and fail to initialise under the cap; their device memory is capped
    through the allocator instead (in _setup, ``Accelerator.set_device``)."""
    global _memory_capped
    if limit_bytes and devices.of(device).caps_address_space:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
        _memory_capped = True


def _entry(body, conn, lifeline, memory_limit_bytes: int | None, device: str, fault: str | None) -> None:
    """What every worker entry point does around its ``body``: leave Ctrl-C and SIGTERM
    to the runner (it decides whether the case may finish), die with the runner, cap
    memory, turn every failure into an Outcome, and send it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_watch_lifeline, args=(lifeline,), daemon=True).start()
    cap_memory(memory_limit_bytes, device)
    try:
        if fault:
            inject_fault(fault)
        out = body()
    except BaseException as e:  # noqa: BLE001 - every failure becomes a record
        reason = traceback.format_exception_only(type(e), e)[-1].strip()[:2000]
        if os.environ.get("HWBENCH_DEBUG"):
            reason += "\n" + traceback.format_exc()
        out = Outcome(classify(e), reason=reason)
    try:
        conn.send(out)
    finally:
        conn.close()


def run_case(case: Case, settings: Settings, target: Target, memory_limit_bytes: int | None, fault: str | None,
             conn, lifeline, t_launch: float) -> None:
    """Entry point in the forked worker. Sends Progress marks and one Outcome on ``conn``.
    ``target`` is the device the runner resolved when it planned the run. ``fault``
    (tests only) names a fault to inject: raise, hang, segfault, oom, exit."""
    t_start = time.monotonic()
    _entry(lambda: _run(case, settings, target, conn, t_launch, t_start, memory_limit_bytes),
           conn, lifeline, memory_limit_bytes, target.device, fault)


def _setup(case: Case, target: Target, memory_limit_bytes: int | None = None):
    """Model family, config, torch device; intra-op threads set; device memory capped.
    The device was resolved once by the runner: workers do not probe the hardware again."""
    fam, size = models.get(case.model)
    cfg = fam.sizes[size]
    if case.threads is not None:
        torch.set_num_threads(case.threads)
    acc = devices.of(target.device)
    device = acc.torch_device(target.device)
    devices.bind(device, acc)
    acc.set_device(device, memory_limit_bytes)
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


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def deviation(out: torch.Tensor, ref: torch.Tensor, compared: str) -> tuple[Accuracy, list[Flag]]:
    """Output deviation from the fp32 eager reference: max |a - b| and ||a - b|| / ||b||.
    A non-finite deviation (the case's output overflowed) is stored empty and flagged."""
    diff = (out - ref).float()
    mx = diff.abs().max().item()
    rel = (diff.norm() / ref.float().norm().clamp(min=1e-30)).item()
    flags = []
    if not (math.isfinite(mx) and math.isfinite(rel)):
        flags.append(Flag(flag="accuracy_nonfinite", detail="the case's output has inf or NaN where the fp32 reference has none"))
    return Accuracy(max_abs_error=_finite(mx), rel_l2_error=_finite(rel), accuracy_model=compared), flags


def is_reference(case: Case) -> bool:
    return case.precision == "fp32" and case.backend == "eager" and case.variant == "none"


def rss_peak_bytes() -> int:
    """The worker's lifetime peak resident memory. ru_maxrss is KiB on Linux, bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _run(case: Case, settings: Settings, target: Target, conn, t_launch: float, t_start: float,
         memory_limit_bytes: int | None = None) -> Outcome:
    """The stages of one case (module docstring); the timed loop is :func:`_measure`."""
    fam, size, cfg, device = _setup(case, target, memory_limit_bytes)
    if case.mode in ("data", "checkpoint"):  # hwbench.io: the input pipeline, checkpoint save and load
        return _run_io(case, settings, fam, cfg, device, conn, {"launch": t_launch, "worker_start": t_start})
    if serving.is_serving(case):  # LoadGen scenarios, generation under load (hwbench.serving)
        from .serving import run as serve

        s = serve.run(case, settings, fam, size, cfg, device, lambda ev, t: conn.send(Progress(ev, t)))
        return Outcome("ok", measurement=s.measurement, facts=Facts(**s.facts, host_rss_peak_bytes=rss_peak_bytes()),
                       timestamps={"launch": t_launch, "worker_start": t_start, **s.marks})
    torch.manual_seed(settings.seed)
    model = fam.build(cfg)
    inputs, targets = _batch(fam, cfg, case, case.batch_size, device, settings.seed)
    ref = _reference(fam, cfg, case, settings, device, inputs)
    prep = backends.prepare(model, case, device, fam.float_inputs)
    if fam.float_inputs:
        inputs = inputs.to(prep.input_dtype)
    accuracy, flags = None, []
    if ref is not None and case.mode == "train":
        # training changes the weights while it is timed: compare before, on the eager
        # forward (so a compile backend's own numerics are not part of this figure)
        accuracy, flags = deviation(_forward(prep.model, inputs, prep.autocast, case.mode).cpu(), ref, "eager")
        ref = None
    # the peak from here on: the case itself, not the fp32 reference built above
    devices.of_torch(device).reset_peak_memory(device)
    eager = prep.model
    prep.model = backends.compile_model(prep.model, case, settings.compile_mode)
    student = _student(case, settings, device, fam.float_inputs)  # distill:<size> variants only
    if student is not None:
        student_eager, student.model = student.model, backends.compile_model(student.model, case, settings.compile_mode)
    timer = timing.Timer(device)
    gen_times: list[tuple[float, float]] = []

    def make_step(sync=lambda: None, gen_times=None):
        if student is not None:
            return workloads.make_distill_step(prep, student, fam.loss, inputs, targets,
                                               alpha=settings.distill_alpha, temperature=settings.distill_temperature)
        return workloads.make_step(case.mode, prep, fam.loss, inputs, targets, gen_tokens=case.gen_tokens,
                                   sync=sync, gen_times=gen_times)

    m, marks, router_counts = _measure(case, settings, make_step(timer.sync, gen_times), timer, eager, conn)
    late = [Flag(flag="compiled_in_window", detail=(
        f"{m.compiles_in_window} torch.compile compilation(s) during the timed iterations: those include "
        "compile time; the model keeps recompiling (see TORCH_LOGS=recompiles)"))] if m.compiles_in_window else []
    if ref is not None:
        # inference leaves the weights as they were: compare the model exactly as timed
        # (compiled, where the backend compiles), after timing so the first timed call
        # really was the first
        out = _forward(prep.model, inputs, prep.autocast, case.mode).cpu()
        accuracy, flags = deviation(out, ref, "compiled" if prep.model is not eager else "eager")
        del out, ref
    facts = _facts(fam, size, cfg, case, device, student, prep, accuracy, router_counts)
    if settings.count_flops:
        # after timing (so the first timed iteration really is the first), on the
        # eager model: the counter sees every matmul and convolution dispatched
        prep.model = eager
        if student is not None:
            student.model = student_eager
        counted, why = flops_mod.count_checked(make_step(), eager)
        facts["flops_per_sample_counted"] = counted / case.batch_size if counted else None
        facts["flops_counted_reason"] = why if not counted else None
    else:
        facts["flops_counted_reason"] = "count_flops = false in the suite"
    return Outcome(
        "ok",
        measurement=_measurement(case, m, gen_times),
        facts=Facts(**facts),
        flags=tuple(flags) + tuple(late),
        timestamps={"launch": t_launch, "worker_start": t_start, **marks, "window_end": m.window_end},
    )


def _run_io(case: Case, settings: Settings, fam, cfg, device, conn, stamps: dict[str, float]) -> Outcome:
    """A data or checkpoint case (:mod:`hwbench.io`): timed there, recorded here."""
    from .io import cases

    timer, marks = timing.Timer(device), {}

    def measure(step, hook):
        m, got, _ = _measure(case, settings, step, timer, None, conn, hook)
        marks.update(got)
        return m

    m, io_facts, flags = cases.run(case, settings, fam, cfg, device, measure,
                                   lambda event, t: conn.send(Progress(event, t)))
    facts = Facts(params=fam.param_count(cfg), flops_per_sample=0.0, host_rss_peak_bytes=rss_peak_bytes(),
                  threads_used=torch.get_num_threads() if devices.of_torch(device).host_threads() else None,
                  **io_facts)
    return Outcome("ok", measurement=_measurement(case, m, []), facts=facts,
                   flags=tuple(Flag(flag=f, detail=d) for f, d in flags),
                   timestamps={**stamps, "ready": m.window_start - m.warmup_s, "first_timed": m.window_start,
                               **marks, "window_end": m.window_end})


def _reference(fam, cfg, case: Case, settings: Settings, device, inputs):
    """The fp32 eager reference output the case is compared with (None where accuracy
    is not checked, or the case is the reference)."""
    if not settings.check_accuracy or is_reference(case):
        return None
    torch.manual_seed(settings.seed)
    # true fp32 (TF32 off for matmuls and convolutions), kept on the host while the
    # case is timed: it must not count as device memory
    with precisions.true_fp32():
        ref = _forward(fam.build(cfg).to(device), inputs, contextlib.nullcontext, case.mode).cpu()
    _free(device)
    return ref


def _measure(case: Case, settings: Settings, step, timer, eager, conn, hook=None):
    """The timed loop (:func:`hwbench.timing.measure`) with the window's edges sent to
    the runner and MoE router counts taken over the timed iterations only. Returns
    (timing.Measurement, the ``ready`` / ``first_timed`` marks, router counts or None)."""
    compiles = backends.compile_counter() if case.backend != "eager" else None
    routed = isinstance(eager, models.RoutedModel)
    if routed:
        eager.reset_router_counts()  # from here on (warmup included); re-zeroed at the first timed iteration
    timer.sync()
    marks: dict[str, float] = {"ready": time.monotonic()}

    def first_timed():
        if routed:
            eager.reset_router_counts()  # before the window's first iteration: count the timed ones only
        if hook is not None:
            hook()
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
        compiles=compiles,
        max_recompile_steps=backends.MAX_RECOMPILE_STEPS,
    )
    conn.send(Progress("window_end", m.window_end))
    return m, marks, (eager.router_counts() if routed else None)


def _measurement(case: Case, m, gen_times: list[tuple[float, float]]) -> Measurement:
    """The record of the timed loop; for generate, the timed steps' time to first token
    and decode times."""
    n_timed = sum(len(r) for r in m.raw_times_s)
    timed_gen = gen_times[-n_timed:] if case.mode == "generate" else []
    return Measurement(
        raw_times_s=[list(r) for r in m.raw_times_s],
        first_iter_s=m.first_iter_s,
        warmup_s=m.warmup_s,
        measured_s=m.window_end - m.window_start,
        ttft_s=[t for t, _ in timed_gen] or None,
        decode_s=[d for _, d in timed_gen] or None,
    )


def _facts(fam, size, cfg, case: Case, device, student, prep, accuracy, router_counts) -> dict[str, Any]:
    """The case's facts (records.Facts fields): parameters, FLOP per sample (a distilled
    case: teacher forward + student training), threads, accuracy, memory peaks."""
    if case.mode == "generate":
        flops = fam.flops_generate(cfg, case.seq_len, case.gen_tokens)
    else:
        flops = fam.flops_per_sample(size, case.mode, case.shape)
    facts: dict[str, Any] = {"active_params": fam.active_params(cfg), "router_tokens_per_expert": router_counts}
    if student is not None:
        # the step: teacher forward (the case's model) + student training
        s_name = variants.student_of(case.model, case.variant)
        s_fam, s_size = models.get(s_name)
        flops = fam.flops_per_sample(size, "infer", case.shape) + s_fam.flops_per_sample(s_size, "train", case.shape)
        facts.update(student_model=s_name, student_params=s_fam.param_count(s_fam.sizes[s_size]))
    facts.update({
        "params": fam.param_count(cfg),
        "flops_per_sample": flops,
        "threads_used": torch.get_num_threads() if devices.of_torch(device).host_threads() else None,
        "accuracy": accuracy,
        "changes": prep.changes or {},
        "host_rss_peak_bytes": rss_peak_bytes(),
    })
    facts.update(devices.of_torch(device).memory_peaks(device))
    return facts


def _student(case: Case, settings: Settings, device, float_inputs: bool):
    """For a ``distill:<size>`` case: the student (same family, that size) built from the
    seed, in the case's precision (eager; the caller applies the backend); else None."""
    name = variants.student_of(case.model, case.variant)
    if name is None:
        return None
    s_fam, s_size = models.get(name)
    torch.manual_seed(settings.seed)
    s_case = replace(case, model=name, variant="none")
    return backends.prepare(s_fam.build(s_fam.sizes[s_size]), s_case, device, float_inputs)


def _free(device) -> None:
    gc.collect()
    devices.of_torch(device).empty_cache()


def probe_batch(case: Case, settings: Settings, target: Target, memory_limit_bytes: int | None, fault: str | None,
                conn, lifeline, t_launch: float) -> None:
    """Entry point for batch_sizes = ["auto"]: find the largest batch for which one step
    of ``case`` (eager) fits in memory. Doubles from 1 until a step runs out of memory
    or max_batch_size is reached, then bisects between the last fit and the first
    failure. Memory is freed between tries. Sends an Outcome with ``batch_limit``."""
    _entry(lambda: _probe(case, settings, target, memory_limit_bytes), conn, lifeline, memory_limit_bytes,
           target.device, fault)


# Stop growing the batch once one step takes this long (CPU runs would otherwise take
# hours before memory runs out).
PROBE_STEP_LIMIT_S = 10.0


def _probe(case: Case, settings: Settings, target: Target, memory_limit_bytes: int | None = None) -> Outcome:
    fam, size, cfg, device = _setup(case, target, memory_limit_bytes)
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
    return Outcome("ok", batch_limit=BatchLimit(batch_limit=ok, limited_by=stop, tries=tries))


def inject_fault(kind: str) -> None:
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
