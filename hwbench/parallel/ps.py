"""ps: parameter-server training, the classic alternative to allreduce. Rank 0 is the
server: it holds the optimizer state and applies every update. Every rank (the server
included) is a worker that computes gradients on its own batch, pushes them to the
server with ``gather`` and pulls the updated parameters back by point-to-point ``send``
/ ``recv`` (the server sends one copy per worker: its link carries (N-1) x the model,
which is what allreduce avoids). ``torch.distributed.rpc`` is in maintenance and not
used.

With the ``compile`` backend every rank compiles the model it trains (the forward and
its backward); the push, the update and the pull stay eager."""

from __future__ import annotations

from .strategy import STRATEGIES, Strategy

BACKENDS = ("eager", "compile")


def requires(case, fam, settings=None) -> str | None:
    return None


def make_step(prep, fam, inputs, targets, mesh, compile_fn, comm="none", bucket_cap_mb=None):
    """The train step: compiled forward and backward (``compile_fn``: the case's backend;
    identity for eager), gradients pushed to rank 0, parameters pulled back; with
    ``comm`` fp16 / bf16 both travel in that type (the server averages and updates in
    the parameters' type; workers load the rounded parameters). ``bucket_cap_mb``: ddp's,
    unused."""
    import torch
    import torch.distributed as dist
    from torch.nn.utils import parameters_to_vector, vector_to_parameters

    from . import comm as comms

    model = prep.model = compile_fn(prep.model)  # the same parameters, compiled call
    params = [p for p in model.parameters() if p.requires_grad]
    server = mesh.rank == 0
    n = mesh.world_size
    opt = torch.optim.AdamW(params, lr=1e-4) if server else None
    wire = comms.wire_dtype(comm)
    model.train()

    def train():
        with prep.autocast():
            loss = fam.loss(model(inputs), targets)
        loss.backward()
        grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        dtype = grad.dtype
        if wire is not None:
            grad = grad.to(wire)
        if server:
            pushed = [torch.empty_like(grad) for _ in range(n)]
            dist.gather(grad, pushed, dst=0)  # push: every worker's gradients to the server
            mean = torch.stack(pushed).to(dtype).sum(0) / n
            for p, g in zip(params, _unflatten(mean, params)):
                p.grad = g
            opt.step()
            flat = parameters_to_vector(params).detach()
            if wire is not None:
                flat = flat.to(wire)
            works = [dist.isend(flat, r) for r in range(1, n)]  # pull: the new parameters to each worker
            for w in works:
                w.wait()
            opt.zero_grad(set_to_none=True)
        else:
            dist.gather(grad, None, dst=0)
            flat = torch.empty_like(grad)
            dist.recv(flat, 0)
            with torch.no_grad():
                vector_to_parameters(flat.to(dtype), params)
            for p in params:
                p.grad = None
        return loss

    return train


def _unflatten(flat, params):
    out, i = [], 0
    for p in params:
        out.append(flat[i:i + p.numel()].view_as(p).clone())
        i += p.numel()
    return out


STRATEGIES.register(Strategy(
    "ps", "parameter server: rank 0 applies the updates, workers push and pull",
    data_parallel=True, backends=BACKENDS, check=requires, make_step=make_step, comm=True,
))
