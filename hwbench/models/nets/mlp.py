"""MLP modules and batches (metadata in :mod:`hwbench.models.mlp`)."""

from __future__ import annotations

import torch
from torch import nn

from ..base import Config, Shape
from ..mlp import dims
from .common import classification_loss


def build(cfg: Config) -> nn.Module:
    layers: list[nn.Module] = []
    pairs = dims(cfg)
    for i, (a, b) in enumerate(pairs):
        layers.append(nn.Linear(a, b))
        if i < len(pairs) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def make_batch(cfg: Config, batch: int, shape: Shape, device, dtype):
    x = torch.randn(batch, cfg["in_features"], device=device, dtype=dtype)
    y = torch.randint(0, cfg["classes"], (batch,), device=device)
    return x, y


# with build and make_batch above, the family's entry points (hwbench.models.base.NETS_ENTRIES)
loss = classification_loss
