"""fsdp: FSDP2 (``torch.distributed.fsdp.fully_shard``). Parameters are sharded over the
ranks per transformer block (``model.layers``) or residual stage, then at the root; each
block's parameters are all-gathered for its forward and backward and its gradients
reduce-scattered."""

from __future__ import annotations


def units(model) -> list:
    """The modules sharded one by one: transformer blocks (``layers``), the CNN's
    residual stages (``stages``), else none (the root only)."""
    for name in ("layers", "stages", "blocks"):
        seq = getattr(model, name, None)
        if seq is not None and hasattr(seq, "__iter__"):
            return list(seq)
    return []


def requires(case, fam) -> str | None:
    return None


def make_step(prep, fam, inputs, targets, mesh):
    from torch.distributed.fsdp import fully_shard

    from .. import workloads

    dm = mesh.device_mesh()
    for unit in units(prep.model):
        fully_shard(unit, mesh=dm)
    fully_shard(prep.model, mesh=dm)
    return workloads.make_step("train", prep, fam.loss, inputs, targets)
