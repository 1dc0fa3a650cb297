"""The mixture-of-experts family's torch code (metadata in :mod:`hwbench.models.moe`):
:class:`~.llama.MoELlama`, with the Llama family's batches and loss."""

from __future__ import annotations

from .llama import MoELlama, loss, make_batch

# the family's entry points (hwbench.models.base.NETS_ENTRIES)
build = MoELlama

__all__ = ["build", "loss", "make_batch"]
