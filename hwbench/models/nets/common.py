"""Losses and synthetic batches shared by several families."""

from __future__ import annotations

import torch
from torch import nn

from ..base import Config, KVCache, Shape
from .slots import SlotStep


def classification_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (batch, classes) logits against (batch,) labels, in fp32 (so
    low-precision logits do not lose the loss)."""
    return nn.functional.cross_entropy(out.float(), y)


def lm_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy of (batch, seq, vocab) logits against (batch, seq) ids, in fp32."""
    return nn.functional.cross_entropy(out.float().flatten(0, 1), y.flatten())


def lm_batch(cfg: Config, batch: int, shape: Shape, device, dtype):
    """Token ids (batch, seq) and next-token targets (batch, seq); ``dtype`` is unused."""
    seq = shape.seq_len or cfg["seq_len"]
    ids = torch.randint(0, cfg["vocab"], (batch, seq), device=device)
    return ids, torch.randint(0, cfg["vocab"], (batch, seq), device=device)


def image_batch(cfg: Config, batch: int, shape: Shape, device, dtype):
    """RGB images (batch, 3, size, size) in ``dtype`` and class labels (batch,)."""
    s = shape.image_size or cfg["image_size"]
    x = torch.randn(batch, 3, s, s, device=device, dtype=dtype)
    y = torch.randint(0, cfg["classes"], (batch,), device=device)
    return x, y


def lm_layers(x: torch.Tensor, layers: nn.ModuleList, norm: nn.Module, lm_head: nn.Module,
              cache: KVCache | None, last_only: bool, *layer_args: torch.Tensor, slots: SlotStep | None = None):
    """The tail every causal LM's forward shares: each layer in turn, called as
    ``layer(x, *layer_args, its cached (k, v) or None)`` and returning ``(x, (k, v))``,
    then the final norm and the LM head (the last position only with ``last_only``).
    Returns the logits when ``cache`` is None, else ``(logits, new_cache)``. With
    ``slots`` (:mod:`.slots`) each layer gets ``slots.layer(i)`` in place of its cache
    (its attention writes and reads the slot cache) and the logits are returned."""
    new_cache = []
    for i, layer in enumerate(layers):
        kv = slots.layer(i) if slots is not None else None if not cache else cache[i]
        x, kv = layer(x, *layer_args, kv)
        new_cache.append(kv)
    x = norm(x)
    if last_only:
        x = x[:, -1:]
    logits = lm_head(x)
    return logits if cache is None or slots is not None else (logits, new_cache)
