"""What each rank of a parallel case runs: ``python -m hwbench.parallel.rank JOB_DIR``,
started by the elastic agent (:mod:`.agent`) or by ``torchrun`` on every node.

``JOB_DIR/job.json`` holds the case, the settings, the device kind, the CPU threads per
rank, the memory cap and an injected fault (tests). The rank writes ``rank<R>.pid`` as
soon as it runs (the launcher checks by pid that no rank outlives the case) and
``rank<R>.json`` (:class:`~.report.RankReport`) at the end, ok or not.

Timing: every step starts with an untimed 1-element allreduce (MAX) that both aligns
the ranks (a barrier) and carries rank 0's decision to stop, so every rank runs the same
number of steps; each rank times its own step (device synchronised) and the launcher
takes, step by step, the slowest rank's time. The first step is reported on its own
(``first_iter_s``: with the ``compile`` backend it holds the compilation, as dynamo
compiles at the first call). Warmup then runs ``warmup_iters`` / ``warmup_s`` and goes
on while any rank compiled during its last step (a recompile, a backward compiled
lazily), at most :data:`hwbench.backends.MAX_RECOMPILE_STEPS` steps more, so that no compilation lands
in the timed window; warmup goes on while any rank wants it to (allreduce MAX).
After the timed window ``comm_profile_steps`` more steps run under ``torch.profiler``
to measure the time and bytes of the communication backend's operations.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

# torch's names of the element types the profiler reports, with their sizes in bytes
_DTYPE_BYTES = {"float": 4, "double": 8, "c10::BFloat16": 2, "c10::Half": 2, "long int": 8, "int": 4,
                "signed char": 1, "unsigned char": 1, "bool": 1, "short int": 2, "c10::Float8_e4m3fn": 1}


def _die_with_parent() -> None:
    """SIGKILL this rank when the agent that started it dies, however it dies (Linux):
    torch starts ranks in their own session, so a kill of the agent's process group does
    not reach them."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def main(job_dir: str) -> int:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides about Ctrl-C
    t_start = time.monotonic()
    job_path = Path(job_dir)
    rank = int(os.environ.get("RANK", "0"))
    (job_path / f"rank{rank}.pid").write_text(str(os.getpid()))
    job = json.loads((job_path / "job.json").read_text())
    from ..case import Case
    from ..spec import Settings
    from ..worker import cap_memory, classify

    case = Case.from_dict(job["case"])
    settings = Settings.model_validate_json(json.dumps(job["settings"]))
    base = {"rank": rank, "pid": os.getpid(), "hostname": socket.gethostname()}
    try:
        cap_memory(job.get("memory_limit_bytes"), job["device_kind"])
        report = _run(case, settings, job, rank, t_start)
        code = 0
    except BaseException as e:  # noqa: BLE001 - every failure becomes a report
        reason = traceback.format_exception_only(type(e), e)[-1].strip()[:2000]
        if os.environ.get("HWBENCH_DEBUG"):
            reason += "\n" + traceback.format_exc()
        report = {"status": classify(e), "reason": reason, "t_failed": time.time()}
        code = 1
    from .report import RankReport

    out = RankReport(**base, **report)
    tmp = job_path / f".rank{rank}.json.tmp"
    tmp.write_text(out.model_dump_json())
    os.replace(tmp, job_path / f"rank{rank}.json")
    if code == 0:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    sys.stdout.flush()
    # a failed rank leaves at once: its peers may wait in a collective; the agent sees
    # the exit and stops them
    os._exit(code)


def _join(case, settings, job: dict):
    """This rank's mesh, torch device and device kind; the process group joined with
    the kind's backend (nccl / rccl, gloo, xccl, hccl, xla)."""
    import torch

    from .. import devices
    from .mesh import Mesh

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    mesh = Mesh.from_env(case.parallelism, job["device_kind"], case.batch_size, settings.scaling,
                         settings.microbatches, settings.pp_schedule)
    acc = devices.KINDS.get(job["device_kind"])
    device = torch.device(mesh.device)
    acc.set_device(device)
    acc.init_process_group(device)
    return mesh, device, acc


def _build(case, settings, mesh, rank: int):
    """The model, inputs and the strategy's step of this rank (the backend applied where
    the strategy says); the comm setting's accuracy cost measured first where asked."""
    import torch

    from .. import backends, models
    from .strategy import STRATEGIES

    fam, size = models.get(case.model)
    cfg = fam.sizes[size]
    torch.manual_seed(settings.seed)  # the same weights on every rank
    model = fam.build(cfg)
    # data-parallel ranks draw their own batch; tp / pp ranks must see the same one
    strategy = STRATEGIES.get(mesh.strategy)
    torch.manual_seed(settings.seed + 1 + (rank if strategy.data_parallel else 0))
    device = torch.device(mesh.device)
    inputs, targets = fam.make_batch(cfg, mesh.rank_batch, case.shape, device, torch.float32)
    prep = backends.prepare(model, case, device, fam.float_inputs)
    if fam.float_inputs:
        inputs = inputs.to(prep.input_dtype)
    # the backend is applied at the same point on every rank (the strategy decides where),
    # so ranks that share collectives (ddp, fsdp, tp, ps) trace the same graphs; pp stages
    # each trace their own, with the send / recv outside them. Compilation is lazy: it
    # happens in the first step.
    compile_fn = functools.partial(backends.compile_model, case=case, mode=settings.compile_mode)
    extra = {}  # the comm setting: ddp and ps take it (hwbench.parallel.comm)
    deviation = None
    if strategy.comm:
        extra = {"comm": case.comm, "bucket_cap_mb": settings.bucket_cap_mb}
        if settings.comm_accuracy_steps:
            deviation = _param_deviation(prep, fam, inputs, targets, mesh, case.comm, settings)
    step = strategy.make_step(prep, fam, inputs, targets, mesh, compile_fn, **extra)
    return fam, size, cfg, step, deviation


def _lockstep(step, device, acc, rank: int):
    """(timed, align, any_rank): one step timed on this rank after an untimed barrier
    (device synchronised), and the two untimed 1-element allreduces (MAX) that keep
    the ranks' decisions one."""
    import torch
    import torch.distributed as dist

    flag = torch.zeros(1, device=device)

    def any_rank(want: bool) -> bool:
        """Untimed: True on every rank where ``want`` is True on any rank."""
        flag.fill_(1.0 if want else 0.0)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def align(stop: bool = False) -> bool:
        """Untimed: every rank waits for every other, and learns whether rank 0 says stop."""
        return any_rank(stop and rank == 0)

    def timed() -> float:
        align()
        t0 = time.perf_counter()
        step()
        acc.synchronize(device)
        return time.perf_counter() - t0

    return timed, align, any_rank


def _run(case, settings, job: dict, rank: int, t_start: float) -> dict:
    import torch

    from .. import backends, timing
    from ..worker import inject_fault, rss_peak_bytes

    mesh, device, acc = _join(case, settings, job)
    if case.mode == "checkpoint":  # a sharded checkpoint case: saved and loaded there
        from ..io import sharded

        return sharded.run_rank(case, settings, rank, t_start, mesh, device, acc)
    compiles = backends.compile_counter()
    fam, size, cfg, step, deviation = _build(case, settings, mesh, rank)
    psgd = getattr(step, "powersgd", None)  # PowerSGD's state: warm up until it compresses
    acc.reset_peak_memory(device)
    timed, align, any_rank = _lockstep(step, device, acc, rank)
    acc.synchronize(device)
    t_ready = time.monotonic()
    first, warm = timing.warm_up(timed, warmup_iters=settings.warmup_iters, warmup_s=settings.warmup_s,
                                 compiles=compiles, max_recompile_steps=backends.MAX_RECOMPILE_STEPS,
                                 agree=any_rank,  # one decision for every rank: on while any rank wants to
                                 # PowerSGD allreduces plainly until its start step: warm up until it compresses
                                 not_ready=(lambda: psgd.iter < psgd.start_powerSGD_iter) if psgd is not None else None)
    fault = job.get("fault")
    if fault and fault.get("rank") in (None, rank):
        inject_fault(fault["kind"])  # mid-case: after warmup, before the timed window
    t_first = time.monotonic()
    compiled_before = compiles()
    rounds = timing.lockstep_rounds(timed, align, repeats=settings.repeats, min_iters=settings.min_iters,
                                    min_time_s=settings.min_time_s, max_iters=settings.max_iters)
    t_end = time.monotonic()
    compiled_in_window = compiles() - compiled_before
    comm_s = comm_bytes = how = exposed_s = None
    if settings.comm_profile_steps:
        comm_s, comm_bytes, how, exposed_s = _profile_comm(timed, settings.comm_profile_steps, device, acc)
    return {
        "status": "ok", "raw_times_s": rounds, "first_iter_s": first, "warmup_s": warm,
        "t_start": t_start, "t_ready": t_ready, "t_first_timed": t_first, "t_window_end": t_end,
        "comm_s_per_step": comm_s, "comm_bytes_per_step": comm_bytes, "comm_measured_by": how,
        "comm_exposed_s_per_step": exposed_s, "param_rel_l2_vs_none": deviation,
        "param_rel_l2_steps": settings.comm_accuracy_steps if deviation is not None else None,
        "memory_peak_bytes": acc.memory_peaks(device).get("memory_peak_bytes"), "host_rss_peak_bytes": rss_peak_bytes(),
        "threads_used": torch.get_num_threads() if acc.host_threads() else None,
        "params": fam.param_count(cfg), "flops_per_sample": fam.flops_per_sample(size, "train", case.shape),
        "group_batch": mesh.group_batch, "compiles_in_window": compiled_in_window,
    }


def _param_deviation(prep, fam, inputs, targets, mesh, comm: str, settings) -> float | None:
    """The accuracy cost of ``comm``: ``comm_accuracy_steps`` train steps uncompressed,
    then the same steps with ``comm``, each from a copy of the initial model, the same
    inputs and the same RNG state, eager (the timed model's backend is not applied);
    returns this rank's parameters' relative L2 deviation (comm "none": the run-to-run
    floor, 0 where the collectives are deterministic). PowerSGD allreduces plainly for
    its first ``POWERSGD_START`` steps, so it compresses the rest."""
    import copy
    import dataclasses

    import torch

    from .strategy import STRATEGIES
    from .comm import rel_l2

    from .. import devices as kinds

    finals = []
    devices = kinds.of_torch(mesh.device_type).rng_devices(mesh.device)
    for cm in ("none", comm):
        p = dataclasses.replace(prep, model=copy.deepcopy(prep.model), scaler=copy.deepcopy(prep.scaler))
        with torch.random.fork_rng(devices=devices):
            step = STRATEGIES.get(mesh.strategy).make_step(p, fam, inputs, targets, mesh, lambda m: m, comm=cm,
                                                       bucket_cap_mb=settings.bucket_cap_mb)
            for _ in range(settings.comm_accuracy_steps):
                step()
        finals.append([t.detach().clone() for t in p.model.parameters()])
        del p, step  # the copies and their optimizer state go before the timed model is built
    return rel_l2(finals[1], finals[0])


def _profile_comm(timed, steps: int, device, acc) -> tuple[float, float, str, float]:
    """(seconds, bytes, how, exposed seconds) per step in the communication backend's
    operations, from ``steps`` steps under torch.profiler: on CPU the gloo operations'
    events (their own threads' busy time), on kinds whose collectives are device kernels
    (``acc.comm_kernel``: NCCL / RCCL) those kernels' device time. Bytes:
    the operations' input tensors (shape x element size). Exposed: the union of those
    operations' intervals less the union of compute's (CPU: ``aten::`` operators of
    any thread, except those inside a gloo operation; CUDA: the other kernels), see
    :func:`hwbench.parallel.comm.exposed`."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from .comm import exposed
    from .report import COMM_MEASURED_BY

    kernels = acc.comm_kernel  # e.g. "nccl": device kernels whose names hold it are the collectives
    acts = [ProfilerActivity.CPU] + ([getattr(ProfilerActivity, acc.profiler_activity)] if kernels else [])
    prefixes = tuple(dict.fromkeys(("gloo:", "nccl:", f"{acc.dist_backend}:")))
    try:  # every thread: PowerSGD issues its later allreduces from gloo's callback threads
        cfg = {"experimental_config": torch._C._profiler._ExperimentalConfig(profile_all_threads=True)}
    except (AttributeError, TypeError):  # an older torch: the calling thread (and gloo's work) only
        cfg = {}
    with profile(activities=acts, record_shapes=True, **cfg) as prof:
        for _ in range(steps):
            timed()
    busy_us = 0.0
    nbytes = 0.0
    events = prof.events()
    comm_iv, compute_iv = [], []
    for e in events:
        name = e.name
        if name.startswith(prefixes):
            msg = 0
            for shape, dt in zip(e.input_shapes or [], getattr(e, "input_dtypes", None) or []):
                if shape and isinstance(shape[0], int):
                    n = 1
                    for d in shape:
                        n *= d
                    msg = n * _DTYPE_BYTES.get(dt, 4)
                    break  # the first tensor input is the message
            if msg <= 8:
                continue  # the 1-element allreduce that aligns the steps: hwbench's, not the strategy's
            nbytes += msg
            if not kernels:
                busy_us += e.cpu_time_total
                comm_iv.append((e.time_range.start, e.time_range.end))
        elif kernels and kernels in name.lower() and getattr(e, "device_time_total", 0):
            busy_us += e.device_time_total
            comm_iv.append((e.time_range.start, e.time_range.end))
    for e in events:
        if kernels:
            if str(getattr(e, "device_type", "")).endswith(acc.profiler_activity) and kernels not in e.name.lower():
                compute_iv.append((e.time_range.start, e.time_range.end))
        elif e.name.startswith("aten::") and not _inside_comm(e, prefixes):
            compute_iv.append((e.time_range.start, e.time_range.end))
    exposed_us = min(exposed(comm_iv, compute_iv), busy_us)  # union <= sum; min guards rounding
    kinds = f"{kernels.upper()} kernel" if kernels else f"{acc.dist_backend}:*"
    return busy_us / 1e6 / steps, nbytes / steps, COMM_MEASURED_BY.format(n=steps, kinds=kinds), \
        exposed_us / 1e6 / steps


def _inside_comm(e, prefixes: tuple[str, ...] = ("gloo:", "nccl:")) -> bool:
    """Whether profiler event ``e`` runs inside a communication operation (the
    backend's own work, not compute)."""
    p = e.cpu_parent
    while p is not None:
        if p.name.startswith(prefixes):
            return True
        p = p.cpu_parent
    return False


if __name__ == "__main__":
    main(sys.argv[1])
