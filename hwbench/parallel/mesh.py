"""The one frozen description of a parallel case's process mesh. Every strategy reads it
(and nothing else about the group): who this rank is, how many ranks there are, which
device and communication backend it uses, and how the batch is split.

Batch semantics (``scaling`` setting):

* ``weak`` (default): ``batch_size`` is per rank. The group processes ``batch_size x
  world_size`` samples per step: data-parallel ranks (``Strategy.data_parallel``) each take
  ``batch_size``; tp ranks all see the whole group batch (each holds 1/N of every
  layer); the pp pipeline carries it as ``microbatches`` microbatches. Work per rank stays
  constant, so ``throughput(N) / (N x throughput(1))`` is the weak-scaling efficiency.
* ``strong``: ``batch_size`` is the group's global batch; data-parallel ranks take
  ``batch_size / world_size`` each (it must divide).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .strategy import STRATEGIES


def batches(strategy: str, batch_size: int, world_size: int, scaling: str) -> tuple[int, int]:
    """(samples each rank feeds per step, samples the group processes per step). Raises
    ValueError where a strong-scaling batch does not divide over the ranks."""
    group = batch_size * world_size if scaling == "weak" else batch_size
    if STRATEGIES.get(strategy).data_parallel:
        if group % world_size:
            raise ValueError(f"global batch {group} does not divide over {world_size} ranks")
        return group // world_size, group
    return group, group  # tp: every rank sees the group batch; pp: the first stage feeds it


@dataclass(frozen=True)
class Mesh:
    """This rank's place in the group. ``device`` as torch names it ("cpu", "cuda:1");
    ``backend`` the c10d backend (gloo on CPU, nccl on CUDA)."""

    strategy: str
    world_size: int
    rank: int
    local_rank: int
    local_world_size: int
    device: str
    backend: str
    rank_batch: int  # samples this rank feeds per step (pp: the first stage's whole batch)
    group_batch: int  # samples the group processes per step
    microbatches: int = 1  # pp only
    pp_schedule: str = "gpipe"  # pp only

    @property
    def is_first(self) -> bool:
        return self.rank == 0

    @property
    def is_last(self) -> bool:
        return self.rank == self.world_size - 1

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    @classmethod
    def from_env(cls, strategy: str, device_kind: str, batch_size: int, scaling: str, microbatches: int = 1,
                 pp_schedule: str = "gpipe", env=os.environ) -> "Mesh":
        """The mesh of this process as torchrun described it (RANK, WORLD_SIZE, LOCAL_RANK,
        LOCAL_WORLD_SIZE). On an indexed kind (CUDA, ROCm) each rank takes the device of
        its local rank; ``device`` is the torch device ("cuda:1" for ROCm's "rocm:1"),
        ``backend`` the kind's torch.distributed backend."""
        from .. import devices

        acc = devices.KINDS.get(device_kind)
        ws, rank = int(env["WORLD_SIZE"]), int(env["RANK"])
        local, local_ws = int(env.get("LOCAL_RANK", rank)), int(env.get("LOCAL_WORLD_SIZE", ws))
        device = str(acc.torch_device(f"{device_kind}:{local}" if acc.indexed else device_kind))
        rank_batch, group_batch = batches(strategy, batch_size, ws, scaling)
        return cls(strategy, ws, rank, local, local_ws, device, acc.dist_backend,
                   rank_batch, group_batch, microbatches, pp_schedule)

    def device_mesh(self):
        """A 1-D torch DeviceMesh over the whole group (fsdp, tp)."""
        from torch.distributed.device_mesh import init_device_mesh

        return init_device_mesh(self.device_type, (self.world_size,))
