"""Parallel cases: one module per strategy, each built on the torch.distributed API its
users write by hand, launched by torchrun (hwbench writes no process-group or
networking layer of its own).

* :mod:`.mesh` -- the one frozen description of the process mesh (:class:`Mesh`) that
  every strategy reads; no strategy looks at another's state.
* :mod:`.strategy` -- the strategy registry (:data:`STRATEGIES`): each strategy module
  registers one :class:`~.strategy.Strategy` declaring its facts (data-parallel or not,
  the backends it runs, its torch-free ``check`` used when a run is planned, and
  ``make_step`` used in the rank).
* :mod:`.ddp` (DistributedDataParallel), :mod:`.fsdp` (FSDP2 ``fully_shard``),
  :mod:`.tp` (DTensor ``parallelize_module``), :mod:`.pp` (``torch.distributed.pipelining``),
  :mod:`.ps` (parameter server over ``gather`` + point-to-point ``send`` / ``recv``).
  Adding a strategy: one module that registers its Strategy, plus its name on the
  import line below.
* :mod:`.comm` -- the ``comm`` dimension (gradient compression: DDP communication hooks,
  ps's half-precision push / pull) and the exposed-communication interval analysis.
* :mod:`.agent` -- the per-case launcher process: torch's elastic agent
  (``torch.distributed.launcher.api.elastic_launch``, c10d rendezvous, what ``torchrun
  --standalone`` runs) reporting each failed rank's exit code or signal, typed.
* :mod:`.rank` -- what each rank runs (``python -m hwbench.parallel.rank JOB_DIR``):
  also the entry point of a multi-node ``torchrun`` (docs/parallel.md).
* :mod:`.report` -- the typed per-rank report and the pure merge of a group's reports.

This package is torch-free at import: the suite loader and the planner use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# the strategy modules, each registering itself; this order is the registry's order
from . import comm, ddp, fsdp, tp, pp, ps  # noqa: F401, I001
from .mesh import batches
from .strategy import STRATEGIES

if TYPE_CHECKING:
    from ..case import Case

# Why a backend that a strategy's BACKENDS leaves out is refused (the rest of the message
# names the backends it runs).
BACKEND_REASONS = {
    "cudagraphs": (" (CUDA-graph capture and replay of a group's NCCL collectives and of the"
                   " strategies' autograd and module hooks is not verified in hwbench)"),
}
VARIANT_REASON = (": a variant's rewrite (pruning, 2:4 sparse weights, a distillation student that only"
                  " the single-process worker builds) is not verified against DDP / FSDP / DTensor /"
                  " pipeline parameter handling")


def requires(case: Case, device_kind: str, devices_of_kind: int, settings=None, nnodes: int = 1) -> str | None:
    """Why parallel ``case`` cannot run here, or None. ``device_kind`` is the resolved
    device's kind ("cpu", "cuda", "rocm"); ``devices_of_kind`` how many such devices exist (a
    CPU counts as enough for any number of ranks: they share its cores); ``nnodes`` the
    machines the group spans (each runs ``world_size / nnodes`` ranks)."""
    if case.parallelism == "none":
        return None
    from .. import models

    fam, _ = models.get(case.model)
    name = case.parallelism
    strategy = STRATEGIES.get(name)
    if case.mode == "checkpoint":  # sharded save and load (hwbench.io.sharded)
        from ..io import sharded_requires

        why = sharded_requires(case)
        if why is not None:
            return why
    elif case.mode != "train":
        return f"{name}: parallel strategies train or save sharded checkpoints (mode {case.mode!r})"
    if case.backend not in strategy.backends:
        why = BACKEND_REASONS.get(case.backend, "")
        return f"{name}: runs the {' / '.join(strategy.backends)} backends, not {case.backend!r}{why}"
    if case.variant != "none":
        return f"{name}: parallel cases take no variant (got {case.variant!r}){VARIANT_REASON}"
    why = comm.requires(case.comm, name, device_kind)
    if why is not None:
        return f"{name}: {why}"
    from .. import devices

    acc = devices.KINDS.get(device_kind) if device_kind in devices.KINDS else None
    if acc is None or not acc.parallel:
        runs = " or ".join(f"{a.name} ({a.dist_backend})" for a in devices.KINDS.values() if a.parallel)
        return f"{name}: torch.distributed runs here on {runs}, not {device_kind}"
    here = case.world_size // nnodes
    if acc.indexed and here > devices_of_kind:
        per = f" ({nnodes} nodes: {here} per node)" if nnodes > 1 else ""
        return f"{name}: world size {case.world_size}{per} needs {here} {acc.label} GPUs; this machine has {devices_of_kind}"
    if settings is not None and strategy.data_parallel:
        try:
            batches(name, case.batch_size, case.world_size, settings.scaling)
        except ValueError as e:
            return f"{name}: {e} (scaling = \"strong\")"
    return strategy.check(case, fam, settings)
