"""Llama-style causal decoder: RMSNorm, rotary position embeddings, SwiGLU MLP,
grouped-query attention (fewer key/value heads than query heads, shared by groups of
query heads), no biases; the KV cache holds the key/value heads only.

``1b`` reproduces Llama 3.2 1B (hidden 2048, 16 layers, 32 query / 8 KV heads, MLP 8192,
vocabulary 128,256, LM head tied to the embedding, llama3 RoPE scaling): 1,235,814,400
parameters. ``8b`` reproduces Llama 3 8B (hidden 4096, 32 layers, 32 / 8 heads, MLP
14,336, untied head): 8,030,261,248 parameters. Weights are random: these measure speed
and memory, not language. ``tiny`` and ``nano`` run in milliseconds on a CPU; they share
a vocabulary, so ``nano`` can be distilled from ``tiny`` (as ``1b`` from ``8b``).

The counts here are shared by the mixture-of-experts family (:mod:`hwbench.models.moe`),
whose layers differ only in the MLP.
"""

from __future__ import annotations

from .base import Config, Shape, declare

# rope_scaling: (factor, low_freq_factor, high_freq_factor, original context), the
# "llama3" frequency scaling of Llama 3.1 / 3.2; None: plain RoPE.
SIZES = {
    # nano: a smaller student for tiny in distillation tests (same vocabulary)
    "nano": {"vocab": 1000, "d": 32, "layers": 1, "heads": 2, "kv_heads": 1, "ffn": 88, "tied": True,
             "max_pos": 256, "rope_theta": 10000.0, "rope_scaling": None, "eps": 1e-5, "seq_len": 32},
    "tiny": {"vocab": 1000, "d": 64, "layers": 2, "heads": 4, "kv_heads": 2, "ffn": 176, "tied": True,
             "max_pos": 256, "rope_theta": 10000.0, "rope_scaling": None, "eps": 1e-5, "seq_len": 32},
    "1b": {"vocab": 128256, "d": 2048, "layers": 16, "heads": 32, "kv_heads": 8, "ffn": 8192, "tied": True,
           "max_pos": 131072, "rope_theta": 500000.0, "rope_scaling": (32.0, 1.0, 4.0, 8192), "eps": 1e-5,
           "seq_len": 512},
    "8b": {"vocab": 128256, "d": 4096, "layers": 32, "heads": 32, "kv_heads": 8, "ffn": 14336, "tied": False,
           "max_pos": 8192, "rope_theta": 500000.0, "rope_scaling": None, "eps": 1e-5, "seq_len": 512},
}


def kv_dim(cfg: Config) -> int:
    """Width of the key (and of the value) projection: KV heads x head dimension."""
    return cfg["kv_heads"] * (cfg["d"] // cfg["heads"])


def attention_params(cfg: Config) -> int:
    """q, k, v, o projections without biases."""
    d = cfg["d"]
    return 2 * d * d + 2 * d * kv_dim(cfg)


def mlp_params(cfg: Config) -> int:
    """One SwiGLU MLP: gate, up and down projections, no biases."""
    return 3 * cfg["d"] * cfg["ffn"]


def embedding_params(cfg: Config) -> int:
    """Token embedding, LM head unless tied, final RMSNorm."""
    return cfg["vocab"] * cfg["d"] * (1 if cfg["tied"] else 2) + cfg["d"]


def param_count(cfg: Config) -> int:
    per_layer = attention_params(cfg) + mlp_params(cfg) + 2 * cfg["d"]  # + 2 RMSNorms
    return embedding_params(cfg) + cfg["layers"] * per_layer


def matmul_flops_per_token(cfg: Config, mlp_params_per_token: float) -> float:
    """Forward FLOPs per token of every layer's weight matmuls (projections and the MLP
    weights a token goes through), without attention scores and without the LM head."""
    return 2.0 * cfg["layers"] * (attention_params(cfg) + mlp_params_per_token)


def attention_flops(cfg: Config, queries: int, keys: int) -> float:
    """Scores and weighted sum of every layer for ``queries`` positions attending to
    ``keys`` positions, over the query heads (grouped KV heads are broadcast, not
    shared work): 2 products x 2 FLOPs x queries x keys x d. Counted over the full
    matrix when causal, as the kernels compute (see :mod:`hwbench.models.transformer`)."""
    return 4.0 * cfg["layers"] * queries * keys * cfg["d"]


def forward_flops(cfg: Config, seq: int, mlp_params_per_token: float) -> float:
    return (seq * matmul_flops_per_token(cfg, mlp_params_per_token) + attention_flops(cfg, seq, seq)
            + 2.0 * seq * cfg["d"] * cfg["vocab"])


def generate_flops(cfg: Config, prompt_len: int, new_tokens: int, mlp_params_per_token: float) -> float:
    """Prefill (LM head on the last position only) plus ``new_tokens - 1`` decode
    steps, each one token attending to every cached position."""
    per_token = matmul_flops_per_token(cfg, mlp_params_per_token)
    head = 2.0 * cfg["d"] * cfg["vocab"]
    total = prompt_len * per_token + attention_flops(cfg, prompt_len, prompt_len) + head
    for i in range(1, new_tokens):
        total += per_token + attention_flops(cfg, 1, prompt_len + i) + head
    return total


def flops_forward(cfg: Config, shape: Shape) -> float:
    return forward_flops(cfg, shape.seq_len or cfg["seq_len"], mlp_params(cfg))


def flops_generate(cfg: Config, prompt_len: int, new_tokens: int) -> float:
    return generate_flops(cfg, prompt_len, new_tokens, mlp_params(cfg))


FAMILY = declare(
    globals(), "llama",
    "Llama-style decoder (RMSNorm, RoPE, SwiGLU, grouped-query attention); 1b = Llama 3.2 1B, 8b = Llama 3 8B",
    inputs="tokens", output="vocab",
    max_seq_len="max_pos",  # the published context length (RoPE has no table)
)
