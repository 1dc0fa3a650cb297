"""ddp: DistributedDataParallel. Every rank holds the whole model and its own batch;
gradients are averaged by allreduce in buckets, overlapped with the backward pass.

With the ``compile`` backend the model is compiled and then wrapped, as PyTorch's "Where
to apply torch.compile?" page recommends for DDP (``model.compile()`` then
``DistributedDataParallel(model)``): DDP's forward marks itself the active DDP module,
so dynamo's DDPOptimizer (``torch._dynamo.config.optimize_ddp``, on by default) still
splits the compiled graph at DDP's bucket boundaries and each bucket's allreduce still
overlaps the rest of the backward pass."""

from __future__ import annotations

from .strategy import STRATEGIES, Strategy

# the backends this strategy runs (hwbench.parallel.requires refuses the others)
BACKENDS = ("eager", "compile")


def requires(case, fam, settings=None) -> str | None:
    """Any model that trains: DDP replicates it whole."""
    return None


def make_step(prep, fam, inputs, targets, mesh, compile_fn, comm="none", bucket_cap_mb=None):
    """Compile ``prep.model`` (``compile_fn``: the case's backend; identity for eager),
    wrap it in DDP (one device per rank on CUDA; ``bucket_cap_mb``: its bucket size,
    None: torch's default) with ``comm``'s communication hook, and return the train
    step. Its ``powersgd`` attribute is the PowerSGD state (None for other hooks)."""
    from torch.nn.parallel import DistributedDataParallel

    from .. import workloads
    from . import comm as comms

    ids = [mesh.local_rank] if mesh.device_type == "cuda" else None
    kw = {} if bucket_cap_mb is None else {"bucket_cap_mb": bucket_cap_mb}
    prep.model = DistributedDataParallel(compile_fn(prep.model), device_ids=ids, **kw)
    state = comms.register_ddp_hook(prep.model, comm)
    step = workloads.make_step("train", prep, fam.loss, inputs, targets)
    step.powersgd = state
    return step


STRATEGIES.register(Strategy(
    "ddp", "DistributedDataParallel: whole model per rank, gradients allreduced",
    data_parallel=True, backends=BACKENDS, check=requires, make_step=make_step, comm=True,
))
