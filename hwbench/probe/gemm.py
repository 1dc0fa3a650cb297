"""Achievable GEMM throughput per dtype: a shape search in the manner of the
"maximum achievable matmul FLOPS" finder (Stas Bekman's ML-engineering ``mamf-finder``).

For each dtype: warm the device up until its throughput is steady (a cold GPU boosts to
figures it cannot sustain), then for each candidate shape time single calls of
``A[M,K] @ B[K,N]`` (2*M*N*K FLOPs), each after a write of a buffer twice the last cache
level so no call finds its operands in L2 / LLC. The figure reported for a dtype is the
best shape's *median* call (``tflops_median``); its fastest call (``tflops_best``) is
kept beside it. On CPUs the search runs at several intra-op thread counts.

dtypes and their kernels: fp32 (CUDA: TF32 off), tf32 (fp32 tensors, TF32 on), fp16,
bf16 (``torch.matmul``), fp8 (``torch._scaled_mm``, e4m3 x e4m3 -> bf16, unit scales),
int8 (``torch._int_mm``, int8 x int8 -> int32: TOP/s). A dtype the device lacks is
reported with the reason, not measured.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch

from .. import devices
from . import _timing
from .profile import GemmResult, GemmTrial, Warmup
from .settings import ProbeSettings

Progress = Callable[[str], None]


def unsupported(device: torch.device, dtype: str, cpu_flags: set[str] | frozenset = frozenset()) -> str | None:
    """Why ``dtype`` GEMMs cannot be measured on ``device``, or None (the device's kind
    answers: :meth:`hwbench.devices.Accelerator.gemm_reason`)."""
    return devices.of_torch(device).gemm_reason(dtype, device, cpu_flags)


def slow_on_cpu(dtype: str, cpu_flags: set[str] | frozenset) -> str | None:
    """Why torch's CPU kernel for ``dtype`` is a slow fallback here (searched at small
    shapes), or None where the CPU has native instructions for it."""
    if dtype == "bf16" and not ({"avx512_bf16", "amx_bf16"} & set(cpu_flags)):
        return "no native bf16 (avx512_bf16 / amx_bf16 absent): torch's fallback kernel, searched at small shapes"
    if dtype == "int8" and not ({"avx512_vnni", "avx_vnni", "amx_int8"} & set(cpu_flags)):
        return "no int8 dot-product instructions (VNNI / AMX): torch's fallback kernel, searched at small shapes"
    return None


def make_gemm(device: torch.device, dtype: str, m: int, n: int, k: int) -> Callable[[], object]:
    """A zero-argument call computing one ``[m,k] @ [k,n]`` GEMM of ``dtype`` on ``device``,
    its operands allocated once. TF32 is set for fp32 / tf32 here (see :func:`tf32_mode`)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    if dtype in ("fp32", "tf32", "fp16", "bf16"):
        dt = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        a = torch.randn(m, k, generator=g).to(device=device, dtype=dt)
        b = torch.randn(k, n, generator=g).to(device=device, dtype=dt)
        out = torch.empty(m, n, device=device, dtype=dt)
        return lambda: torch.matmul(a, b, out=out)
    if dtype == "fp8":
        f8 = torch.float8_e4m3fn
        a = torch.randn(m, k, generator=g).to(device=device).to(f8)
        b = torch.randn(n, k, generator=g).to(device=device).to(f8).t()  # column-major, as cuBLASLt wants
        one = torch.ones((), device=device, dtype=torch.float32)
        return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    if dtype == "int8":
        a = torch.randint(-8, 8, (m, k), generator=g, dtype=torch.int8).to(device)
        b = torch.randint(-8, 8, (k, n), generator=g, dtype=torch.int8).to(device)
        fn = lambda: torch._int_mm(a, b)  # noqa: E731
        try:
            fn()
        except RuntimeError:
            bt = b.t().contiguous().t()  # some cuBLASLt versions want a column-major B
            fn = lambda: torch._int_mm(a, bt)  # noqa: E731
        return fn
    raise ValueError(f"unknown GEMM dtype {dtype!r}")


class tf32_mode:
    """Context: CUDA matmuls in TF32 (``on``) or true fp32, restored afterwards."""

    def __init__(self, on: bool):
        self.on = on

    def __enter__(self):
        self.old = (torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision())
        torch.backends.cuda.matmul.allow_tf32 = self.on
        torch.set_float32_matmul_precision("high" if self.on else "highest")

    def __exit__(self, *exc):
        torch.backends.cuda.matmul.allow_tf32 = self.old[0]
        torch.set_float32_matmul_precision(self.old[1])


def warm_up(device: torch.device, fn: Callable[[], object], flops: float, s: ProbeSettings) -> Warmup:
    """Run ``fn`` in windows of ``warmup_window_s`` until at least ``warmup_min_s`` passed
    and the last three windows' throughputs agree within ``warmup_tolerance`` (steady
    clocks), or ``warmup_max_s`` passed (then ``steady`` is False)."""
    t0 = time.perf_counter()
    rates: list[float] = []
    steady = False
    queued = devices.of_torch(device).timer == "events"
    while True:
        w0 = time.perf_counter()
        calls = 0
        while time.perf_counter() - w0 < s.warmup_window_s or calls == 0:
            fn()
            calls += 1
            if queued and calls % 8 == 0:  # bound the queue of asynchronous device work
                _timing.sync(device)
        _timing.sync(device)
        rates.append(flops * calls / (time.perf_counter() - w0) / 1e12)
        elapsed = time.perf_counter() - t0
        last = rates[-3:]
        steady = len(last) == 3 and (max(last) - min(last)) <= s.warmup_tolerance * max(last)
        if (elapsed >= s.warmup_min_s and steady) or elapsed >= s.warmup_max_s:
            break
    return Warmup(duration_s=time.perf_counter() - t0, steady=steady, window_tflops=rates)


def search(device: torch.device, dtype: str, shapes, s: ProbeSettings, flush: Callable[[], None] | None,
           progress: Progress, threads: int | None = None, note: str = "") -> GemmResult:
    """Time every shape of ``shapes`` (ascending sizes) for ``dtype``; the best by median.
    A shape predicted to take more than ``max_call_s`` per call (from the rate of the
    previous one) or that runs out of memory is skipped, with the reason kept."""
    trials: list[GemmTrial] = []
    skipped: list[str] = []
    rate = None  # FLOP/s of the previous shape
    first_error = ""
    for m, n, k in shapes:
        flops = 2.0 * m * n * k
        label = f"{m}x{n}x{k}"
        if rate and flops / rate > s.max_call_s:
            skipped.append(f"{label}: about {flops / rate:.2g} s per call, over the {s.max_call_s:g} s cap")
            continue
        try:
            with tf32_mode(dtype == "tf32") if devices.of_torch(device).probe else _nullctx():
                fn = make_gemm(device, dtype, m, n, k)
                t1 = _timing.one_call_s(device, fn)
                reps = int(min(max(math.ceil(s.shape_time_s / max(t1, 1e-9)), s.min_reps), s.max_reps))
                times = _timing.time_calls(device, fn, reps, flush)
        except torch.OutOfMemoryError:
            skipped.append(f"{label}: out of device memory")
            _free(device)
            continue
        except (RuntimeError, NotImplementedError, TypeError) as e:
            first_error = first_error or str(e).strip().splitlines()[0][:300]
            skipped.append(f"{label}: {first_error}")
            continue
        finally:
            fn = None  # noqa: F841 - free the operands before the next shape
        trial = GemmTrial(m=m, n=n, k=k, reps=len(times.values), median_s=times.median, best_s=times.best,
                          tflops_median=flops / times.median / 1e12, tflops_best=flops / times.best / 1e12)
        trials.append(trial)
        rate = flops / times.median
        where = f" threads={threads}" if threads is not None else ""
        progress(f"gemm {device} {dtype}{where} {label}: {trial.tflops_median:.4g} TFLOP/s (median of {trial.reps})")
    if not trials:
        return GemmResult(dtype=dtype, threads=threads, ok=False, skipped_shapes=skipped,
                          reason=first_error or "every shape was skipped: " + "; ".join(skipped))
    best = max(trials, key=lambda t: t.tflops_median)
    return GemmResult(dtype=dtype, threads=threads, ok=True, reason=note, shape=[best.m, best.n, best.k],
                      tflops_median=best.tflops_median, tflops_best=best.tflops_best, trials=trials,
                      skipped_shapes=skipped)


def with_datasheet(r: GemmResult, device: torch.device, device_name: str, env: dict[str, Any]) -> GemmResult:
    """``r`` with the datasheet peak (:func:`hwbench.peaks.peak`) and the fraction of it."""
    from .. import peaks

    cores = None
    acc = devices.of_torch(device)
    if acc.host_threads():
        physical = env.get("cpu_cores_physical") or env.get("cpu_cores_logical")
        cores = min(r.threads, physical) if r.threads and physical else physical
    p = peaks.peak(acc.name, device_name, r.dtype, cores=cores, env=env)
    if p.tflops is None:
        return r.model_copy(update={"datasheet_source": p.reason or ""})
    frac = r.tflops_median / p.tflops if r.tflops_median else None
    return r.model_copy(update={"datasheet_tflops": p.tflops, "datasheet_source": p.source,
                                "datasheet_fraction": frac})


def _free(device: torch.device) -> None:
    devices.of_torch(device).empty_cache()


class _nullctx:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
