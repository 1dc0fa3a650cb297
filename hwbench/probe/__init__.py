"""``hwbench probe``: what this machine can actually deliver.

Per device: the achievable GEMM throughput per dtype (:mod:`.gemm`), memory bandwidth by
kernel and buffer size (:mod:`.memory`), host<->device copies (CUDA), and the clocks,
temperature and throttle state while they ran (:mod:`.telemetry`). The result is a
profile file (:mod:`.profile`); a later run on the same machine puts its summary (the
roofs, :class:`hwbench.records.MachineProfile`) on its segment, and derive places every
case on that measured roofline (:mod:`hwbench.analysis.roofline`).

Heavy: imports torch. The CLI imports this package inside the command.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..records import DeviceRoofs, MachineProfile
from .profile import DeviceProbe, GemmResult, ProfileFile, default_path, write_atomic
from .settings import ProbeSettings

Progress = Callable[[str], None]
ALL_DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def resolve_devices(requested: list[str] | None) -> list[str]:
    """Device names to probe: those requested (``cpu``, or a device of a kind the probe
    runs on -- ``cuda``, ``cuda:N``, ``rocm``, ``rocm:N``), or the CPU and every present
    device of those kinds. Raises UserError for one that is not present."""
    from .. import devices
    from ..errors import UserError
    from ..spec import parse_device  # the one device-name parser

    kinds = [k for k, a in devices.KINDS.items() if a.probe]
    found = devices.discover_all(kinds=tuple(kinds))
    here = {k: [d.name for d in found[k].devices] for k in kinds}
    if not requested:
        return ["cpu", *(n for k in kinds for n in here[k])]
    out: list[str] = []
    for d in requested:
        kind, _ = parse_device(d) or (None, None)
        if kind in ["cpu", *kinds]:
            acc = devices.KINDS.get(kind)
            name = acc.resolve(d)
            if acc.probe and name not in here[kind]:
                raise UserError(f"--device {d}: no such {acc.label} device here ({len(here[kind])} visible)")
        else:
            allowed = ", ".join(["cpu"] + [f"{k}, {k}:N" for k in kinds])
            raise UserError(f"--device {d}: not one of {allowed}")
        if name not in out:
            out.append(name)
    return out


def cpu_thread_counts(s: ProbeSettings, env: dict[str, Any]) -> list[int]:
    """Thread counts of the CPU search, most first: 1 and every usable physical core
    (thorough: the powers of two in between too)."""
    if s.cpu_threads:
        return sorted(set(s.cpu_threads), reverse=True)
    physical = env.get("cpu_cores_physical") or env.get("cpu_cores_logical") or 1
    usable = min(physical, env.get("cpu_affinity") or physical)
    counts = {1, usable}
    if s.thorough:
        counts |= {2**i for i in range(1, 16) if 2**i < usable}
    return sorted(counts, reverse=True)


def probe_cpu(s: ProbeSettings, env: dict[str, Any], progress: Progress) -> DeviceProbe:
    import torch

    from . import _timing, gemm, memory, telemetry

    dev = torch.device("cpu")
    t_start = time.perf_counter()
    flags = set(env.get("cpu_flags") or ()) | _cpu_flags()
    threads = cpu_thread_counts(s, env)
    old_threads = torch.get_num_threads()
    llc = _timing.llc_bytes()
    flush = _timing.Flusher(dev, s.flush_bytes)
    results: list[GemmResult] = []
    with telemetry.Monitor(telemetry.cpu_reader()) as mon:
        try:
            torch.set_num_threads(threads[0])
            m, n, k = max(s.cpu_shapes, key=lambda x: x[0] * x[1] * x[2] if x[0] <= 2048 else 0)
            progress(f"warming up the CPU ({threads[0]} threads, fp32 {m}x{n}x{k}) ...")
            with mon.phase("warmup"):
                warm = gemm.warm_up(dev, gemm.make_gemm(dev, "fp32", m, n, k), 2.0 * m * n * k, s)
            for t in threads:
                torch.set_num_threads(t)
                for dtype in s.cpu_dtypes:
                    why = gemm.unsupported(dev, dtype, flags)
                    if why:
                        results.append(GemmResult(dtype=dtype, threads=t, ok=False, reason=why))
                        continue
                    slow = gemm.slow_on_cpu(dtype, flags)
                    with mon.phase(f"gemm {dtype} threads={t}"):
                        r = gemm.search(dev, dtype, s.cpu_slow_shapes if slow else s.cpu_shapes, s, flush,
                                        progress, threads=t, note=slow or "")
                    results.append(gemm.with_datasheet(r, dev, env.get("cpu_model") or "", env))
            torch.set_num_threads(threads[0])
            for dtype in ALL_DTYPES:
                if dtype not in s.cpu_dtypes:
                    why = gemm.unsupported(dev, dtype, flags) or \
                        "not in the quick probe: hwbench probe --thorough measures it"
                    results.append(GemmResult(dtype=dtype, threads=None, ok=False, reason=why))
            with mon.phase("memory"):
                mem = memory.bandwidth(dev, s.cpu_mem_sizes, s, llc, progress)
        finally:
            torch.set_num_threads(old_threads)
    return DeviceProbe(
        device="cpu", device_name=env.get("cpu_model"), cache_bytes=llc, warmup=warm, gemm=results, memory=mem,
        memory_note=f"host memory is this device's memory; {threads[0]} threads; last cache level {llc / 2**20:g} MiB",
        host_device_note="not applicable: a CPU computes in host memory, there are no host<->device copies",
        telemetry=mon.phases, telemetry_note="" if mon.samples else "no CPU clock or temperature readings here",
        duration_s=time.perf_counter() - t_start)


def probe_gpu(name: str, s: ProbeSettings, env: dict[str, Any], progress: Progress, nvml: Any = None) -> DeviceProbe:
    """Probe one GPU of a kind the probe runs on (``Accelerator.probe``: CUDA; ROCm
    through the same torch.cuda API, unverified). Not run on the machine hwbench was
    developed on (no GPU): see docs/development.md, "GPU acceptance"."""
    import torch

    from .. import devices
    from . import _timing, gemm, memory, telemetry

    acc = devices.of(name)
    dev = acc.torch_device(name)
    devices.bind(dev, acc)
    acc.set_device(dev)
    t_start = time.perf_counter()
    dname = acc.device_name(dev)
    l2 = _timing.cache_bytes(dev)
    flush = _timing.Flusher(dev, s.flush_bytes)
    read, tel_note = telemetry.gpu_reader(name, nvml)
    results: list[GemmResult] = []
    with telemetry.Monitor(read) as mon:
        wdt = "bf16" if gemm.unsupported(dev, "bf16") is None else "fp32"
        m, n, k = max(s.gpu_shapes, key=lambda x: x[0] * x[1] * x[2])
        progress(f"warming up {name} ({dname}, {wdt} {m}x{n}x{k}) until its clocks are steady ...")
        with mon.phase("warmup"):
            warm = gemm.warm_up(dev, gemm.make_gemm(dev, wdt, m, n, k), 2.0 * m * n * k, s)
        acc.empty_cache()
        for dtype in ALL_DTYPES:
            why = gemm.unsupported(dev, dtype) if dtype in s.gpu_dtypes else "not requested"
            if why:
                results.append(GemmResult(dtype=dtype, ok=False, reason=why))
                continue
            with mon.phase(f"gemm {dtype}"):
                r = gemm.search(dev, dtype, s.gpu_shapes, s, flush, progress)
            results.append(gemm.with_datasheet(r, dev, dname, env))
            acc.empty_cache()
        del flush
        acc.empty_cache()
        with mon.phase("memory"):
            mem = memory.bandwidth(dev, s.gpu_mem_sizes, s, l2, progress)
        with mon.phase("host memory"):
            host = memory.bandwidth(torch.device("cpu"), (max(s.cpu_mem_sizes),), s, _timing.llc_bytes(), progress,
                                    label="host memory")
        with mon.phase("host<->device"):
            h2d = memory.host_device(dev, s.copy_sizes, s, progress)
    return DeviceProbe(
        device=name, device_name=dname, cache_bytes=l2, warmup=warm, gemm=results, memory=mem, host_memory=host,
        host_device=h2d, telemetry=mon.phases, telemetry_note=tel_note, duration_s=time.perf_counter() - t_start,
        memory_note=f"L2 {l2 / 2**20:g} MiB")


# Where a CPU lacks native bf16, torch's bf16 *matmul* takes a slow fallback kernel, but
# other bf16 kernels (scaled_dot_product_attention, oneDNN convolutions and linears)
# convert to fp32 and run at the fp32 rate: the fp32 figure bounds bf16 work too, so the
# bf16 roof is the larger of the two (peaks.py applies the same rule to datasheet peaks).
BF16_AT_FP32 = ("no native bf16 on this CPU: bf16 kernels that convert to fp32 (SDPA, oneDNN) run at the fp32 "
                "rate, so the bf16 roof is max(bf16 GEMM, fp32 GEMM)")


def roofs_of(d: DeviceProbe) -> DeviceRoofs:
    """The summary of one device's probe that a run stores on its segment."""
    from .. import devices
    from . import memory

    ok = [r for r in d.gemm if r.ok and r.tflops_median]
    by_threads: dict[str, dict[str, float]] = {}
    for r in ok:
        if r.threads is not None:
            by_threads.setdefault(str(r.threads), {})[r.dtype] = r.tflops_median
    top = max((r.threads for r in ok if r.threads is not None), default=None)
    gemm_tflops = {r.dtype: r.tflops_median for r in ok if r.threads == top}
    notes: dict[str, str] = {}
    on_host = devices.KINDS.get(devices.kind_of(d.device)).host_threads()  # the CPU's own probe
    if on_host and any(r.dtype == "bf16" and "no native bf16" in r.reason for r in ok):
        for figures in (*by_threads.values(), gemm_tflops):
            if "bf16" in figures and figures.get("fp32", 0) > figures["bf16"]:
                figures["bf16"] = figures["fp32"]
                notes["bf16"] = BF16_AT_FP32
    host = memory.headline(d.host_memory) if d.host_memory else (memory.headline(d.memory) if on_host else None)
    return DeviceRoofs(device_name=d.device_name, gemm_tflops=gemm_tflops, gemm_notes=notes,
                       gemm_tflops_by_threads=by_threads, memory_bandwidth_gbs=memory.headline(d.memory),
                       bandwidth_curve=memory.curve(d.memory), host_memory_bandwidth_gbs=host,
                       host_device_gbs=memory.transfer_summary(d.host_device))


def run_probe(devices: list[str] | None = None, settings: ProbeSettings | None = None,
              out_dir: str | Path | None = "results/profiles", progress: Progress = lambda m: None,
              environment: dict[str, Any] | None = None, nvml: Any = None) -> tuple[ProfileFile, Path | None]:
    """Probe ``devices`` (default: the CPU and every present device of a kind the probe
    runs on) and write the profile into ``out_dir`` (None: do not write). Returns the
    profile and its path."""
    from .. import devices as kinds
    from .. import env as envmod

    s = settings or ProbeSettings.quick()
    names = resolve_devices(devices)
    env = environment or envmod.fingerprint()
    created = _now()
    pid = uuid.uuid4().hex[:12]
    probed: dict[str, DeviceProbe] = {}
    for name in names:
        progress(f"probing {name} ...")
        probed[name] = probe_gpu(name, s, env, progress, nvml) if kinds.of(name).probe else probe_cpu(s, env, progress)
    roofs = MachineProfile(profile_id=pid, created=created.isoformat(timespec="seconds"), thorough=s.thorough,
                           devices={k: roofs_of(v) for k, v in probed.items()})
    prof = ProfileFile(profile_id=pid, created=roofs.created, finished=_now().isoformat(timespec="seconds"),
                       environment=env, settings=_settings_dict(s, names), devices=probed, roofs=roofs)
    path = None
    if out_dir is not None:
        path = default_path(out_dir, env.get("hostname") or "host", created.strftime("%Y%m%d-%H%M%S"), pid)
        write_atomic(path, prof)
        prof = prof.model_copy(update={"roofs": roofs.model_copy(update={"path": str(path)})})
    return prof, path


def _settings_dict(s: ProbeSettings, names: list[str]) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(s)
    d["devices"] = names
    d["pid"] = os.getpid()
    return d


def _cpu_flags() -> set[str]:
    from ..devices import host

    return host.cpu_flags()


probe_cuda = probe_gpu  # the name before the accelerator layer
