"""Compression variants and the fp8 path: transformations of a built model.

* ``prune:<s>`` -- unstructured L1-magnitude pruning of every Linear / Conv2d weight to
  sparsity ``s`` (``torch.nn.utils.prune``, made permanent). The tensors stay dense, so
  this measures the accuracy cost; dense kernels run no faster.
* ``sparse24`` -- 2:4 semi-structured sparsity on Linear weights (the 2 largest of every
  4), stored with ``torch.sparse.to_sparse_semi_structured`` so sparse tensor cores run
  it (CUDA, compute capability >= 8.0, fp16 / bf16). Layers whose shapes the kernel does
  not take stay dense; how many were converted is recorded.
* fp8 (precision) -- Linear layers through ``torch._scaled_mm`` with float8 e4m3
  weights (per-tensor scale, computed once) and activations (per-tensor scale,
  computed every call); output in bf16. Layers whose dimensions are not multiples of
  16 stay in bf16.

Weights tied to an embedding (the decoder's LM head) are left as they are: rewriting
them would untie them and change the model.
"""

from __future__ import annotations

import torch
from torch import nn

FP8_MAX = 448.0  # largest finite float8 e4m3fn value


def _tied(model: nn.Module) -> set[int]:
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}


def prune_magnitude(model: nn.Module, sparsity: float) -> dict[str, int]:
    from torch.nn.utils import prune

    tied, n = _tied(model), 0
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)) and id(m.weight) not in tied:
            prune.l1_unstructured(m, "weight", amount=sparsity)
            prune.remove(m, "weight")
            n += 1
    return {"pruned_layers": n}


def mask_2_4(w: torch.Tensor) -> torch.Tensor:
    """Keep the 2 largest-magnitude values in every group of 4 along the input dim."""
    out, inp = w.shape
    g = w.reshape(out, inp // 4, 4)
    idx = g.abs().topk(2, dim=-1).indices
    mask = torch.zeros_like(g, dtype=torch.bool).scatter_(-1, idx, True)
    return (g * mask).reshape(out, inp)


def sparsify_2_4(model: nn.Module) -> dict[str, int]:
    from torch.sparse import to_sparse_semi_structured

    tied, done, kept = _tied(model), 0, 0
    for m in model.modules():
        if isinstance(m, nn.Linear) and id(m.weight) not in tied:
            o, i = m.weight.shape
            if o % 64 or i % 64:
                kept += 1
                continue
            w = mask_2_4(m.weight.detach())
            m.weight = nn.Parameter(to_sparse_semi_structured(w), requires_grad=False)
            done += 1
    return {"sparse24_layers": done, "dense_layers_left": kept}


class FP8Linear(nn.Module):
    """A Linear layer computed in float8 e4m3 by ``torch._scaled_mm``."""

    def __init__(self, lin: nn.Linear):
        super().__init__()
        w = lin.weight.detach().float()
        scale = (w.abs().max() / FP8_MAX).clamp(min=1e-12)
        self.register_buffer("weight_fp8", (w / scale).to(torch.float8_e4m3fn))
        self.register_buffer("w_scale", scale.reshape(()))
        self.bias = None if lin.bias is None else nn.Parameter(lin.bias.detach().to(torch.bfloat16), requires_grad=False)
        self.out_features = lin.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        x_scale = (x2.abs().max().float() / FP8_MAX).clamp(min=1e-12)
        xf = (x2 / x_scale).to(torch.float8_e4m3fn)
        r = torch._scaled_mm(xf, self.weight_fp8.t(), scale_a=x_scale, scale_b=self.w_scale,
                             bias=self.bias, out_dtype=torch.bfloat16)
        out = r[0] if isinstance(r, tuple) else r  # torch < 2.5 also returned amax
        return out.reshape(*shape[:-1], self.out_features)


def to_fp8(model: nn.Module) -> dict[str, int]:
    """Replace eligible Linear layers with FP8Linear, in place."""
    tied, done, kept = _tied(model), 0, 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear) and id(child.weight) not in tied:
                if child.in_features % 16 or child.out_features % 16:
                    kept += 1
                    continue
                setattr(parent, name, FP8Linear(child))
                done += 1
    return {"fp8_layers": done, "bf16_layers_left": kept}


def apply(model: nn.Module, variant: str) -> dict[str, int]:
    """Apply a compression variant in place; returns what was changed."""
    if variant == "none":
        return {}
    if variant == "sparse24":
        return sparsify_2_4(model)
    kind, _, amount = variant.partition(":")
    if kind == "prune":
        return prune_magnitude(model, float(amount))
    raise ValueError(f"unknown variant {variant!r}")
