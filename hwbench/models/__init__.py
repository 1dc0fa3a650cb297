"""Registry of reference model families. A new family is a module exposing ``FAMILY``
(a :class:`ModelFamily`; its torch code in ``nets/``), added to ``REGISTRY`` below.

Importing this package does not import torch (see :mod:`hwbench.models.base`).
"""

from __future__ import annotations

from typing import Any

from . import cnn, decoder, encoder, llama, mlp, moe, vit
from .base import MODES, Config, GenerativeModel, KVCache, ModelFamily, RoutedModel, Shape

REGISTRY: dict[str, ModelFamily] = {
    f.name: f for f in (mlp.FAMILY, cnn.FAMILY, encoder.FAMILY, decoder.FAMILY, llama.FAMILY, moe.FAMILY, vit.FAMILY)
}


def model_names() -> list[str]:
    """Every ``family:size`` name, the form suites use."""
    return [f"{f}:{s}" for f, fam in REGISTRY.items() for s in fam.sizes]


def get(name: str) -> tuple[ModelFamily, str]:
    """``"family:size"`` -> (family, size). Raises KeyError for an unknown name."""
    family, _, size = name.partition(":")
    fam = REGISTRY[family]
    if size not in fam.sizes:
        raise KeyError(name)
    return fam, size


def catalogue() -> list[dict[str, Any]]:
    """One plain row per model (``hwbench list models --format json|csv``), torch-free.

    Keys: ``name`` (family:size), ``family``, ``size``, ``params`` (every parameter),
    ``active_params`` (those one token / sample goes through: fewer for mixture of
    experts, else equal to ``params``), ``modes`` (list), ``default_shape`` (a dict:
    ``{"seq_len": n}``, ``{"image_size": n}`` or ``{}``), ``max_seq_len`` (tokens, or
    None), ``description`` (the family's).
    """
    rows = []
    for fname, fam in REGISTRY.items():
        for size, cfg in fam.sizes.items():
            shape = fam.default_shape(cfg)
            rows.append({
                "name": f"{fname}:{size}",
                "family": fname,
                "size": size,
                "params": fam.param_count(cfg),
                "active_params": fam.active_params(cfg),
                "modes": list(fam.modes),
                "default_shape": {k: v for k, v in (("seq_len", shape.seq_len), ("image_size", shape.image_size))
                                  if v is not None},
                "max_seq_len": fam.max_seq_len(cfg) if fam.max_seq_len is not None else None,
                "description": fam.description,
            })
    return rows


__all__ = ["MODES", "REGISTRY", "Config", "GenerativeModel", "KVCache", "ModelFamily", "RoutedModel", "Shape",
           "catalogue", "get", "model_names"]
