"""Vision Transformer module and batches (metadata in :mod:`hwbench.models.vit`)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..base import Config
from .common import classification_loss, image_batch
from .transformer import Block


class ViT(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        d, p = cfg["d"], cfg["patch"]
        self.grid = cfg["image_size"] // p
        self.patch = nn.Conv2d(3, d, p, stride=p)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, self.grid**2 + 1, d) * 0.02)
        self.layers = nn.ModuleList(
            Block(d, cfg["heads"], cfg["ffn"], causal=False, pre_ln=True, eps=1e-6) for _ in range(cfg["layers"])
        )
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, cfg["classes"])

    def _positions(self, grid: int) -> torch.Tensor:
        if grid == self.grid:
            return self.pos
        cls, pos = self.pos[:, :1], self.pos[:, 1:]
        d = pos.shape[-1]
        pos = pos.reshape(1, self.grid, self.grid, d).permute(0, 3, 1, 2)
        pos = F.interpolate(pos.float(), size=(grid, grid), mode="bicubic", align_corners=False).to(cls.dtype)
        return torch.cat([cls, pos.permute(0, 2, 3, 1).reshape(1, grid * grid, d)], dim=1)

    def forward(self, x):
        x = self.patch(x)  # (B, d, grid, grid)
        grid = x.shape[-1]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self._positions(grid)
        for layer in self.layers:
            x, _ = layer(x)
        return self.head(self.norm(x)[:, 0])


# the family's entry points (hwbench.models.base.NETS_ENTRIES)
build = ViT
make_batch = image_batch
loss = classification_loss
