"""What every reference model family declares (STYLE.md: capabilities are declared).

A family is a :class:`ModelFamily` registered in :mod:`hwbench.models`. It owns its sizes,
builds the module from plain torch with a fixed seed, makes synthetic inputs, and gives
analytic counts: parameters and FLOPs per sample. FLOPs count multiply-adds as two
FLOPs and cover matrix multiplications and convolutions only (normalisation,
activations and additions are a rounding error and are not what accelerators' peak
figures describe) -- the same convention as ``torch.utils.flop_counter``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

MODES = ("infer", "train", "generate")


@dataclass(frozen=True)
class Shape:
    """The per-sample input shape of a case: a sequence length or an image size.

    ``seq_len`` (tokens) for the transformer families, ``image_size`` (pixels, square)
    for the CNN, neither for the MLP (its width is part of the size).
    """

    seq_len: int | None = None
    image_size: int | None = None

    def label(self) -> str:
        if self.seq_len is not None:
            return f"seq{self.seq_len}"
        if self.image_size is not None:
            return f"img{self.image_size}"
        return ""


@dataclass(frozen=True)
class ModelFamily:
    """A reference model family.

    ``sizes`` maps a size name to its configuration (a plain dict).
    ``build(config)`` returns an ``nn.Module`` (weights drawn from torch's RNG, which the
    worker seeds). ``make_batch(config, batch, shape, device, dtype)`` returns
    ``(inputs, targets)`` created on ``device``. ``loss(output, targets)`` is the
    training loss. ``flops_forward(config, shape)`` is forward FLOPs per sample.
    ``first_layer_flops(config, shape)`` is the forward FLOPs of the layers whose input
    needs no gradient (their backward computes one product, not two), used for the
    training count. ``param_count(config)`` is the analytic parameter count.
    """

    name: str
    description: str
    sizes: Mapping[str, Mapping[str, Any]]
    build: Callable[[Mapping[str, Any]], torch.nn.Module]
    make_batch: Callable[..., tuple[Any, Any]]
    loss: Callable[[Any, Any], torch.Tensor]
    flops_forward: Callable[[Mapping[str, Any], Shape], float]
    param_count: Callable[[Mapping[str, Any]], int]
    default_shape: Callable[[Mapping[str, Any]], Shape]
    shape_kind: str | None  # "seq_len", "image_size" or None
    modes: tuple[str, ...] = ("infer", "train")
    first_layer_flops: Callable[[Mapping[str, Any], Shape], float] = lambda c, s: 0.0
    float_inputs: bool = True  # token ids stay integer whatever the precision
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def flops_per_sample(self, size: str, mode: str, shape: Shape) -> float:
        """Analytic FLOPs per sample for one step of ``mode``.

        Training = forward + backward, backward being two products per matmul (grad of
        input and grad of weight) except for layers whose input needs no gradient.
        Generation FLOPs are reported per generated token by the generation workload.
        """
        cfg = self.sizes[size]
        fwd = self.flops_forward(cfg, shape)
        if mode == "train":
            return 3.0 * fwd - self.first_layer_flops(cfg, shape)
        return fwd
