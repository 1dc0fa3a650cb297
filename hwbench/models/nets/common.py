"""Losses and synthetic batches shared by several families."""

from __future__ import annotations

import torch
from torch import nn

from ..base import Config, Shape


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
