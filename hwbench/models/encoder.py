"""BERT-style encoder: token + position + segment embeddings, post-LN layers, pooler,
and a two-way classification head. ``base`` reproduces BERT-base (12 layers, hidden 768,
12 heads): 109,482,240 parameters plus 1,538 in the head."""

from __future__ import annotations

from .base import Config, Shape, declare
from .transformer import layer_flops, layer_params

SIZES = {
    "tiny": {"vocab": 1000, "d": 64, "layers": 2, "heads": 2, "ffn": 256, "max_pos": 128, "seq_len": 32},
    "base": {"vocab": 30522, "d": 768, "layers": 12, "heads": 12, "ffn": 3072, "max_pos": 512, "seq_len": 128},
    "large": {"vocab": 30522, "d": 1024, "layers": 24, "heads": 16, "ffn": 4096, "max_pos": 512, "seq_len": 128},
}
LABELS = 2


def param_count(cfg: Config) -> int:
    d = cfg["d"]
    emb = (cfg["vocab"] + cfg["max_pos"] + 2) * d + 2 * d
    return emb + cfg["layers"] * layer_params(d, cfg["ffn"]) + (d * d + d) + (d * LABELS + LABELS)


def flops_forward(cfg: Config, shape: Shape) -> float:
    d, seq = cfg["d"], shape.seq_len or cfg["seq_len"]
    return cfg["layers"] * layer_flops(d, cfg["ffn"], seq) + 2.0 * d * d + 2.0 * d * LABELS


FAMILY = declare(
    globals(), "encoder",
    "BERT-style encoder with classification head; base = BERT-base",
    inputs="tokens", output=LABELS,
    max_seq_len="max_pos",  # the learned position table
)
