"""BERT-style encoder module and batches (metadata in :mod:`hwbench.models.encoder`)."""

from __future__ import annotations

import torch
from torch import nn

from ..base import Config, Shape
from ..encoder import LABELS
from .common import classification_loss
from .transformer import Block


class Encoder(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        d = cfg["d"]
        self.tok = nn.Embedding(cfg["vocab"], d)
        self.pos = nn.Embedding(cfg["max_pos"], d)
        self.seg = nn.Embedding(2, d)
        self.ln = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList(
            Block(d, cfg["heads"], cfg["ffn"], causal=False, pre_ln=False, eps=1e-12) for _ in range(cfg["layers"])
        )
        self.pooler = nn.Linear(d, d)
        self.head = nn.Linear(d, LABELS)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.ln(self.tok(ids) + self.pos(pos) + self.seg(torch.zeros_like(ids)))
        for layer in self.layers:
            x, _ = layer(x)
        return self.head(torch.tanh(self.pooler(x[:, 0])))


def make_batch(cfg: Config, batch: int, shape: Shape, device, dtype):
    """Token ids (batch, seq) and class labels (batch,); ``dtype`` is unused (ids are int64)."""
    seq = shape.seq_len or cfg["seq_len"]
    ids = torch.randint(0, cfg["vocab"], (batch, seq), device=device)
    return ids, torch.randint(0, LABELS, (batch,), device=device)


# the family's entry points (hwbench.models.base.NETS_ENTRIES)
build = Encoder
loss = classification_loss
