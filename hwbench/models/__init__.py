"""Registry of reference model families. A new family is a module exposing ``FAMILY``
(a :class:`ModelFamily`; its torch code in ``nets/``), added to ``REGISTRY`` below.

Importing this package does not import torch (see :mod:`hwbench.models.base`).
"""

from __future__ import annotations

from . import cnn, decoder, encoder, mlp
from .base import MODES, Config, GenerativeModel, KVCache, ModelFamily, Shape

REGISTRY: dict[str, ModelFamily] = {f.name: f for f in (mlp.FAMILY, cnn.FAMILY, encoder.FAMILY, decoder.FAMILY)}


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


__all__ = ["MODES", "REGISTRY", "Config", "GenerativeModel", "KVCache", "ModelFamily", "Shape", "get", "model_names"]
