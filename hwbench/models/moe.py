"""Mixtral-style sparse mixture-of-experts decoder: the Llama layer (RMSNorm, RoPE,
grouped-query attention) with its MLP replaced by ``experts`` SwiGLU experts and a
linear router (no bias) that sends every token to its ``top_k`` experts, their outputs
weighted by the softmax of the chosen router logits (renormalised over the top k).

``8x7b`` reproduces Mixtral 8x7B's shapes (hidden 4096, 32 layers, 32 query / 8 KV
heads, 8 experts of MLP 14,336, top 2, vocabulary 32,000, untied head): 46,702,792,704
parameters in total, 12,879,925,248 active per token. Its 93 GB of bf16 weights build
on the meta device for counting and run where memory allows (hwbench builds a model in
fp32 on the host first: 187 GB). ``8x7b-l4`` keeps 4 of its layers for one GPU.

FLOPs come from the *active* parameters: each token goes through ``top_k`` experts.
The router's load balance is recorded per case (tokens per expert per layer, see
:class:`hwbench.models.base.RoutedModel`); with random weights and synthetic tokens it
shows how an untrained router spreads load, not how a trained one does.
"""

from __future__ import annotations

from . import llama
from .base import Config, Shape, declare

SIZES = {
    "tiny": {"vocab": 1000, "d": 64, "layers": 2, "heads": 4, "kv_heads": 2, "ffn": 128, "experts": 4, "top_k": 2,
             "tied": False, "max_pos": 256, "rope_theta": 1e6, "rope_scaling": None, "eps": 1e-5, "seq_len": 32},
    "8x7b": {"vocab": 32000, "d": 4096, "layers": 32, "heads": 32, "kv_heads": 8, "ffn": 14336, "experts": 8,
             "top_k": 2, "tied": False, "max_pos": 32768, "rope_theta": 1e6, "rope_scaling": None, "eps": 1e-5,
             "seq_len": 512},
    # Mixtral 8x7B's layer, 4 of its 32 layers: not a published model, a single-GPU
    # stand-in (6.07 B parameters, 12 GB in bf16) whose per-layer cost -- routing,
    # expert dispatch, attention -- is Mixtral's; the whole model's time per token is
    # about 8x its layers' share.
    "8x7b-l4": {"vocab": 32000, "d": 4096, "layers": 4, "heads": 32, "kv_heads": 8, "ffn": 14336, "experts": 8,
                "top_k": 2, "tied": False, "max_pos": 32768, "rope_theta": 1e6, "rope_scaling": None, "eps": 1e-5,
                "seq_len": 512},
}


def _layer_params(cfg: Config, experts: int) -> int:
    router = cfg["d"] * cfg["experts"]
    return llama.attention_params(cfg) + experts * llama.mlp_params(cfg) + router + 2 * cfg["d"]


def param_count(cfg: Config) -> int:
    """Every parameter, all experts included."""
    return llama.embedding_params(cfg) + cfg["layers"] * _layer_params(cfg, cfg["experts"])


def active_param_count(cfg: Config) -> int:
    """Parameters one token goes through: ``top_k`` experts per layer (+ router,
    attention, norms, embedding and head)."""
    return llama.embedding_params(cfg) + cfg["layers"] * _layer_params(cfg, cfg["top_k"])


def _mlp_per_token(cfg: Config) -> float:
    return cfg["top_k"] * llama.mlp_params(cfg) + cfg["d"] * cfg["experts"]  # chosen experts + router


def flops_forward(cfg: Config, shape: Shape) -> float:
    return llama.forward_flops(cfg, shape.seq_len or cfg["seq_len"], _mlp_per_token(cfg))


def flops_generate(cfg: Config, prompt_len: int, new_tokens: int) -> float:
    return llama.generate_flops(cfg, prompt_len, new_tokens, _mlp_per_token(cfg))


FAMILY = declare(
    globals(), "moe",
    "Mixtral-style mixture-of-experts decoder (top-2 of 8 SwiGLU experts, GQA); 8x7b = Mixtral 8x7B shapes",
    inputs="tokens", output="vocab", max_seq_len="max_pos",
)
