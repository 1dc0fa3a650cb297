"""Sharded checkpoint cases: ``mode = "checkpoint"`` with ``parallelism`` fsdp or tp,
run by every rank of the case's torchrun group (:mod:`hwbench.parallel.rank` hands the
case here after joining the process group).

Each rank builds the model as the strategy shards it (FSDP2 ``fully_shard`` / DTensor
``parallelize_module``, the strategy's own ``make_step``), an AdamW optimizer over the
sharded parameters and takes one training step on its batch (so the moment buffers
exist, sharded as the parameters are). The state is ``{"model", "optim"}`` as
``torch.distributed.checkpoint.state_dict.get_state_dict`` gives it: each rank holds
DTensors of its own shards. One timed round, every rank together:

* **save**: an untimed barrier, then ``dcp.save`` (or ``async_save``) of the sharded
  state into one folder shared by the ranks (each rank writes its own shard files,
  rank 0 the ``.metadata``); every file is fsynced (the files split over the ranks)
  and the folder too; a barrier; the clock stops. Each rank reports its time, the
  case's is the slowest rank's, round by round (:func:`hwbench.parallel.report.merge`).
* **load**: every file's pages dropped from the page cache (as the single-process
  case does, :func:`.checkpoint.drop_cache`), a barrier, then ``dcp.load`` into the
  sharded state and ``set_state_dict`` back into the sharded model and optimizer, a
  barrier; the clock stops.

Bytes on disk: every file of the checkpoint folder (all ranks' shards and the
metadata), counted by rank 0 after the save; ``checkpoint_shard_bytes`` lists the
shard data files' (``*.distcp``, one per rank with dcp's FileSystemWriter). The
folder lives in the case's scratch folder in ``checkpoint_dir``, made and removed by
rank 0 (one host: the ranks share it; a multi-node group would need a shared
filesystem, which hwbench does not check).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any


def _fsync(paths: list[Path]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _build(case, settings, mesh, device):
    """The strategy's sharded model and an AdamW optimizer after one training step on
    this rank's batch (the same batch on every rank: tp ranks must see one)."""
    import torch

    from .. import backends, models
    from ..parallel.strategy import STRATEGIES as REGISTRY
    from ..workloads import backward_and_step

    fam, size = models.get(case.model)
    cfg = fam.sizes[size]
    torch.manual_seed(settings.seed)  # the same weights on every rank
    prep = backends.prepare(fam.build(cfg), case, device, fam.float_inputs)
    torch.manual_seed(settings.seed + 1)
    inputs, targets = fam.make_batch(cfg, mesh.rank_batch, case.shape, device, torch.float32)
    if fam.float_inputs:
        inputs = inputs.to(prep.input_dtype)
    REGISTRY.get(case.parallelism).make_step(prep, fam, inputs, targets, mesh, lambda m: m)  # shards prep.model
    model = prep.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    with prep.autocast():
        loss = fam.loss(model(inputs), targets)
    backward_and_step(loss, opt, prep.scaler)
    return fam, cfg, model, opt


def run_rank(case, settings, rank: int, t_start: float, mesh, device, acc) -> dict[str, Any]:
    """This rank's report (:class:`hwbench.parallel.report.RankReport` fields) of
    sharded checkpoint case ``case``."""
    import torch.distributed as dist

    from . import scratch
    from .checkpoint import _quiet_dcp, state
    from .storage import describe

    _quiet_dcp()
    fam, cfg, model, opt = _build(case, settings, mesh, device)
    sd = state(model, opt)
    if rank == 0:
        with scratch.scratch(settings.checkpoint_dir) as folder:
            dist.broadcast_object_list([str(folder)], src=0)
            out = _rounds(case, settings, rank, model, opt, sd, folder, device, acc)
            out["scratch_fs_type"] = describe(folder, "scratch")["fs_type"]
            dist.barrier()  # the others are done with the folder before it goes
    else:
        got = [None]
        dist.broadcast_object_list(got, src=0)
        out = _rounds(case, settings, rank, model, opt, sd, Path(got[0]), device, acc)
        dist.barrier()
    return {"status": "ok", "t_start": t_start, "params": fam.param_count(cfg), "flops_per_sample": 0.0,
            "group_batch": mesh.group_batch, "host_rss_peak_bytes": _rss(), **out}


def _rss() -> int:
    from ..worker import rss_peak_bytes

    return rss_peak_bytes()


def _rounds(case, settings, rank: int, model, opt, sd, folder: Path, device, acc) -> dict[str, Any]:
    """Save and load rounds until ``min_time_s`` and ``min_iters`` (at most
    ``max_iters``), rank 0 deciding for all, after one first round."""
    import torch
    import torch.distributed as dist

    from .checkpoint import drop_cache, load, load_from

    kind = case.checkpointer
    world = dist.get_world_size()
    saves: list[float] = []
    loads: list[float] = []
    blocked: list[float] = []
    info: dict[str, Any] = {}
    flag = torch.zeros(1, device=device)  # on the collective backend's device (nccl: the GPU)

    def one_round(n: int) -> None:
        d = folder / f"ckpt-{n}"
        if rank == 0:
            d.mkdir()
        dist.barrier()
        t0 = time.perf_counter()
        b = save_sharded(kind, sd, d, rank, world)
        t_save = time.perf_counter() - t0
        files = sorted(p for p in d.rglob("*") if p.is_file())
        if rank == 0:
            info["bytes"] = sum(p.stat().st_size for p in files)
            info["files"] = len(files)
            info["shards"] = [p.stat().st_size for p in files if p.suffix == ".distcp"]
        info["dropped"] = drop_cache(files[rank::world])
        dist.barrier()
        t1 = time.perf_counter()
        load(kind, model, opt, d, device)
        acc.synchronize(device)  # the copies to an accelerator are done
        dist.barrier()
        t_load = time.perf_counter() - t1
        if rank == 0:
            shutil.rmtree(d)
        if n > 0:
            saves.append(t_save)
            loads.append(t_load)
            if b is not None:
                blocked.append(b)

    def stop() -> bool:
        """Rank 0's decision, shared (an untimed 1-element allreduce)."""
        flag.fill_(1.0 if rank == 0 and not want_more() else 0.0)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def want_more() -> bool:
        return len(saves) < settings.max_iters and (len(saves) < settings.min_iters
                                                    or time.monotonic() - start < settings.min_time_s)

    t_ready = time.monotonic()
    w0 = time.perf_counter()
    one_round(0)
    first = time.perf_counter() - w0
    start = time.monotonic()
    n = 1
    while not stop():
        one_round(n)
        n += 1
    end = time.monotonic()
    return {"raw_times_s": [saves], "first_iter_s": first, "warmup_s": first, "t_ready": t_ready,
            "t_first_timed": start, "t_window_end": end, "checkpoint_load_s": loads,
            "checkpoint_blocked_s": blocked or None, "checkpoint_bytes": info.get("bytes"),
            "checkpoint_files": info.get("files"),
            "checkpoint_shard_bytes": info.get("shards"), "checkpoint_load_from": load_from(info["dropped"])}


def save_sharded(kind: str, sd: dict[str, Any], folder: Path, rank: int, world: int) -> float | None:
    """``dcp.save`` / ``async_save`` of this rank's shards into ``folder`` (a collective:
    every rank calls it); then every file fsynced, the files split over the ranks, and
    the folder by rank 0; a barrier. Returns the time the caller was blocked
    (``dcp_async``), else None."""
    import torch.distributed as dist

    from .checkpoint import dcp_save

    blocked = dcp_save(kind, sd, folder)  # raises for a checkpointer that is not a sharded format
    dist.barrier()  # every rank's files (and rank 0's metadata) are written
    _fsync(sorted(p for p in folder.rglob("*") if p.is_file())[rank::world])
    if rank == 0:
        _fsync([folder])
    dist.barrier()
    return blocked
