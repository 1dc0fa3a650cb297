"""Analytic counts for the transformer layer shared by the encoder and decoder families
(torch-free; the modules are in :mod:`hwbench.models.nets.transformer`)."""

from __future__ import annotations


def layer_params(d: int, ffn: int) -> int:
    """Parameters of one ``Block``: 4 projections, 2 FFN linears, 2 LayerNorms."""
    return 4 * (d * d + d) + (d * ffn + ffn) + (ffn * d + d) + 4 * d


def layer_flops(d: int, ffn: int, seq: int) -> float:
    """Forward FLOPs of one layer for one sequence of ``seq`` tokens.

    Projections and FFN: 2 * seq * (4 d^2 + 2 d ffn). Attention scores and the weighted
    sum: 2 * 2 * seq^2 * d, counted over the full seq x seq matrix even when causal --
    this is what the kernels compute (and what ``torch.utils.flop_counter`` counts);
    the useful work of causal attention is about half of that term.
    """
    return 2.0 * seq * (4 * d * d + 2 * d * ffn) + 4.0 * seq * seq * d
