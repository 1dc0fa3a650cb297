"""Compression variants: transformations of a built model, one registered object each.

* ``none`` -- the model as built.
* ``prune:<s>`` -- unstructured L1-magnitude pruning of every Linear / Conv2d weight to
  sparsity ``s`` in (0, 1) (``torch.nn.utils.prune``, made permanent). The tensors stay
  dense, so this measures the accuracy cost; dense kernels run no faster.
* ``sparse24`` -- 2:4 semi-structured sparsity on Linear weights (the 2 largest of every
  4), stored with ``torch.sparse.to_sparse_semi_structured`` so sparse tensor cores run
  it (CUDA, compute capability >= 8.0, fp16 / bf16, inference). Layers whose shapes the
  kernel does not take stay dense; how many were converted is recorded.

* ``distill:<student size>`` -- knowledge distillation, for ``train`` cases: the case's
  model is the teacher (frozen, run under ``torch.inference_mode``), a student of the
  same family in the given size is trained on the teacher's soft targets mixed with the
  task loss (:func:`hwbench.workloads.make_distill_step`; settings ``distill_alpha``,
  ``distill_temperature``). One step = teacher forward + student forward, loss,
  backward and optimizer step. With random weights and synthetic data this measures
  the cost and speed of distilling, not what the student learns.

Weights tied to an embedding (the decoder's LM head) are left as they are: rewriting
them would untie them and change the model.

A variant's spelling in a suite is ``kind`` or ``kind:arg``; :func:`canonical` maps every
accepted spelling to one (``prune:.50`` -> ``prune:0.5``), so case ids compare.

No torch at import time (the suite loader validates names before torch is loaded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from . import precisions
from .precisions import Needs
from .registry import Registry, closest

if TYPE_CHECKING:
    import torch

    from .devices import DeviceInfo
    from .case import Case


@dataclass(frozen=True)
class Variant:
    """One compression variant.

    ``name``: the kind, as written before any ``:``.
    ``pattern``: how it is written, for help and errors ("prune:<sparsity in (0, 1)>").
    ``example``: one valid spelling (for "did you mean").
    ``parse``: argument text -> canonical argument text, ValueError if invalid; None for
    a variant without argument.
    ``apply``: (model, canonical argument or "") -> changes, in place.
    ``weight_dtypes``: torch dtype names of weights it works on; None: any.
    ``model_error``: (model name, canonical argument) -> why this variant cannot apply
    to that model at all (a suite error, not a skip), or None.
    """

    name: str
    help: str
    pattern: str
    apply: Callable[[Any, str], dict[str, int]]
    example: str = ""
    parse: Callable[[str], str] | None = None
    needs: Needs = field(default_factory=Needs)
    weight_dtypes: tuple[str, ...] | None = None
    model_error: Callable[[str, str], str | None] | None = None

    def requires(self, device: DeviceInfo, case: Case) -> str | None:
        """Why this variant cannot run ``case`` on ``device``, or None."""
        reason = self.needs.reason(self.name, device, case)
        if reason is None and self.weight_dtypes is not None:
            have = precisions.get(case.precision).weight_dtype
            if have not in self.weight_dtypes:
                allowed = " or ".join(_DTYPE_SHORT.get(d, d) for d in self.weight_dtypes)
                return f"{self.name} needs {allowed} weights ({case.precision} keeps {_DTYPE_SHORT.get(have, have)} weights)"
        return reason


_DTYPE_SHORT = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}

# the variant registry (hwbench.registry), by kind ("prune"); canonical() reads a
# suite's spelling ("prune:.5") and suggests the closest example
REGISTRY: Registry[Variant] = Registry("variant")
register, unregister, names = REGISTRY.register, REGISTRY.unregister, REGISTRY.names


def names_help() -> str:
    """What a suite may write, e.g. ``none, prune:<sparsity in (0, 1)>, sparse24``."""
    return ", ".join(v.pattern for v in REGISTRY.values())


def canonical(name: str) -> str:
    """The one spelling of variant ``name`` ("prune:.5" -> "prune:0.5"). ValueError, one
    line listing what is allowed, where it is not a variant."""
    kind, sep, arg = str(name).partition(":")
    v = REGISTRY.get(kind) if kind in REGISTRY else None
    try:
        if v is not None:
            if v.parse is None:
                if not sep:
                    return kind
            elif sep:
                return f"{kind}:{v.parse(arg)}"
    except ValueError:
        pass
    close = closest(name, [v.example or v.name for v in REGISTRY.values()])
    hint = f" (did you mean {close!r}?)" if close else ""
    raise ValueError(f"unknown variant {name!r}{hint}; allowed: {names_help()}")


def get(name: str) -> tuple[Variant, str]:
    """The variant object and its canonical argument ("" where it takes none)."""
    name = canonical(name)
    kind, _, arg = name.partition(":")
    return REGISTRY.get(kind), arg


def model_error(variant: str, model: str) -> str | None:
    """Why ``variant`` cannot apply to ``model`` ("family:size") whatever the machine
    (e.g. a student size the family lacks), or None. The suite loader reports it as a
    configuration error."""
    v, arg = get(variant)
    return None if v.model_error is None else v.model_error(model, arg)


def student_of(model: str, variant: str) -> str | None:
    """The student ``family:size`` of a ``distill:<size>`` variant of ``model``, else None."""
    v, arg = get(variant)
    return f"{model.partition(':')[0]}:{arg}" if v.name == "distill" else None


def apply(model: Any, variant: str) -> dict[str, int]:
    """Apply a compression variant in place; returns what was changed."""
    v, arg = get(variant)
    return v.apply(model, arg)


# --- the transformations -----------------------------------------------------------


def _tied(model: Any) -> set[int]:
    from torch import nn

    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}


def prune_magnitude(model: Any, sparsity: float) -> dict[str, int]:
    """Zero the smallest-|w| fraction ``sparsity`` of every untied Linear / Conv2d weight."""
    from torch import nn
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
    import torch

    out, inp = w.shape
    g = w.reshape(out, inp // 4, 4)
    idx = g.abs().topk(2, dim=-1).indices
    mask = torch.zeros_like(g, dtype=torch.bool).scatter_(-1, idx, True)
    return (g * mask).reshape(out, inp)


def sparsify_2_4(model: Any) -> dict[str, int]:
    """Store untied Linear weights whose dimensions are multiples of 64 as 2:4 sparse."""
    from torch import nn
    from torch.sparse import to_sparse_semi_structured

    tied, done, kept = _tied(model), 0, 0
    for m in model.modules():
        if isinstance(m, nn.Linear) and id(m.weight) not in tied:
            o, i = m.weight.shape
            if o % 64 or i % 64:  # the semi-structured kernels' tile
                kept += 1
                continue
            w = mask_2_4(m.weight.detach())
            m.weight = nn.Parameter(to_sparse_semi_structured(w), requires_grad=False)
            done += 1
    return {"sparse24_layers": done, "dense_layers_left": kept}


def _sparsity(arg: str) -> str:
    s = float(arg)  # ValueError for text
    if not 0 < s < 1:  # also false for nan
        raise ValueError(arg)
    return repr(s)  # shortest text that round-trips: "0.50" and ".5" -> "0.5"


def _size_name(arg: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", arg):
        raise ValueError(arg)
    return arg


def _student_error(model: str, size: str) -> str | None:
    from . import models  # torch-free metadata

    family, _, teacher = model.partition(":")
    fam = models.REGISTRY[family]
    sizes = list(fam.sizes)
    if size not in sizes:
        return f"distill:{size}: {family} has no size {size!r} for the student; sizes: {', '.join(sizes)}"
    if size == teacher:
        return f"distill:{size}: the student must be another size than the teacher {model}"
    if fam.output_dim is None:
        return f"distill:{size}: the {family} family does not declare its output width (output_dim)"
    t_out, s_out = fam.output_dim(fam.sizes[teacher]), fam.output_dim(fam.sizes[size])
    if t_out != s_out:
        same = [s for s in sizes if s != teacher and fam.output_dim(fam.sizes[s]) == t_out]
        hint = f"; sizes with {t_out}: {', '.join(same)}" if same else f"; no other {family} size has {t_out}"
        return (f"distill:{size}: teacher {model} has {t_out} outputs and student {family}:{size} {s_out} "
                f"(their logits are compared){hint}")
    return None


def _freeze(model: Any, arg: str) -> dict[str, int]:
    """The teacher: no gradients (its step runs under inference_mode anyway)."""
    model.requires_grad_(False)
    return {}


def _train_only(dev: DeviceInfo, case: Case) -> str | None:
    if case.mode != "train":
        return f"{case.variant} applies to train cases only (it trains a student against the teacher)"
    return None


register(Variant("none", "the model as built", "none", lambda model, arg: {}))
register(Variant(
    "prune", "unstructured L1-magnitude pruning of Linear / Conv2d weights to the given sparsity (dense storage)",
    "prune:<sparsity in (0, 1)>", lambda model, arg: prune_magnitude(model, float(arg)), example="prune:0.5", parse=_sparsity,
))
register(Variant(
    "sparse24", "2:4 semi-structured sparse Linear weights on sparse tensor cores", "sparse24",
    lambda model, arg: sparsify_2_4(model),
    needs=Needs(kinds=("cuda",), cap="sparse24", note=" (2:4 semi-structured sparse tensor cores)",
                train=False, train_note=" (the sparse weights are not trained)"),
    weight_dtypes=("float16", "bfloat16"),
))
register(Variant(
    "distill", "knowledge distillation: train a student of the given size against the case's model as frozen teacher",
    "distill:<student size>", _freeze, example="distill:tiny", parse=_size_name, needs=Needs(extra=_train_only),
    model_error=_student_error,
))
