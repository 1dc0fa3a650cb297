"""MLP: Linear-ReLU stack over a flat feature vector, classification head."""

from __future__ import annotations

from .base import Config, Shape, declare

SIZES = {
    "tiny": {"in_features": 64, "hidden": 128, "layers": 2, "classes": 10},
    "base": {"in_features": 1024, "hidden": 4096, "layers": 4, "classes": 1000},
    "large": {"in_features": 4096, "hidden": 16384, "layers": 4, "classes": 1000},
}


def dims(cfg: Config) -> list[tuple[int, int]]:
    """(in, out) features of every Linear layer, input to head."""
    d = [cfg["in_features"]] + [cfg["hidden"]] * cfg["layers"] + [cfg["classes"]]
    return list(zip(d[:-1], d[1:]))


def param_count(cfg: Config) -> int:
    return sum(a * b + b for a, b in dims(cfg))


def flops_forward(cfg: Config, shape: Shape) -> float:
    return float(sum(2 * a * b for a, b in dims(cfg)))


def first_layer_flops(cfg: Config, shape: Shape) -> float:
    a, b = dims(cfg)[0]
    return float(2 * a * b)


FAMILY = declare(
    globals(), "mlp",
    "Multi-layer perceptron (Linear + ReLU), classification head",
    inputs="vector", output="classes",
)
