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

    from .. import devices

    # DDP takes the one device of a single-device module on indexed kinds (CUDA, ROCm)
    ids = [mesh.local_rank] if devices.of_torch(mesh.device_type).indexed else None
    bucket_cap_mb = one_bucket_on_gloo(prep.model, comm, mesh, bucket_cap_mb)
    kw = {} if bucket_cap_mb is None else {"bucket_cap_mb": bucket_cap_mb}
    prep.model = DistributedDataParallel(compile_fn(prep.model), device_ids=ids, **kw)
    state = comms.register_ddp_hook(prep.model, comm)
    step = workloads.make_step("train", prep, fam.loss, inputs, targets)
    step.powersgd = state
    return step


def one_bucket_on_gloo(model, comm: str, mesh, bucket_cap_mb: float | None) -> float | None:
    """The bucket size to give DDP. PowerSGD on gloo (CPU) gets one bucket holding every
    gradient: its hook issues each bucket's second and third allreduce from gloo's
    callback threads, so with several buckets the two ranks issue their collectives in
    different orders and the group deadlocks (seen with mlp:base at 2 ranks, torch
    2.13). A ``bucket_cap_mb`` set by the user that is already large enough stands.
    (DDP's small first bucket is used only when no bucket size is given, so an explicit
    size makes every bucket that size.)"""
    from .. import devices
    from .comm import powersgd_rank

    if powersgd_rank(comm) is None or devices.of_torch(mesh.device_type).dist_backend != "gloo":
        return bucket_cap_mb
    need = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad) / 2**20
    return max(bucket_cap_mb or 0.0, need + 1.0)


STRATEGIES.register(Strategy(
    "ddp", "DistributedDataParallel: whole model per rank, gradients allreduced",
    data_parallel=True, backends=BACKENDS, check=requires, make_step=make_step, comm=True,
))
