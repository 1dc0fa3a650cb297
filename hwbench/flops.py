"""FLOP counting with ``torch.utils.flop_counter``, plus formulas it lacks.

The counter has no formula for the CPU flash-attention kernels that
``scaled_dot_product_attention`` dispatches to on real CPU tensors, so attention would
count as zero there. They get the same formulas as the CUDA kernels (full seq x seq,
causal or not, as for those).

Nor has it one for ``aten._int_mm``, the int8 x int8 -> int32 matmul that torchao's int8
layers (``Int8Tensor`` weights) dispatch: it gets the ``mm`` formula (2 m n k), one
multiply-add per int8 product as for a float matmul. Nor for ``aten._weight_int4pack_mm``,
tinygemm's bf16 x int4 matmul under torchao's int4 weight-only layers: 2 m n k, from
the activation (m, k) and the output (m, n) -- k as the kernel runs it, the input
features padded to a multiple of 1024 by torchao. torchao's float8 layers dispatch
``aten._scaled_mm``, which the counter already knows; its int8 weight-only layers
dequantise and dispatch a float ``mm``.

Layers whose weights are tensor subclasses (quantised, sparse) may dispatch kernels no
formula covers; :func:`count_checked` notices those and gives a reason instead of a
count that is too low.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten


def _cpu_flash_fwd(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _int_mm(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    (m, k), (_, n) = a_shape, b_shape
    return 2 * m * n * k


def _int4pack_mm(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    m, k = a_shape
    return 2 * m * k * out_shape[-1]


def _cpu_flash_bwd(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


EXTRA: dict = {}
if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
    EXTRA[aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_flash_fwd
if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
    EXTRA[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _cpu_flash_bwd
if hasattr(aten, "_int_mm"):
    EXTRA[aten._int_mm] = _int_mm
if hasattr(aten, "_weight_int4pack_mm"):
    EXTRA[aten._weight_int4pack_mm] = _int4pack_mm


def count(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (matmuls, convolutions, attention)."""
    with FlopCounterMode(display=False, custom_mapping=EXTRA) as fc:
        fn()
    return fc.get_total_flops()


def _subclass_weight(m: nn.Module) -> str | None:
    """The weight's type name where it is a tensor subclass (torchao Int8Tensor /
    Float8Tensor, SparseSemiStructuredTensor, ...), else None."""
    w = getattr(m, "weight", None)
    if isinstance(w, torch.Tensor) and type(w) not in (torch.Tensor, nn.Parameter):
        return type(w).__name__
    return None


def count_checked(fn: Callable[[], object], model: nn.Module) -> tuple[int | None, str | None]:
    """FLOPs of one call of ``fn`` that steps ``model``: ``(flops, None)``, or
    ``(None, reason)`` where the counter missed work -- a layer with a tensor-subclass
    weight ran without the counter seeing a FLOP (its kernel has no formula), or
    nothing was counted at all. Never a count known to be short, never 0."""
    unseen: list[str] = []
    with FlopCounterMode(display=False, custom_mapping=EXTRA) as fc:
        hooks = []
        for name, m in model.named_modules():
            kind = _subclass_weight(m)
            if kind is None:
                continue
            before: list[int] = []

            def pre(mod, args, before=before):
                before.append(fc.get_total_flops())

            def post(mod, args, out, before=before, label=f"{name or type(m).__name__} ({kind})"):
                if before and fc.get_total_flops() == before.pop() and label not in unseen:
                    unseen.append(label)

            hooks += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
        try:
            fn()
        finally:
            for h in hooks:
                h.remove()
    if unseen:
        more = f" and {len(unseen) - 1} more" if len(unseen) > 1 else ""
        return None, (f"not counted: torch.utils.flop_counter has no formula for the kernels of layer "
                      f"{unseen[0]}{more} (tensor-subclass weights)")
    total = fc.get_total_flops()
    if total == 0:
        return None, "not counted: torch.utils.flop_counter saw no matmul, convolution or attention"
    return total, None
