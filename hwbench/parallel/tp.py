"""tp: tensor parallelism with DTensor (``parallelize_module``). In each transformer
block the query / key / value projections and the first MLP layer are split column-wise
and the attention output projection and second MLP layer row-wise (Megatron-LM's
layout): one allreduce of the activations after attention and one after the MLP, in the
forward and again in the backward. Embeddings, norms and heads stay replicated (every
rank computes them on the same inputs, so their gradients agree without communication).

With the ``compile`` backend the whole model is compiled after ``parallelize_module``
(dynamo traces the DTensor layers, their collectives become functional collectives in
the graph), the order torchtitan uses (``apply_tp`` before ``apply_compile``).
"""

from __future__ import annotations

from .strategy import STRATEGIES, Strategy

# families whose blocks are hwbench.models.nets.transformer.Block (q, k, v, o, fc1, fc2)
FAMILIES = ("encoder", "decoder")
BACKENDS = ("eager", "compile")
PLAN = {"attn.q": "colwise", "attn.k": "colwise", "attn.v": "colwise", "attn.o": "rowwise",
        "fc1": "colwise", "fc2": "rowwise"}


def requires(case, fam, settings=None) -> str | None:
    if fam.name not in FAMILIES:
        return f"tp: no tensor-parallel plan for {fam.name} models (plans exist for {', '.join(FAMILIES)})"
    cfg = fam.sizes[case.model.partition(":")[2]]
    n = case.world_size
    heads, ffn = cfg["heads"], cfg.get("ffn", 4 * cfg["d"])
    if heads % n:
        return f"tp: degree {n} does not divide {case.model}'s {heads} attention heads"
    if ffn % n:
        return f"tp: degree {n} does not divide {case.model}'s MLP width {ffn}"
    return None


def make_step(prep, fam, inputs, targets, mesh, compile_fn):
    """Split every block (:data:`PLAN`), then compile the model (``compile_fn``: the
    case's backend; identity for eager); return the train step."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    from .. import workloads
    from ..models.nets.transformer import Block

    dm = mesh.device_mesh()
    styles = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}
    plan = {k: styles[v]() for k, v in PLAN.items()}
    for block in (m for m in prep.model.modules() if isinstance(m, Block)):
        parallelize_module(block, dm, plan)
        # each rank now computes heads / N of the heads: the local view's head count
        block.attn.heads //= mesh.world_size
    prep.model = compile_fn(prep.model)
    return workloads.make_step("train", prep, fam.loss, inputs, targets)


STRATEGIES.register(Strategy(
    "tp", "tensor parallel (DTensor): each block's layers split over the ranks",
    data_parallel=False, backends=BACKENDS, check=requires, make_step=make_step,
))
