"""ddp: DistributedDataParallel. Every rank holds the whole model and its own batch;
gradients are averaged by allreduce in buckets, overlapped with the backward pass."""

from __future__ import annotations


def requires(case, fam) -> str | None:
    """Any model that trains: DDP replicates it whole."""
    return None


def make_step(prep, fam, inputs, targets, mesh):
    """Wrap ``prep.model`` in DDP (one device per rank on CUDA) and return the train step."""
    from torch.nn.parallel import DistributedDataParallel

    from .. import workloads

    ids = [mesh.local_rank] if mesh.device_type == "cuda" else None
    prep.model = DistributedDataParallel(prep.model, device_ids=ids)
    return workloads.make_step("train", prep, fam.loss, inputs, targets)
