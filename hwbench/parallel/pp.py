"""pp: pipeline parallelism with ``torch.distributed.pipelining``. The model's layers are
split into ``world_size`` contiguous stages (the embeddings go with the first, the
pooler and head with the last), each a manual :class:`PipelineStage`; a step runs the
group batch as ``microbatches`` microbatches through ``ScheduleGPipe`` (all forwards,
then all backwards) or ``Schedule1F1B`` (setting ``pp_schedule``). Activations travel
forward and their gradients backward by point-to-point send / recv between neighbours.
"""

from __future__ import annotations

from .strategy import STRATEGIES, Strategy

# families with a stage split below; the decoder ties its LM head to the token
# embedding, which would put one parameter on the first and the last stage
FAMILIES = ("encoder",)
BACKENDS = ("eager", "compile")


def requires(case, fam, settings=None) -> str | None:
    if fam.name not in FAMILIES:
        why = " (its LM head is tied to the first stage's embedding)" if fam.name == "decoder" else ""
        return f"pp: no stage split for {fam.name} models{why}; splits exist for {', '.join(FAMILIES)}"
    layers = fam.sizes[case.model.partition(":")[2]]["layers"]
    if layers < case.world_size:
        return f"pp: {case.model} has {layers} layers, too few for {case.world_size} stages"
    if settings is not None:
        from .mesh import batches

        _, group = batches("pp", case.batch_size, case.world_size, settings.scaling)
        if group % settings.microbatches:
            return f"pp: the batch of {group} does not divide into microbatches = {settings.microbatches}"
    return None


def split(n_layers: int, n_stages: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) layer ranges, as even as possible, earlier stages taking the rest."""
    q, r = divmod(n_layers, n_stages)
    out, lo = [], 0
    for s in range(n_stages):
        hi = lo + q + (s < r)
        out.append((lo, hi))
        lo = hi
    return out


def _encoder_stage(model, lo: int, hi: int, first: bool, last: bool):
    import torch
    from torch import nn

    class EncoderStage(nn.Module):
        def __init__(self):
            super().__init__()
            if first:
                self.tok, self.pos, self.seg, self.ln = model.tok, model.pos, model.seg, model.ln
            self.layers = nn.ModuleList(model.layers[lo:hi])
            if last:
                self.pooler, self.head = model.pooler, model.head

        def forward(self, x):
            if first:
                ids = x
                pos = torch.arange(ids.shape[1], device=ids.device)
                x = self.ln(self.tok(ids) + self.pos(pos) + self.seg(torch.zeros_like(ids)))
            for layer in self.layers:
                x, _ = layer(x)
            if last:
                return self.head(torch.tanh(self.pooler(x[:, 0])))
            return x

    return EncoderStage()


def make_step(prep, fam, inputs, targets, mesh, compile_fn):
    """This rank's stage module, compiled (``compile_fn``: the case's backend; identity
    for eager) before its :class:`PipelineStage` is built; returns the train step."""
    import torch
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

    lo, hi = split(len(prep.model.layers), mesh.world_size)[mesh.rank]
    stage_mod = compile_fn(_encoder_stage(prep.model, lo, hi, mesh.is_first, mesh.is_last))
    prep.model = stage_mod
    stage = PipelineStage(stage_mod, mesh.rank, mesh.world_size, torch.device(mesh.device))
    cls = Schedule1F1B if mesh.pp_schedule == "1f1b" else ScheduleGPipe
    schedule = cls(stage, n_microbatches=mesh.microbatches, loss_fn=fam.loss)
    stage_mod.train()
    opt = torch.optim.AdamW(stage_mod.parameters(), lr=1e-4)

    def train():
        losses: list = []
        with prep.autocast():
            if mesh.is_first and mesh.is_last:
                schedule.step(inputs, target=targets, losses=losses)
            elif mesh.is_first:
                schedule.step(inputs)
            elif mesh.is_last:
                schedule.step(target=targets, losses=losses)
            else:
                schedule.step()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return losses

    return train


STRATEGIES.register(Strategy(
    "pp", "pipeline parallel: contiguous layer stages, microbatches sent between them",
    data_parallel=False, backends=BACKENDS, check=requires, make_step=make_step,
))
