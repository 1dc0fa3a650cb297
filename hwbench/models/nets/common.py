"""Losses shared by several families."""

from __future__ import annotations

import torch
from torch import nn


def classification_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (batch, classes) logits against (batch,) labels, in fp32 (so
    low-precision logits do not lose the loss)."""
    return nn.functional.cross_entropy(out.float(), y)


def lm_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy of (batch, seq, vocab) logits against (batch, seq) ids, in fp32."""
    return nn.functional.cross_entropy(out.float().flatten(0, 1), y.flatten())
