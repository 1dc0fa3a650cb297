"""Llama-style decoder and its Mixtral-style mixture-of-experts variant (metadata in
:mod:`hwbench.models.llama` and :mod:`hwbench.models.moe`).

:class:`Llama` implements :class:`hwbench.models.base.GenerativeModel`; with ``experts``
in its config it also implements :class:`hwbench.models.base.RoutedModel`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..base import Config, KVCache
from .common import lm_batch, lm_layers, lm_loss
from .slots import SlotLayer, SlotStep

# scaled_dot_product_attention broadcasts grouped KV heads itself from torch 2.5
# (enable_gqa); before, the KV heads are repeated for each query head.
_SDPA_GQA = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 5)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight, computed in fp32 (as Llama's reference code)."""

    def __init__(self, d: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        xf = x.float()
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return out.to(x.dtype) * self.weight


def inv_freq(cfg: Config, device) -> torch.Tensor:
    """RoPE inverse frequencies (head_dim / 2,), fp32, with Llama 3's "llama3" scaling
    where the config has ``rope_scaling``. Computed per call rather than stored, so a
    cast of the model to bf16 does not round them."""
    hd = cfg["d"] // cfg["heads"]
    freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, device=device, dtype=torch.float32) / hd))
    if cfg["rope_scaling"] is None:
        return freq
    factor, low, high, old_ctx = cfg["rope_scaling"]
    wavelen = 2 * math.pi / freq
    smooth = (old_ctx / wavelen - low) / (high - low)
    scaled = torch.where(wavelen > old_ctx / low, freq / factor, freq)
    mid = (wavelen <= old_ctx / low) & (wavelen >= old_ctx / high)
    return torch.where(mid, (1 - smooth) * freq / factor + smooth * freq, scaled)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding in the half-split layout of Llama's Hugging Face weights."""
    a, b = x.chunk(2, dim=-1)
    return (x * cos + torch.cat((-b, a), dim=-1) * sin).to(x.dtype)


class Attention(nn.Module):
    """Grouped-query attention: ``heads`` query heads share ``kv_heads`` key/value heads."""

    def __init__(self, cfg: Config):
        super().__init__()
        d = cfg["d"]
        self.heads, self.kv_heads, self.hd = cfg["heads"], cfg["kv_heads"], d // cfg["heads"]
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, self.kv_heads * self.hd, bias=False)
        self.v = nn.Linear(d, self.kv_heads * self.hd, bias=False)
        self.o = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin, cache=None):
        """``cache``: None, the (k, v) of earlier positions, (B, kv_heads, T, hd), or a
        :class:`~.slots.SlotLayer`; returns ``(output, (k, v))`` with this call's
        positions appended (a slot layer is written in place)."""
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.heads, self.hd).transpose(1, 2)
        k = self.k(x).view(b, t, self.kv_heads, self.hd).transpose(1, 2)
        v = self.v(x).view(b, t, self.kv_heads, self.hd).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        mask = None
        if isinstance(cache, SlotLayer):  # the slot cache builds each row's mask
            k, v, mask = cache.update(k, v)
        elif cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        causal = t > 1 and mask is None  # a single new query attends to every cached position
        if causal and k.shape[2] != t:
            raise ValueError("a prompt after cached positions needs a mask this model does not build")
        group = self.heads // self.kv_heads
        if group == 1:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        elif _SDPA_GQA:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=True)
        else:
            out = F.scaled_dot_product_attention(q, k.repeat_interleave(group, dim=1),
                                                 v.repeat_interleave(group, dim=1), attn_mask=mask, is_causal=causal)
        return self.o(out.transpose(1, 2).reshape(b, t, self.heads * self.hd)), (k, v)


class SwiGLU(nn.Module):
    def __init__(self, d: int, ffn: int):
        super().__init__()
        self.gate = nn.Linear(d, ffn, bias=False)
        self.up = nn.Linear(d, ffn, bias=False)
        self.down = nn.Linear(ffn, d, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class MoE(nn.Module):
    """Top-k routing over SwiGLU experts (Mixtral): router logits -> top k -> softmax
    over the chosen k -> weighted sum of those experts' outputs.

    Each expert runs on the tokens routed to it only (a gather, the expert's matmuls, a
    scatter-add), so the work is the active parameters'. ``counts`` (experts,) int64,
    accumulates the tokens each expert received, on the device (no host sync)."""

    def __init__(self, d: int, ffn: int, experts: int, top_k: int):
        super().__init__()
        self.top_k = top_k
        self.router = nn.Linear(d, experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(d, ffn) for _ in range(experts))
        self.register_buffer("counts", torch.zeros(experts, dtype=torch.long), persistent=False)

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        logits = self.router(x)
        weights, chosen = logits.float().topk(self.top_k, dim=-1)
        weights = weights.softmax(dim=-1).to(x.dtype)
        with torch.no_grad():
            flat = chosen.flatten()
            self.counts.index_add_(0, flat, torch.ones_like(flat))
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            token, slot = torch.where(chosen == e)
            if token.numel() == 0:
                continue
            y = expert(x[token]) * weights[token, slot, None]
            out.index_add_(0, token, y)
        return out.reshape(shape)


class Layer(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        d = cfg["d"]
        self.attn_norm = RMSNorm(d, cfg["eps"])
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(d, cfg["eps"])
        if "experts" in cfg:
            self.mlp: nn.Module = MoE(d, cfg["ffn"], cfg["experts"], cfg["top_k"])
        else:
            self.mlp = SwiGLU(d, cfg["ffn"])

    def forward(self, x, cos, sin, cache=None):
        a, cache = self.attn(self.attn_norm(x), cos, sin, cache)
        x = x + a
        return x + self.mlp(self.mlp_norm(x)), cache


class Llama(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = dict(cfg)
        self.tok = nn.Embedding(cfg["vocab"], cfg["d"])
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg["layers"]))
        self.norm = RMSNorm(cfg["d"], cfg["eps"])
        self.lm_head = nn.Linear(cfg["d"], cfg["vocab"], bias=False)
        if cfg["tied"]:
            self.lm_head.weight = self.tok.weight  # as Llama 3.2 1B

    def forward(
        self, ids: torch.Tensor, cache: KVCache | None = None, last_only: bool = False, slots: SlotStep | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, KVCache]:
        """The :class:`~hwbench.models.base.GenerativeModel` contract: logits for ``ids``
        (B, T); with ``cache`` (``[]`` to start) positions continue after the cached
        ones and ``(logits, new_cache)`` is returned, the cache holding the KV heads.
        ``slots``: each row continues its own slot of a slot cache (:mod:`.slots`, its
        own RoPE positions), returns the logits."""
        if slots is not None:
            pos = slots.positions.float()  # (B, T): each row's own positions
        else:
            start = 0 if not cache else cache[0][0].shape[2]
            pos = torch.arange(start, start + ids.shape[1], device=ids.device, dtype=torch.float32)
        angles = pos[..., None] * inv_freq(self.cfg, ids.device)  # (T, hd/2) or (B, T, hd/2)
        angles = torch.cat((angles, angles), dim=-1)
        if slots is not None:
            angles = angles[:, None]  # (B, 1, T, hd): broadcast over the heads
        x = self.tok(ids)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        return lm_layers(x, self.layers, self.norm, self.lm_head, cache, last_only, cos, sin, slots=slots)



class MoELlama(Llama):
    """:class:`Llama` with mixture-of-experts layers (a config with ``experts``); also a
    :class:`~hwbench.models.base.RoutedModel`."""

    def _moe_layers(self) -> list[MoE]:
        return [m for m in self.modules() if isinstance(m, MoE)]

    def reset_router_counts(self) -> None:
        for m in self._moe_layers():
            m.counts.zero_()

    def router_counts(self) -> list[list[int]]:
        return [m.counts.tolist() for m in self._moe_layers()]


# the family's entry points (hwbench.models.base.NETS_ENTRIES)
build = Llama
make_batch = lm_batch
loss = lm_loss
