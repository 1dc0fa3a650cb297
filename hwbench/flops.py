"""FLOP counting with ``torch.utils.flop_counter``, plus formulas it lacks.

The counter has no formula for the CPU flash-attention kernels that
``scaled_dot_product_attention`` dispatches to on real CPU tensors, so attention would
count as zero there. They get the same formulas as the CUDA kernels (full seq x seq,
causal or not, as for those).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten


def _cpu_flash_fwd(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_flash_bwd(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


EXTRA: dict = {}
if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
    EXTRA[aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_flash_fwd
if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
    EXTRA[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _cpu_flash_bwd


def count(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (matmuls, convolutions, attention)."""
    with FlopCounterMode(display=False, custom_mapping=EXTRA) as fc:
        fn()
    return fc.get_total_flops()
