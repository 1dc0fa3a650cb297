"""Transformer building blocks shared by the encoder (BERT-style) and decoder (GPT-style).

Attention goes through ``torch.nn.functional.scaled_dot_product_attention`` so every
backend picks its best kernel. The decoder's attention keeps a KV cache for generation
(or writes its rows into a slot cache, :mod:`.slots`).
Their analytic counts are in :mod:`hwbench.models.transformer` (torch-free).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .slots import SlotLayer


class Attention(nn.Module):
    def __init__(self, d: int, heads: int, causal: bool):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def _split(self, x):
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x, cache=None):
        """``cache`` is ``None``, a ``(k, v)`` pair of earlier positions or a
        :class:`~.slots.SlotLayer`; returns ``(output, (k, v))`` with the cache
        extended by this call's positions (a slot layer is written in place)."""
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        mask = None
        if isinstance(cache, SlotLayer):
            k, v, mask = cache.update(k, v)
        elif cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        # A single new query attends to every cached position: no mask needed then.
        causal = self.causal and q.shape[2] > 1 and mask is None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        b, h, t, hd = out.shape
        return self.o(out.transpose(1, 2).reshape(b, t, h * hd)), (k, v)


class Block(nn.Module):
    """One transformer layer. ``pre_ln`` = GPT-2 layout, else BERT's post-LN layout."""

    def __init__(self, d: int, heads: int, ffn: int, causal: bool, pre_ln: bool, eps: float):
        super().__init__()
        self.pre_ln = pre_ln
        self.attn = Attention(d, heads, causal)
        self.ln1 = nn.LayerNorm(d, eps=eps)
        self.fc1 = nn.Linear(d, ffn)
        self.fc2 = nn.Linear(ffn, d)
        self.ln2 = nn.LayerNorm(d, eps=eps)

    def forward(self, x, cache=None):
        if self.pre_ln:
            a, cache = self.attn(self.ln1(x), cache)
            x = x + a
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x)))), cache
        a, cache = self.attn(x, cache)
        x = self.ln1(x + a)
        return self.ln2(x + self.fc2(F.gelu(self.fc1(x)))), cache
