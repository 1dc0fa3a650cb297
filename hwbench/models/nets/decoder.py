"""GPT-style decoder module and batches (metadata in :mod:`hwbench.models.decoder`).
:class:`Decoder` implements :class:`hwbench.models.base.GenerativeModel`."""

from __future__ import annotations

import torch
from torch import nn

from ..base import Config, KVCache
from .common import lm_batch, lm_layers, lm_loss
from .slots import SlotStep
from .transformer import Block


class Decoder(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        d = cfg["d"]
        self.tok = nn.Embedding(cfg["vocab"], d)
        self.pos = nn.Embedding(cfg["ctx"], d)
        self.layers = nn.ModuleList(
            Block(d, cfg["heads"], 4 * d, causal=True, pre_ln=True, eps=1e-5) for _ in range(cfg["layers"])
        )
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        self.lm_head = nn.Linear(d, cfg["vocab"], bias=False)
        self.lm_head.weight = self.tok.weight  # tied, as in GPT-2

    def forward(
        self, ids: torch.Tensor, cache: KVCache | None = None, last_only: bool = False, slots: SlotStep | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, KVCache]:
        """Logits for ``ids`` (B, T); the :class:`~hwbench.models.base.GenerativeModel`
        contract. With ``cache`` (``[]`` to start, else a list of per-layer (k, v) as
        returned before) positions continue after the cached ones. Returns logits when
        ``cache`` is None, else ``(logits, new_cache)``. ``last_only`` computes the LM
        head for the final position only (generation). ``slots``: each row continues
        its own slot of a slot cache (:mod:`.slots`), returns the logits."""
        if slots is not None:
            pos = slots.positions  # (B, T): each row's own positions
        else:
            start = 0 if not cache else cache[0][0].shape[2]
            pos = torch.arange(start, start + ids.shape[1], device=ids.device)
        x = self.tok(ids) + self.pos(pos)
        return lm_layers(x, self.layers, self.ln_f, self.lm_head, cache, last_only, slots=slots)


# the family's entry points (hwbench.models.base.NETS_ENTRIES)
build = Decoder
make_batch = lm_batch
loss = lm_loss
