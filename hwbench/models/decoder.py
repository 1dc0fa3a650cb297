"""GPT-style causal decoder: pre-LN layers, learned positions, LM head tied to the token
embedding. ``small`` reproduces GPT-2 small (124,439,808 parameters); ``xl`` GPT-2 XL
(1,557,611,200)."""

from __future__ import annotations

from .base import Config, Shape, declare
from .transformer import layer_flops, layer_params

SIZES = {
    "tiny": {"vocab": 1000, "d": 64, "layers": 2, "heads": 2, "ctx": 128, "seq_len": 32},
    "small": {"vocab": 50257, "d": 768, "layers": 12, "heads": 12, "ctx": 1024, "seq_len": 512},
    "medium": {"vocab": 50257, "d": 1024, "layers": 24, "heads": 16, "ctx": 1024, "seq_len": 512},
    "xl": {"vocab": 50257, "d": 1600, "layers": 48, "heads": 25, "ctx": 1024, "seq_len": 512},
}


def param_count(cfg: Config) -> int:
    d = cfg["d"]
    return (cfg["vocab"] + cfg["ctx"]) * d + cfg["layers"] * layer_params(d, 4 * d) + 2 * d


def flops_forward(cfg: Config, shape: Shape) -> float:
    d, seq = cfg["d"], shape.seq_len or cfg["seq_len"]
    return cfg["layers"] * layer_flops(d, 4 * d, seq) + 2.0 * seq * d * cfg["vocab"]


def flops_generate(cfg: Config, prompt_len: int, new_tokens: int) -> float:
    """FLOPs to generate ``new_tokens`` for one sequence after a ``prompt_len``-token
    prompt: prefill (LM head on the last position only) plus ``new_tokens - 1`` decode
    steps, each one token attending to every cached position."""
    d, layers, vocab = cfg["d"], cfg["layers"], cfg["vocab"]
    total = layers * layer_flops(d, 4 * d, prompt_len) + 2.0 * d * vocab
    for i in range(1, new_tokens):
        ctx = prompt_len + i
        total += layers * (2.0 * (4 * d * d + 8 * d * d) + 4.0 * ctx * d) + 2.0 * d * vocab
    return total


FAMILY = declare(
    globals(), "decoder",
    "GPT-style causal decoder, tied LM head; small = GPT-2 small, xl = GPT-2 XL (1.56 B)",
    inputs="tokens", output="vocab",
    max_seq_len="ctx",  # the learned position table: prompt + generated tokens
)
