"""BERT-style encoder: token + position + segment embeddings, post-LN layers, pooler,
and a two-way classification head. ``base`` reproduces BERT-base (12 layers, hidden 768,
12 heads): 109,482,240 parameters plus 1,538 in the head."""

from __future__ import annotations

import torch
from torch import nn

from .base import ModelFamily, Shape
from .transformer import Block, layer_flops, layer_params

SIZES = {
    "tiny": {"vocab": 1000, "d": 64, "layers": 2, "heads": 2, "ffn": 256, "max_pos": 128, "seq_len": 32},
    "base": {"vocab": 30522, "d": 768, "layers": 12, "heads": 12, "ffn": 3072, "max_pos": 512, "seq_len": 128},
    "large": {"vocab": 30522, "d": 1024, "layers": 24, "heads": 16, "ffn": 4096, "max_pos": 512, "seq_len": 128},
}
LABELS = 2


class Encoder(nn.Module):
    def __init__(self, cfg):
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


def param_count(cfg) -> int:
    d = cfg["d"]
    emb = (cfg["vocab"] + cfg["max_pos"] + 2) * d + 2 * d
    return emb + cfg["layers"] * layer_params(d, cfg["ffn"]) + (d * d + d) + (d * LABELS + LABELS)


def flops_forward(cfg, shape: Shape) -> float:
    d, seq = cfg["d"], shape.seq_len or cfg["seq_len"]
    return cfg["layers"] * layer_flops(d, cfg["ffn"], seq) + 2.0 * d * d + 2.0 * d * LABELS


def make_batch(cfg, batch: int, shape: Shape, device, dtype):
    seq = shape.seq_len or cfg["seq_len"]
    ids = torch.randint(0, cfg["vocab"], (batch, seq), device=device)
    return ids, torch.randint(0, LABELS, (batch,), device=device)


FAMILY = ModelFamily(
    name="encoder",
    description="BERT-style encoder with classification head; base = BERT-base",
    sizes=SIZES,
    build=Encoder,
    make_batch=make_batch,
    loss=lambda out, y: nn.functional.cross_entropy(out.float(), y),
    flops_forward=flops_forward,
    param_count=param_count,
    default_shape=lambda cfg: Shape(seq_len=cfg["seq_len"]),
    shape_kind="seq_len",
    float_inputs=False,
    extra={"max_seq_len": lambda cfg: cfg["max_pos"]},
)
