"""fsdp: FSDP2 (``torch.distributed.fsdp.fully_shard``). Parameters are sharded over the
ranks per transformer block (``model.layers``) or residual stage, then at the root; each
block's parameters are all-gathered for its forward and backward and its gradients
reduce-scattered.

With the ``compile`` backend each block is compiled on its own and then sharded, as
torchtitan does (``apply_compile`` before ``apply_fsdp``: "per-TransformerBlock compile
after AC wrapping and before FSDP"): the blocks share one structure, so one compiled
graph serves them all, and FSDP's all-gather / reduce-scatter hooks run around each
compiled block. A model with no blocks is compiled whole before its root is sharded."""

from __future__ import annotations

from .strategy import STRATEGIES, Strategy

BACKENDS = ("eager", "compile")


def _container(model):
    for name in ("layers", "stages", "blocks"):
        seq = getattr(model, name, None)
        if seq is not None and hasattr(seq, "__iter__"):
            return seq
    return None


def units(model) -> list:
    """The modules sharded one by one: transformer blocks (``layers``), the CNN's
    residual stages (``stages``), else none (the root only)."""
    seq = _container(model)
    return [] if seq is None else list(seq)


def requires(case, fam, settings=None) -> str | None:
    return None


def make_step(prep, fam, inputs, targets, mesh, compile_fn):
    """Compile (``compile_fn``: the case's backend; identity for eager) and shard
    ``prep.model`` block by block, then at the root; return the train step."""
    from torch.distributed.fsdp import fully_shard

    from .. import workloads

    dm = mesh.device_mesh()
    seq = _container(prep.model)
    if seq is None:
        prep.model = compile_fn(prep.model)
    else:
        for i, unit in enumerate(list(seq)):
            seq[i] = compile_fn(unit)  # in place: the parent holds the compiled block
    for unit in units(prep.model):
        fully_shard(unit, mesh=dm)
    fully_shard(prep.model, mesh=dm)
    return workloads.make_step("train", prep, fam.loss, inputs, targets)


STRATEGIES.register(Strategy(
    "fsdp", "FSDP2 fully_shard: parameters sharded per block, all-gathered for compute",
    data_parallel=True, backends=BACKENDS, check=requires, make_step=make_step,
))
