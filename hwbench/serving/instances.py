"""Several model instances behind one LoadGen SUT (the ``instances`` setting,
docs/serving.md).

Each instance is a real replica of the case's prepared model: built from the same seed,
through the same precision, variant and backend (:func:`replicas`), so no module is
shared between threads (a compiled or quantised module need not be safe to call from
two threads at once). Each instance is served by its own SUT thread
(:class:`hwbench.serving.sut.BatchingSUT`) and runs its forward passes on its own
:class:`hwbench.devices.accelerator.Lane`: a stream of its own where the device kind
has streams (CUDA, ROCm, XPU), so instances overlap on the device; none on the CPU,
where the instances are the threads and the case's intra-op threads are divided
between them (:func:`threads_per_instance`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from .. import backends


def threads_per_instance(total: int, instances: int) -> int:
    """The intra-op threads each of ``instances`` CPU instances runs with when the
    case has ``total``: ``max(1, total // instances)`` -- the instances together never
    use more threads than the case (except where there are more instances than
    threads: one each)."""
    if total < 1 or instances < 1:
        raise ValueError(f"threads ({total}) and instances ({instances}) must be at least 1")
    return max(1, total // instances)


def replicas(prep, n: int, build: Callable[[], Any]) -> list[Any]:
    """``prep`` and ``n - 1`` more prepared models from ``build()`` (each a fresh
    :class:`hwbench.backends.Prepared` of the same model, precision, variant and
    backend). Every replica's state must equal the first's, tensor by tensor, and own
    its storage: a RuntimeError says which tensor differs or is shared."""
    out = [prep]
    ref = _tensors(prep.model)
    for _ in range(n - 1):
        rep = build()
        mine = _tensors(rep.model)
        if mine.keys() != ref.keys():
            raise RuntimeError("a model replica's state has other entries than the first instance's")
        for k, t in mine.items():
            shared, same = _compare(t, ref[k])
            if shared:
                raise RuntimeError(f"a model replica shares {k!r} with the first instance")
            if same is False:
                raise RuntimeError(f"a model replica differs from the first instance in {k!r} (a build is not "
                                   "deterministic under the seed)")
        out.append(rep)
    return out


def _compare(t: torch.Tensor, r: torch.Tensor) -> tuple[bool, bool | None]:
    """(shares storage, equal) of two state tensors; equal is None where the tensor
    type cannot be compared (a quantised tensor subclass without these operations)."""
    try:
        shared = bool(t.numel()) and t.data_ptr() == r.data_ptr()
        same = t.shape == r.shape and t.dtype == r.dtype and bool(torch.equal(t, r))
    except (RuntimeError, TypeError, NotImplementedError):
        return False, None
    return shared, same


def _tensors(model) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict(keep_vars=False).items()
            if isinstance(v, torch.Tensor) and v.layout == torch.strided}


def build_replica(case, settings, fam, cfg, device) -> Any:
    """One more prepared model of ``case``, built as the worker builds the first
    (:func:`hwbench.serving.run.run`): same seed, precision, variant, backend."""
    torch.manual_seed(settings.seed)
    prep = backends.prepare(fam.build(cfg), case, device, fam.float_inputs)
    prep.model = backends.compile_model(prep.model, case, settings.compile_mode)
    prep.model.eval()
    return prep


@dataclass
class Instance:
    """One model instance: its prepared model, its lane on the device, the inputs it
    slices batches from, and the intra-op threads its SUT thread runs with (None:
    left as they are -- a device with streams)."""

    prep: Any
    lane: Any
    inputs: torch.Tensor
    threads: int | None

    def forward(self, n: int) -> None:
        """A forward pass of ``n`` samples on this instance's lane; returns when the
        lane's work is done."""
        with self.lane.scope(), torch.inference_mode(), self.prep.autocast():
            self.prep.model(self.inputs[:n])
        self.lane.synchronize()

    def enter_thread(self) -> None:
        """In the thread that serves this instance: its intra-op thread count (torch's
        count is per thread with the OpenMP backend)."""
        if self.threads is not None:
            torch.set_num_threads(self.threads)


def make_instances(preps: list[Any], inputs: torch.Tensor, acc, device, host_threads: int | None) -> list[Instance]:
    """One :class:`Instance` per prepared model, each on its own lane of ``acc``;
    ``host_threads``: the case's intra-op threads where they run it (CPU), divided
    between the instances, else None."""
    n = len(preps)
    share = threads_per_instance(host_threads, n) if host_threads is not None else None
    out = [Instance(p, acc.lane(device), inputs, share) for p in preps]
    acc.synchronize(device)  # the replicas' weights and the inputs are ready before any lane reads them
    return out
