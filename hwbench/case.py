"""The core value objects: a case (one point of a suite's matrix) and its input shape.

A leaf module (standard library only): the suite parser (:mod:`hwbench.spec`), the
registries (precisions, backends, variants, parallel strategies, models) and the runner
all import it, and it imports none of them. ``Case.case_id`` is the stable identity of
a case across runs: results files key on it, so its format never changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Shape:
    """The per-sample input shape of a case: a sequence length or an image size.

    ``seq_len`` (tokens) for the transformer families, ``image_size`` (pixels, square)
    for the CNN, neither for the MLP (its width is part of the size).
    """

    seq_len: int | None = None
    image_size: int | None = None

    def label(self) -> str:
        if self.seq_len is not None:
            return f"seq{self.seq_len}"
        if self.image_size is not None:
            return f"img{self.image_size}"
        return ""



@dataclass(frozen=True)
class Case:
    """One point of the matrix. Frozen and hashable; ``case_id`` is stable across runs."""

    model: str  # family:size
    mode: str
    batch_size: int
    precision: str
    backend: str
    device: str
    threads: int | None = None
    seq_len: int | None = None
    image_size: int | None = None
    variant: str = "none"
    gen_tokens: int | None = None  # generate mode: tokens to generate after the prompt (seq_len)
    # a torchrun group of ``world_size`` ranks (hwbench.parallel); "none": one worker process.
    # Defaults keep the case ids of single-process cases as they were.
    parallelism: str = "none"
    world_size: int = 1
    comm: str = "none"  # gradient compression (hwbench.parallel.comm); "none" keeps case ids as they were
    # data cases (hwbench.io.data): the DataLoader's settings; None elsewhere (and
    # prefetch_factor / persistent_workers without loader processes), keeping case ids
    num_workers: int | None = None
    pin_memory: bool | None = None
    prefetch_factor: int | None = None
    persistent_workers: bool | None = None
    # checkpoint cases (hwbench.io.checkpoint): "torch_save", "dcp", "dcp_async"
    checkpointer: str | None = None
    # serving under load (hwbench.serving): a LoadGen scenario of an infer case, or the
    # arrival process of a generate case at ``load`` requests/s; ``load`` is a Server
    # case's offered queries/s (None: its capacity search). Defaults keep case ids.
    scenario: str = "none"
    load: float | None = None
    arrival: str = "none"
    # the SLOs a serving case is judged by (the block's, else the suite's settings), ms;
    # not part of case_id
    latency_slo_ms: float | None = None
    ttft_slo_ms: float | None = None
    tpot_slo_ms: float | None = None
    # LoadGen scenario cases: model replicas serving the SUT's queue at once (its
    # ``inst<N>`` case-id part where above 1; 1 keeps case ids)
    instances: int = 1

    @property
    def auto_batch(self) -> bool:
        """A placeholder for batch_sizes = ["auto"]: the runner searches the limit and
        replaces it with concrete cases."""
        return self.batch_size == 0

    @property
    def case_id(self) -> str:
        shape = Shape(self.seq_len, self.image_size).label()
        if self.gen_tokens is not None:
            shape += f"+gen{self.gen_tokens}"
        bs = "bsauto" if self.auto_batch else f"bs{self.batch_size}"
        parts = [self.model, self.mode, bs, shape, self.precision, self.backend, self.device]
        if self.threads is not None:
            parts.append(f"t{self.threads}")
        if self.variant != "none":
            parts.append(self.variant)
        if self.parallelism != "none":
            parts.append(f"{self.parallelism}{self.world_size}")
        if self.comm != "none":
            parts.append(self.comm)
        parts.extend(self.io_parts())
        if self.instances != 1:
            parts.append(f"inst{self.instances}")
        if self.scenario != "none":
            parts.append(self.scenario + (f"@{self.load:g}qps" if self.load is not None else ""))
        if self.arrival != "none":
            parts.append(f"{self.arrival}@{self.load:g}rps")
        return "/".join(p for p in parts if p)

    def io_parts(self) -> list[str]:
        """The case-id parts of a data or checkpoint case: ``w2``, ``pin``, ``pf4``,
        ``persist`` (loader workers, pinned memory, prefetch, persistent workers), or the
        checkpointer's name; none for other cases."""
        out = []
        if self.num_workers is not None:
            out.append(f"w{self.num_workers}")
        if self.pin_memory:
            out.append("pin")
        if self.prefetch_factor is not None:
            out.append(f"pf{self.prefetch_factor}")
        if self.persistent_workers:
            out.append("persist")
        if self.checkpointer is not None:
            out.append(self.checkpointer)
        return out

    @property
    def family(self) -> str:
        return self.model.partition(":")[0]

    @property
    def size(self) -> str:
        return self.model.partition(":")[2]

    @property
    def shape(self) -> Shape:
        return Shape(self.seq_len, self.image_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Case":
        return cls(**d)
