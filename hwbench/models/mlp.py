"""MLP: Linear-ReLU stack over a flat feature vector, classification head."""

from __future__ import annotations

import torch
from torch import nn

from .base import ModelFamily, Shape

SIZES = {
    "tiny": {"in_features": 64, "hidden": 128, "layers": 2, "classes": 10},
    "base": {"in_features": 1024, "hidden": 4096, "layers": 4, "classes": 1000},
    "large": {"in_features": 4096, "hidden": 16384, "layers": 4, "classes": 1000},
}


def _dims(cfg):
    dims = [cfg["in_features"]] + [cfg["hidden"]] * cfg["layers"] + [cfg["classes"]]
    return list(zip(dims[:-1], dims[1:]))


def build(cfg) -> nn.Module:
    layers: list[nn.Module] = []
    pairs = _dims(cfg)
    for i, (a, b) in enumerate(pairs):
        layers.append(nn.Linear(a, b))
        if i < len(pairs) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def make_batch(cfg, batch: int, shape: Shape, device, dtype):
    x = torch.randn(batch, cfg["in_features"], device=device, dtype=dtype)
    y = torch.randint(0, cfg["classes"], (batch,), device=device)
    return x, y


def param_count(cfg) -> int:
    return sum(a * b + b for a, b in _dims(cfg))


def flops_forward(cfg, shape: Shape) -> float:
    return float(sum(2 * a * b for a, b in _dims(cfg)))


def first_layer_flops(cfg, shape: Shape) -> float:
    a, b = _dims(cfg)[0]
    return float(2 * a * b)


FAMILY = ModelFamily(
    name="mlp",
    description="Multi-layer perceptron (Linear + ReLU), classification head",
    sizes=SIZES,
    build=build,
    make_batch=make_batch,
    loss=lambda out, y: nn.functional.cross_entropy(out.float(), y),
    flops_forward=flops_forward,
    first_layer_flops=first_layer_flops,
    param_count=param_count,
    default_shape=lambda cfg: Shape(),
    shape_kind=None,
)
