"""GPT-style causal decoder: pre-LN layers, learned positions, LM head tied to the token
embedding. ``small`` reproduces GPT-2 small (124,439,808 parameters); ``xl`` GPT-2 XL
(1,557,611,200)."""

from __future__ import annotations

import torch
from torch import nn

from .base import ModelFamily, Shape
from .transformer import Block, layer_flops, layer_params

SIZES = {
    "tiny": {"vocab": 1000, "d": 64, "layers": 2, "heads": 2, "ctx": 128, "seq_len": 32},
    "small": {"vocab": 50257, "d": 768, "layers": 12, "heads": 12, "ctx": 1024, "seq_len": 512},
    "medium": {"vocab": 50257, "d": 1024, "layers": 24, "heads": 16, "ctx": 1024, "seq_len": 512},
    "xl": {"vocab": 50257, "d": 1600, "layers": 48, "heads": 25, "ctx": 1024, "seq_len": 512},
}


class Decoder(nn.Module):
    def __init__(self, cfg):
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

    def forward(self, ids, cache=None, last_only: bool = False):
        """Logits for ``ids`` (B, T). With ``cache`` (a list of per-layer (k, v), as
        returned before) positions continue after the cached ones. Returns logits when
        ``cache`` is None, else ``(logits, new_cache)``. ``last_only`` computes the LM
        head for the final position only (generation)."""
        start = 0 if not cache else cache[0][0].shape[2]
        pos = torch.arange(start, start + ids.shape[1], device=ids.device)
        x = self.tok(ids) + self.pos(pos)
        new_cache = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, None if not cache else cache[i])
            new_cache.append(kv)
        x = self.ln_f(x)
        if last_only:
            x = x[:, -1:]
        logits = self.lm_head(x)
        return logits if cache is None else (logits, new_cache)


def param_count(cfg) -> int:
    d = cfg["d"]
    return (cfg["vocab"] + cfg["ctx"]) * d + cfg["layers"] * layer_params(d, 4 * d) + 2 * d


def flops_forward(cfg, shape: Shape) -> float:
    d, seq = cfg["d"], shape.seq_len or cfg["seq_len"]
    return cfg["layers"] * layer_flops(d, 4 * d, seq) + 2.0 * seq * d * cfg["vocab"]


def flops_generate(cfg, prompt: int, new_tokens: int) -> float:
    """FLOPs to generate ``new_tokens`` for one sequence after a ``prompt``-token prompt:
    prefill (LM head on the last position only) plus ``new_tokens - 1`` decode steps,
    each one token attending to every cached position."""
    d, layers, vocab = cfg["d"], cfg["layers"], cfg["vocab"]
    total = layers * layer_flops(d, 4 * d, prompt) + 2.0 * d * vocab
    for i in range(1, new_tokens):
        ctx = prompt + i
        total += layers * (2.0 * (4 * d * d + 8 * d * d) + 4.0 * ctx * d) + 2.0 * d * vocab
    return total


def make_batch(cfg, batch: int, shape: Shape, device, dtype):
    seq = shape.seq_len or cfg["seq_len"]
    ids = torch.randint(0, cfg["vocab"], (batch, seq), device=device)
    return ids, torch.randint(0, cfg["vocab"], (batch, seq), device=device)


FAMILY = ModelFamily(
    name="decoder",
    description="GPT-style causal decoder, tied LM head; small = GPT-2 small, xl = GPT-2 XL (1.56 B)",
    sizes=SIZES,
    build=Decoder,
    make_batch=make_batch,
    loss=lambda out, y: nn.functional.cross_entropy(out.float().flatten(0, 1), y.flatten()),
    flops_forward=flops_forward,
    param_count=param_count,
    default_shape=lambda cfg: Shape(seq_len=cfg["seq_len"]),
    shape_kind="seq_len",
    modes=("infer", "train", "generate"),
    float_inputs=False,
    extra={"max_seq_len": lambda cfg: cfg["ctx"], "flops_generate": flops_generate},
)
