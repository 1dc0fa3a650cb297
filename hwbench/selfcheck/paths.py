"""What the self-check runs: the generated suites and the in-process measurements.

Every path goes through the project's machinery: cases through :func:`hwbench.run_suite`
(forked workers, torchrun groups, collectors), the timer through
:class:`hwbench.timing.Timer`, energy through :class:`hwbench.collectors.CollectorSet`,
the UUID mapping through :mod:`hwbench.devices.nvidia`, peaks through
:func:`hwbench.probe.run_probe`. Heavy: imports torch.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .verdicts import FAILED, MIN_ENERGY_WINDOW_S, Verdict, autobatch_verdict, case_verdict, \
    energy_verdicts, probe_verdicts, timing_verdict, uuid_verdict

Progress = Callable[[str], None]

# one small model per device kind: dimensions multiples of 128 on CUDA (int4wo groups,
# fp8's multiples of 16), the tiny one on a CPU
MODEL = {"cuda": "mlp:base", "cpu": "mlp:tiny"}
SETTINGS = """\
warmup_iters = 3
min_time_s = 0.2
min_iters = 5
timeout_s = 300
idle_baseline_s = {idle}
sample_interval_s = 0.05
"""


def suite_text(kind: str) -> str:
    """The main self-check suite for ``kind`` (cuda / cpu): every registered precision
    on one small model, compile (and cudagraphs), a small llama generation, and a
    one-GPU NCCL (CPU: two-rank gloo) DDP case. Precisions and backends a device lacks
    are skipped by the planner with their reason (-> n/a)."""
    from .. import backends, precisions

    dev = "cuda" if kind == "cuda" else "cpu"
    model = MODEL[kind]
    precs = ", ".join(f'"{p}"' for p in precisions.names())
    backs = ", ".join(f'"{b}"' for b in backends.names() if b != "eager")
    ranks = 1 if kind == "cuda" else 2
    threads = "" if kind == "cuda" else "\nthreads = [1]"
    return f"""
[suite]
name = "selfcheck-{kind}"
description = "python -m hwbench.selfcheck: every measuring path once, small"

[settings]
{SETTINGS.format(idle=2.0 if kind == "cuda" else 0)}
[[matrix]]
models = ["{model}"]
modes = ["infer"]
batch_sizes = [8]
precisions = [{precs}]
devices = ["{dev}"]

[[matrix]]
models = ["{model}"]
modes = ["infer"]
batch_sizes = [8]
backends = [{backs}]
devices = ["{dev}"]

[[matrix]]
models = ["llama:tiny"]
modes = ["generate"]
batch_sizes = [2]
seq_lens = [32]
output_lens = [8]
devices = ["{dev}"]

[[matrix]]
models = ["encoder:tiny"]
modes = ["train"]
batch_sizes = [4]
parallelism = ["ddp"]
world_sizes = [{ranks}]{threads}
devices = ["{dev}"]
"""


def autobatch_text(kind: str) -> str:
    """batch_sizes = ["auto"] under the allocator cap (memory_limit_gb: the CUDA
    allocator's share of the GPU; a CPU worker's address space), small enough that an
    allocation fails before max_batch_size."""
    dev = "cuda" if kind == "cuda" else "cpu"
    # inference: mlp:base's AdamW training state alone (~0.9 GiB) would not fit the 1 GiB cap
    model = "mlp:base" if kind == "cuda" else "mlp:tiny"
    return f"""
[suite]
name = "selfcheck-autobatch-{kind}"

[settings]
warmup_iters = 1
min_time_s = 0.01
min_iters = 1
timeout_s = 300
idle_baseline_s = 0
memory_limit_gb = {1 if kind == "cuda" else 1.2}
max_batch_size = 16777216
collectors = []
check_accuracy = false
count_flops = false

[[matrix]]
models = ["{model}"]
modes = ["infer"]
batch_sizes = ["auto"]
devices = ["{dev}"]
"""


def applies(case, present) -> str | None:
    """Why the hardware supports ``case``'s precision / backend (so a skip is a failure),
    or None (a skip is n/a). Hardware only: device kind and compute capability."""
    from .. import precisions

    if case.precision not in precisions.names() or case.backend != "eager" or case.mode != "infer":
        return None
    needs = precisions.get(case.precision).needs
    dev = next((d for d in present if d.name == case.device or d.kind == case.device), None)
    if dev is None or (needs.kinds and dev.kind not in needs.kinds):
        return None
    from ..devices import KINDS

    if needs.cap and dev.kind in KINDS and KINDS.get(dev.kind).capability_reason(needs.cap, dev) is not None:
        return None
    if needs.cap and not KINDS.get(dev.kind).requirement(needs.cap) and case.precision in ("bf16", "amp_bf16"):
        return None  # a CPU's bf16 support is the planner's call (AVX-512 / AMX)
    return f"{dev.kind} supports {case.precision}"


def run_suites(kind: str, out: Path, progress: Progress) -> list[Verdict]:
    """The two generated suites through hwbench.run_suite; their results files go to ``out``."""
    import hwbench
    from .. import devices
    from ..spec import parse_suite

    present = devices.present()
    verdicts = []
    for name, text in (("suite", suite_text(kind)), ("auto batch suite", autobatch_text(kind))):
        progress(f"running the {name} ...")
        try:
            res = hwbench.run_suite(parse_suite(text), out_dir=out)
        except Exception as e:  # noqa: BLE001 - a verdict, not a crash
            verdicts.append(Verdict(name, FAILED, f"{type(e).__name__}: {e}"))
            continue
        progress(f"results: {res.path}")
        if name == "suite":
            verdicts += [case_verdict(c, applies(c.case, present)) for c in res.record.cases]
        else:
            verdicts.append(autobatch_verdict(res.record))
    return verdicts


def check_timing(device: str) -> Verdict:
    """hwbench's Timer (CUDA events / perf_counter) against the wall clock around a
    synchronised loop and torch.utils.benchmark, on a matmul."""
    import torch
    from torch.utils import benchmark

    from ..timing import Timer

    dev = torch.device(device)
    n = 2048 if dev.type == "cuda" else 256
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    step = lambda: torch.mm(a, b)  # noqa: E731
    timer = Timer(dev)
    timer.run_block(step, 10)  # warmup
    timer.sync()
    t0 = time.perf_counter()
    times = timer.run_block(step, 50)
    timer.sync()
    wall = (time.perf_counter() - t0) / 50
    t = benchmark.Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())
    bench = t.blocked_autorange(min_run_time=0.5).median
    name = "timing: CUDA events" if dev.type == "cuda" else "timing: perf_counter"
    return timing_verdict(name, statistics.fmean(times), statistics.median(times), wall, bench)


def check_energy(kind: str, seconds: float = MIN_ENERGY_WINDOW_S, nvml: Any = None,
                 load: Callable[[float], None] | None = None, cc=None) -> list[Verdict]:
    """A window of ``seconds`` under load (a matmul loop on the device), through the
    collectors as the runner drives them; verdicts on sampling, energy and GPM."""
    from ..collectors import CollectorSet
    from ..spec import Settings

    names = ["host", "nvidia"] if kind == "cuda" else ["host", "rapl"]
    cs = CollectorSet.for_suite(Settings(collectors=names, sample_interval_s=0.1, idle_baseline_s=0), nvml=nvml)
    unavailable = dict(cs.unavailable) if cs is not None else {n: "no collectors" for n in names}
    if cs is None:
        return energy_verdicts(None, kind, 0.0, unavailable, cc)
    cs.start()
    try:
        cs.case_begin(os.getpid())
        t0 = time.monotonic()
        cs.mark("window_start", t0)
        (load or _matmul_load(kind))(seconds)
        t1 = time.monotonic()
        cs.mark("window_end", t1)
        coll = cs.case_end((t0, t1), "cuda:0" if kind == "cuda" else "cpu")
    finally:
        cs.stop()
    return energy_verdicts(coll, kind, t1 - t0, unavailable, cc)


def _matmul_load(kind: str) -> Callable[[float], None]:
    def run(seconds: float) -> None:
        import torch

        dev = torch.device("cuda:0" if kind == "cuda" else "cpu")
        n = 4096 if kind == "cuda" else 256
        a = torch.randn(n, n, device=dev)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(10):
                a = torch.mm(a, a).clamp_(-1, 1)
            if kind == "cuda":
                torch.cuda.synchronize()
    return run


def check_uuid(nvml: Any = None, with_torch: bool = True) -> Verdict:
    """The device layer's mapping under CUDA_VISIBLE_DEVICES=<UUID of the last GPU>, and
    (``with_torch``) what torch sees in a process started with it."""
    from ..devices import nvidia

    every = nvidia.describe_all(nvml, environ={})
    if not every or not every[-1].get("uuid"):
        return uuid_verdict([], [], None)
    uuid = every[-1]["uuid"]
    masked = nvidia.describe_all(nvml, environ={"CUDA_VISIBLE_DEVICES": uuid})
    seen = None
    if with_torch:
        code = "import torch; print(torch.cuda.get_device_properties(0).uuid)"
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": uuid, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        if r.returncode != 0:
            return Verdict("UUID mapping under CUDA_VISIBLE_DEVICES", FAILED,
                           f"torch under CUDA_VISIBLE_DEVICES={uuid[:16]}...: {r.stderr.strip()[-200:]}")
        seen = r.stdout.strip().splitlines()[-1]
    return uuid_verdict(every, masked, seen)


def check_probe(kind: str, out: Path, progress: Progress) -> list[Verdict]:
    """``hwbench probe`` on the device, small: bf16 and fp32 GEMM on CUDA (shapes up to
    8192), the tiny settings on a CPU; the profile goes to ``out/profiles``, where the
    suites' results files find it."""
    from ..probe import run_probe
    from ..probe.settings import MiB, ProbeSettings

    if kind == "cuda":
        s = ProbeSettings.quick().with_(gpu_dtypes=("fp32", "bf16"), gpu_shapes=((4096, 4096, 4096), (8192, 8192, 8192)),
                                        gpu_mem_sizes=(64 * MiB, 1024 * MiB), warmup_max_s=3.0)
        device = "cuda:0"
    else:
        s, device = ProbeSettings.tiny(), "cpu"
    try:
        prof, path = run_probe([device], s, out / "profiles", progress)
    except Exception as e:  # noqa: BLE001 - a verdict, not a crash
        return [Verdict("probe", FAILED, f"{type(e).__name__}: {e}")]
    progress(f"machine profile: {path}")
    return probe_verdicts(prof.devices[device], kind)


def gpu_state() -> tuple[str | None, tuple[int, int] | None]:
    """(why --gpu cannot run here, or None; the first GPU's compute capability)."""
    import torch

    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU", None
    return None, tuple(torch.cuda.get_device_capability(0))

