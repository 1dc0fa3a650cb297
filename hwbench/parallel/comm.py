"""Gradient compression of data-parallel cases (the ``comm`` matrix dimension) and the
analysis of how much of their communication is exposed (not overlapped by compute).

* ``none``: what the strategy does by default (fp32 allreduce / push / pull).
* ``fp16`` / ``bf16``: ddp registers torch's ``default_hooks.fp16_compress_hook`` /
  ``bf16_compress_hook`` (each bucket cast to half precision, allreduced, cast back);
  ps casts the pushed gradients and the pulled parameters to that type.
* ``powersgd:<rank>``: ddp only, torch's ``powerSGD_hook`` with
  ``matrix_approximation_rank`` = rank, error feedback and warm start on, and
  ``start_powerSGD_iter`` = :data:`POWERSGD_START` (torch's smallest with error feedback;
  its default, 1000, would allreduce plainly through any short window). The rank keeps
  warming up until compression is on, so every timed step is compressed.

Torch-free at import: the suite loader and the planner use it.
"""

from __future__ import annotations

import re

NAMES = ("none", "fp16", "bf16", "powersgd:<rank>")
POWERSGD_START = 2  # torch requires > 1 with error feedback / warm start
_POWERSGD = re.compile(r"powersgd:([0-9]+)")
MAX_RANK = 4096


def canonical(name: str) -> str:
    """A comm setting's canonical name, or ValueError with the allowed values."""
    if not isinstance(name, str):
        raise ValueError(f"{name!r} is not a comm setting; allowed: {', '.join(NAMES)}")
    if name in ("none", "fp16", "bf16"):
        return name
    m = _POWERSGD.fullmatch(name)
    if m is None:
        raise ValueError(f"{name[:40]!r} is not a comm setting; allowed: {', '.join(NAMES)}")
    rank = int(m.group(1))
    if not 1 <= rank <= MAX_RANK:
        raise ValueError(f"{name!r}: the PowerSGD rank must be an integer from 1 to {MAX_RANK}")
    return f"powersgd:{rank}"


def powersgd_rank(comm: str) -> int | None:
    m = _POWERSGD.fullmatch(comm)
    return int(m.group(1)) if m else None


def requires(comm: str, strategy: str, device_kind: str) -> str | None:
    """Why ``comm`` cannot run with ``strategy`` on ``device_kind``, or None."""
    if comm == "none":
        return None
    from .strategy import STRATEGIES

    if strategy not in STRATEGIES or not STRATEGIES.get(strategy).comm:
        takes = " and ".join(n for n, x in STRATEGIES.items() if x.comm)
        return f"comm {comm!r}: gradient compression applies to {takes}, not {strategy}"
    if powersgd_rank(comm) is not None and strategy != "ddp":
        return f"comm {comm!r}: PowerSGD is a DDP communication hook; {strategy} does not take it"
    from .. import devices

    if comm == "bf16" and strategy == "ddp" and not (device_kind in devices.KINDS
                                                     and devices.KINDS.get(device_kind).bf16_compress):
        return ("comm 'bf16': DDP accepts bf16_compress_hook only with CUDA 11+ and NCCL 2.10+ (or XPU and "
                "XCCL), not on {device_kind}")
    return None


def register_ddp_hook(model, comm: str) -> object | None:
    """Register ``comm``'s communication hook on DDP ``model``; returns the PowerSGD
    state (its ``iter`` says when compression is on) or None."""
    if comm == "none":
        return None
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook

    if comm in ("fp16", "bf16"):
        model.register_comm_hook(None, getattr(default_hooks, f"{comm}_compress_hook"))
        return None
    state = powerSGD_hook.PowerSGDState(process_group=None, matrix_approximation_rank=powersgd_rank(comm),
                                        start_powerSGD_iter=POWERSGD_START, use_error_feedback=True,
                                        warm_start=True)
    model.register_comm_hook(state, powerSGD_hook.powerSGD_hook)
    return state


def wire_dtype(comm: str):
    """The dtype ps sends for ``comm`` (None: as is)."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(comm)


# ------------------------------------------------------------------------ interval analysis
def union(intervals) -> list[tuple[float, float]]:
    """Sorted, disjoint union of ``(start, end)`` intervals (empty ones dropped)."""
    out: list[list[float]] = []
    for s, e in sorted((float(s), float(e)) for s, e in intervals if e > s):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def exposed(comm, compute) -> float:
    """Length of the union of ``comm`` intervals not covered by the union of ``compute``
    intervals: communication time during which no compute ran (exposed). At most the
    union of ``comm``, hence at most the sum of its lengths (the busy time)."""
    cover = union(compute)
    total, j = 0.0, 0
    for s, e in union(comm):
        t = s
        while j < len(cover) and cover[j][1] <= t:
            j += 1
        k = j
        while t < e:
            if k >= len(cover) or cover[k][0] >= e:
                total += e - t
                break
            cs, ce = cover[k]
            if cs > t:
                total += cs - t
            t = max(t, ce)
            k += 1
    return total


def rel_l2(params, ref) -> float | None:
    """||params - ref|| / ||ref|| over all tensors concatenated (None when ref is all
    zeros)."""
    import torch

    num = sum(float(torch.sum((a.double() - b.double()) ** 2)) for a, b in zip(params, ref, strict=True))
    den = sum(float(torch.sum(b.double() ** 2)) for b in ref)
    if den == 0.0:
        return None
    return (num / den) ** 0.5
