"""Checkpoint cases: save and load of the model and its optimizer state.

The state is the case's model in its precision and an AdamW optimizer after one
training step (so its moment buffers exist): ``{"model", "optim"}`` as
``torch.distributed.checkpoint.state_dict.get_state_dict`` gives them (parameter names
as keys, for every checkpointer alike). One timed iteration is a save followed by a
load, each timed on its own:

* **save**: from the call until every file written is on storage -- each file and its
  folder fsynced (``torch_save``: ``torch.save`` to one file; ``dcp``:
  ``torch.distributed.checkpoint.save`` with its FileSystemWriter; ``dcp_async``:
  ``async_save``, where the time the caller was blocked (staging) is recorded apart
  and the save time runs until the background write is done and fsynced);
* **load**: read back into the model and optimizer (``torch.load`` + ``load_state_dict``;
  ``torch.distributed.checkpoint.load`` + ``set_state_dict``). Before it, every file's
  pages are dropped from the page cache with ``posix_fadvise(POSIX_FADV_DONTNEED)``
  (no root needed; the pages are clean after the fsync), so the load reads storage
  rather than memory the save just filled. The kernel may keep pages it shares with
  others and cannot drop them on tmpfs (which is memory): the record says which
  filesystem it was and whether the advice could be given.

The files are removed after each load (untimed).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..case import Case


def state(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import get_state_dict

    msd, osd = get_state_dict(model, opt)
    return {"model": msd, "optim": osd}


def _apply(model, opt, sd: dict[str, Any]) -> None:
    from torch.distributed.checkpoint.state_dict import set_state_dict

    set_state_dict(model, opt, model_state_dict=sd["model"], optim_state_dict=sd["optim"])


def fsync_tree(folder: Path) -> list[Path]:
    """fsync every file under ``folder`` and every folder (so new names are durable);
    returns the files."""
    files = []
    for root, dirs, names in os.walk(folder):
        for n in names:
            p = Path(root) / n
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            files.append(p)
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return files


def drop_cache(files: list[Path]) -> bool:
    """Advise the kernel to drop ``files``' pages (clean after the fsync) from the
    page cache; False where this platform has no posix_fadvise."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def load_from(dropped: bool) -> str:
    """What a load read, as the record says it (``dropped``: :func:`drop_cache` ran)."""
    return ("storage: each file's pages dropped from the page cache (posix_fadvise DONTNEED) after the save's "
            "fsync" if dropped else "page cache: the files the save just wrote (no posix_fadvise here)")


# ------------------------------------------------------------------ the checkpointers
def save(kind: str, sd: dict[str, Any], folder: Path) -> float | None:
    """Save ``sd`` into ``folder`` with checkpointer ``kind`` and flush it to storage.
    Returns the time the caller was blocked (``dcp_async``), else None."""
    blocked = None
    if kind == "torch_save":
        with open(folder / "checkpoint.pt", "wb") as f:
            torch.save(sd, f)
            f.flush()
    elif kind in ("dcp", "dcp_async"):
        blocked = dcp_save(kind, sd, folder)
    else:
        raise ValueError(f"unknown checkpointer {kind!r}")
    fsync_tree(folder)
    return blocked


def dcp_save(kind: str, sd: dict[str, Any], folder: Path) -> float | None:
    """``torch.distributed.checkpoint`` save of ``sd`` into ``folder`` (``dcp``, or
    ``dcp_async`` waited for); in a process group every rank calls it with its shards.
    Returns the time the caller was blocked (``dcp_async``), else None. Not flushed:
    the caller fsyncs the files."""
    import torch.distributed.checkpoint as dcp

    if kind == "dcp":
        dcp.save(sd, checkpoint_id=str(folder))
        return None
    if kind != "dcp_async":
        raise ValueError(f"checkpointer {kind!r} is not a torch.distributed.checkpoint format")
    t0 = time.perf_counter()
    fut = dcp.async_save(sd, checkpoint_id=str(folder))
    blocked = time.perf_counter() - t0
    fut.result()
    return blocked


def load(kind: str, model, opt, folder: Path, device: torch.device) -> None:
    if kind == "torch_save":
        sd = torch.load(folder / "checkpoint.pt", map_location=device, weights_only=True)
    else:
        import torch.distributed.checkpoint as dcp

        sd = state(model, opt)
        dcp.load(sd, checkpoint_id=str(folder))
    _apply(model, opt, sd)


# ------------------------------------------------------------------------ the case
def _quiet_dcp() -> None:
    """dcp warns once per call that no process group exists and it runs on one process:
    that is what a single-process checkpoint case is."""
    import warnings

    warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")


def build_state(prep, fam, cfg, case: Case, device: torch.device, seed: int):
    """The model (as prepared for the case's precision) and an AdamW optimizer after one
    training step on a batch of the case's size."""
    torch.manual_seed(seed + 1)
    inputs, targets = fam.make_batch(cfg, case.batch_size, case.shape, device, torch.float32)
    if fam.float_inputs:
        inputs = inputs.to(prep.input_dtype)
    model = prep.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    with prep.autocast():
        loss = fam.loss(model(inputs), targets)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return model, opt


def run(case: Case, prep, fam, cfg, settings, device: torch.device, folder: Path,
        on_first_timed: Callable[[], None]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Save and load until ``min_time_s`` and ``min_iters`` are both reached (at most
    ``max_iters``), after one untimed-for-statistics first round (recorded as
    ``first_iter_s``). Returns (timing fields: raw save times and the window, facts)."""
    _quiet_dcp()
    model, opt = build_state(prep, fam, cfg, case, device, settings.seed)
    sd = state(model, opt)
    kind = case.checkpointer or "torch_save"
    saves: list[float] = []
    loads: list[float] = []
    blocked: list[float] = []
    info: dict[str, Any] = {}

    def one_round(n: int) -> float:
        d = folder / f"ckpt-{n}"
        d.mkdir()
        t0 = time.perf_counter()
        b = save(kind, sd, d)
        t_save = time.perf_counter() - t0
        files = [p for p in d.rglob("*") if p.is_file()]
        info["bytes"] = sum(p.stat().st_size for p in files)
        info["files"] = len(files)
        info["dropped"] = drop_cache(files)
        t1 = time.perf_counter()
        load(kind, model, opt, d, device)
        loads_t = time.perf_counter() - t1
        shutil.rmtree(d)
        if n > 0:
            saves.append(t_save)
            loads.append(loads_t)
            if b is not None:
                blocked.append(b)
        return t_save + loads_t

    w0 = time.monotonic()
    first = one_round(0)
    warm = time.monotonic() - w0
    on_first_timed()
    start = time.monotonic()
    n = 1
    while len(saves) < settings.max_iters and (len(saves) < settings.min_iters
                                               or time.monotonic() - start < settings.min_time_s):
        one_round(n)
        n += 1
    end = time.monotonic()
    timing = {"raw_times_s": ((*saves,),), "first_iter_s": first, "warmup_s": warm, "window_start": start,
              "window_end": end}
    facts = {
        "checkpoint_bytes": info["bytes"],
        "checkpoint_files": info["files"],
        "checkpoint_load_s": loads,
        "checkpoint_blocked_s": blocked or None,
        "checkpoint_load_from": load_from(info["dropped"]),
    }
    return timing, facts
