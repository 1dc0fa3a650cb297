"""Numeric precisions: one registered object per precision.

Each :class:`Precision` declares its name, a help line, the device capabilities it
needs (:class:`Needs`), the datasheet peak MFU is compared against (``peak_key``), the
dtype of weights and floating inputs, an optional autocast dtype, whether TF32 tensor
cores may be used, and an optional in-place conversion (quantisation). Adding a
precision is one :func:`register` call; the suite loader, the planner, the worker and
the MFU peak all read it from here.

This module does not import torch at import time: the suite loader validates names
with it before torch is loaded (a typo must be answered in milliseconds). dtypes are
named by their ``torch`` attribute ("float32") and looked up where torch is in use.

int8, int8wo, int4wo, fp8 and fp8_rowwise go through torchao's ``quantize_``
(``torch.ao.quantization.quantize_dynamic`` is deprecated). torchao is imported only
when such a case is prepared; its version (and torch's, where a kernel needs it) is
checked from package metadata when the case is planned.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .peaks import PEAK_KEYS
from .registry import Registry

if TYPE_CHECKING:  # only for annotations: importing these here would import torch / spec
    import torch

    from .devices import DeviceInfo
    from .case import Case

# The datasheet peaks hwbench knows (hwbench/peaks.py, per device): a precision names one.


@dataclass(frozen=True)
class Needs:
    """Declared capabilities of a precision, backend or variant. Checked in this order,
    the first one missing giving the reason:

    * ``kinds``: device kinds it runs on (``cpu``, ``cuda``, ``rocm``, ...); None: any.
    * ``cap``: a capability it needs (``"bf16"``, ``"fp8"``, ...), which the device's kind
      answers in its own terms (:meth:`hwbench.devices.Accelerator.capability_reason`:
      CUDA compute capability, ROCm gfx arch, ...).
    * ``note``: why, appended to device messages, e.g. " (Ada or Hopper)".
    * ``train``: False where it is inference-only (``train_note`` says why).
    * ``no_train_on``: device kinds where training is not supported.
    * ``module``: a Python module it imports at run time (found without importing it).
    * ``min_versions``: ``(distribution, "major.minor", why)`` triples, e.g.
      ``("torchao", "0.18", " (the Int8Tensor layout)")``: the installed version (read
      from the package metadata, without importing it) must be at least that.
    * ``extra``: any other check, ``(device, case) -> reason | None``.
    """

    kinds: tuple[str, ...] | None = None
    cap: str | None = None
    note: str = ""
    train: bool = True
    train_note: str = ""
    no_train_on: tuple[str, ...] = ()
    module: str | None = None
    module_note: str = ""
    min_versions: tuple[tuple[str, str, str], ...] = ()
    extra: Callable[[DeviceInfo, Case], str | None] | None = None

    def reason(self, what: str, dev: DeviceInfo, case: Case) -> str | None:
        """Why ``what`` (e.g. "fp8", "cudagraphs backend") cannot run ``case`` on ``dev``,
        or None."""
        if self.kinds is not None and dev.kind not in self.kinds:
            return f"{what} needs {self._where()}{self.note} (this device is {dev.kind})"
        from .devices import KINDS

        if self.cap is not None and dev.kind in KINDS:
            acc = KINDS.get(dev.kind)
            have = acc.capability_reason(self.cap, dev)
            if have is not None:
                if self.kinds == (dev.kind,):
                    return f"{what} needs {self._where()}{self.note} ({have})"
                req = acc.requirement(self.cap)
                need = f"{req} on {acc.label} GPUs" if req else f"{self.cap} support on {acc.label}"
                return f"{what} needs {need}{self.note} ({have})"
        if case.mode == "train" and not self.train:
            return f"{what} is inference-only{self.train_note}"
        if case.mode == "train" and dev.kind in self.no_train_on:
            return f"{what} training on {dev.kind} is not supported by hwbench{self.train_note}"
        if self.module is not None and importlib.util.find_spec(self.module) is None:
            return f"{what} needs the {self.module} package, which is not installed{self.module_note}"
        for dist, least, why in self.min_versions:
            have = installed_version(dist)
            if have is not None and _version_tuple(have) < _version_tuple(least):
                return f"{what} needs {dist} >= {least}{why} (installed: {have})"
        if self.extra is not None:
            return self.extra(dev, case)
        return None

    def _where(self) -> str:
        from .devices import KINDS

        kinds = self.kinds or ()
        accs = [KINDS.get(k) for k in kinds if k in KINDS]
        reqs = [(a.label, a.requirement(self.cap)) for a in accs] if self.cap else []
        reqs = [(label, r) for label, r in reqs if r]
        if len(kinds) == 1 and reqs:
            return f"a {reqs[0][0]} GPU with {reqs[0][1]}"
        where = " or ".join(KINDS.get(k).label if k in KINDS else k for k in kinds) + " device"
        if reqs:
            where += f" ({'; '.join(f'{label}: {r}' for label, r in reqs)})"
        return ("an " if where[:1] in "AEIMOUX" else "a ") + where


def installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` ("2.13.0+cpu"), from its metadata
    (no import: torch takes seconds); None where it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _version_tuple(v: str) -> tuple[int, ...]:
    """The leading dotted numbers: "2.6.0.dev20240101+cu124" -> (2, 6, 0), "0.18" -> (0, 18)."""
    m = re.match(r"\d+(?:\.\d+)*", v)
    return tuple(int(x) for x in m.group(0).split(".")) if m else ()


# In-place conversion of a model already in the precision's weight dtype on its device:
# (model, case) -> (model, changes). ``changes`` counts what was rewritten, e.g.
# {"int8_layers": 12}; it goes into the case's metrics.
Convert = Callable[[Any, "Case"], "tuple[Any, dict[str, int]]"]


@dataclass(frozen=True)
class Precision:
    """One numeric precision.

    ``weight_dtype``: torch dtype name of weights and floating inputs ("float32").
    ``autocast_dtype``: torch dtype name for ``torch.autocast`` (amp_*), or None.
    ``tf32``: whether fp32 matmuls / convolutions may use TF32 tensor cores (CUDA).
    ``peak_key``: which datasheet peak MFU compares against, one of :data:`PEAK_KEYS`.
    ``convert``: in-place rewrite after the cast (quantisation), or None.
    ``rewrites_linear``: the conversion replaces Linear weights, so it is not combined
    with a compression variant (which rewrites them too).
    ``grad_scaler``: training needs a ``torch.amp.GradScaler`` (fp16 autocast).
    """

    name: str
    help: str
    peak_key: str
    weight_dtype: str = "float32"
    needs: Needs = field(default_factory=Needs)
    autocast_dtype: str | None = None
    tf32: bool = False
    convert: Convert | None = None
    rewrites_linear: bool = False
    grad_scaler: bool = False

    def __post_init__(self) -> None:
        if self.peak_key not in PEAK_KEYS:
            raise ValueError(f"precision {self.name!r}: peak_key {self.peak_key!r} is not one of {', '.join(PEAK_KEYS)}")

    def requires(self, device: DeviceInfo, case: Case) -> str | None:
        """Why this precision cannot run ``case`` on ``device``, or None."""
        return self.needs.reason(self.name, device, case)

    def torch_dtype(self) -> torch.dtype:
        """The weight dtype as a torch.dtype (imports torch)."""
        import torch

        return getattr(torch, self.weight_dtype)

    def set_math_mode(self, device: torch.device) -> None:
        """TF32 only where asked: fp32 cases measure true fp32 matmuls and convolutions."""
        import torch

        from .devices import of_torch

        torch.set_float32_matmul_precision("high" if self.tf32 else "highest")
        of_torch(device).set_tf32(self.tf32)

    def autocast(self, device: torch.device) -> Callable[[], Any]:
        """A zero-argument context-manager factory for the step (nullcontext without autocast)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext
        import torch

        dt = getattr(torch, self.autocast_dtype)
        return lambda: torch.autocast(device_type=device.type, dtype=dt)

    def scaler(self, device: torch.device, case: Case) -> Any:
        """A GradScaler for training where fp16 gradients would underflow, else None."""
        if not (self.grad_scaler and case.mode == "train"):
            return None
        import torch

        return torch.amp.GradScaler(device.type)


# the precision registry (hwbench.registry): get raises a UserError (also a KeyError)
# naming the allowed precisions and the closest one
# Modules that register more precisions (each imports this one), imported on the first
# read of the registry: a precision in a module of its own (in hwbench/plugins/) is that
# module plus its name here.
PRECISION_MODULES: tuple[str, ...] = ()
REGISTRY: Registry[Precision] = Registry("precision", PRECISION_MODULES)
register, unregister, names, get = REGISTRY.register, REGISTRY.unregister, REGISTRY.names, REGISTRY.get


def names_help() -> str:
    """One line per precision: ``name  help``."""
    width = max(map(len, REGISTRY.names()), default=0)
    return "\n".join(f"{p.name:<{width}}  {p.help}" for p in REGISTRY.values())


@contextlib.contextmanager
def true_fp32() -> Iterator[None]:
    """Within: fp32 matmuls and convolutions in full fp32 (no TF32 on CUDA, "highest"
    float32 matmul precision everywhere), so an fp32 accuracy reference is true fp32.
    The previous settings are restored on exit."""
    import torch

    saved = (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cuda.matmul.allow_tf32 = saved[1]
        torch.backends.cudnn.allow_tf32 = saved[2]


# --- quantisation through torchao --------------------------------------------------


def _tied(model: Any) -> set[int]:
    """ids of weights shared with an embedding (the decoder's LM head): quantising them
    would untie them and change the model."""
    from torch import nn

    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}


def _quantize_linears(model: Any, config: Any, label: str, left_label: str, multiple: int = 1,
                      in_multiple: int = 1) -> dict[str, int]:
    """Quantise every untied Linear whose in / out features are multiples of ``multiple``
    (and in features of ``in_multiple``) with torchao ``config``, in place. Returns
    {label: converted, left_label: Linear layers kept as they were (tied or of other
    shapes)}."""
    from torch import nn
    from torchao.quantization import quantize_

    tied = _tied(model)
    chosen: set[int] = set()
    kept = 0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            if id(m.weight) in tied or m.in_features % multiple or m.out_features % multiple or m.in_features % in_multiple:
                kept += 1
            else:
                chosen.add(id(m))
    if chosen:
        # The configs' default set_inductor_config=True applies torchao's recommended
        # inductor settings: what a user of torchao + torch.compile runs. The worker
        # process runs one case, so no other case sees them.
        quantize_(model, config, filter_fn=lambda m, fqn: id(m) in chosen)
    return {label: len(chosen), left_label: kept}


def _int8(model: Any, case: Case) -> tuple[Any, dict[str, int]]:
    # Dynamic per-token int8 activations, per-channel int8 weights, matmul by
    # aten._int_mm. On CPU without VNNI torchao offers reduce_range against u8*s8
    # overflow; on this project's AVX2 test host the deviation was 1.1% without it and
    # 2.1% with it, so the default (full range) is kept.
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig

    model.eval()
    return model, _quantize_linears(model, Int8DynamicActivationInt8WeightConfig(), "int8_layers", "fp32_layers_left")


def _int8wo(model: Any, case: Case) -> tuple[Any, dict[str, int]]:
    # Per-channel (PerRow) symmetric int8 weights (torchao Int8Tensor), dequantised to
    # bf16 for a bf16 matmul: half the weight bytes of bf16, the same math. It helps
    # where reading weights is the bottleneck (small batches, decoding) and costs the
    # dequantisation where it is not.
    from torchao.quantization import Int8WeightOnlyConfig

    model.eval()
    return model, _quantize_linears(model, Int8WeightOnlyConfig(), "int8wo_layers", "bf16_layers_left")


INT4_GROUP = 128


def _int4wo(model: Any, case: Case) -> tuple[Any, dict[str, int]]:
    # Groups of 128 int4 weights with a bf16 scale and zero point, in tinygemm's tiled
    # layout (Int4TilePackedTo4dTensor), matmul by aten._weight_int4pack_mm (CUDA,
    # Ampere or later). torchao's default int4 layout ("plain") needs the separate mslk
    # package instead. Layers whose input features are not a multiple of the group stay bf16.
    from torchao.quantization import Int4WeightOnlyConfig
    from torchao.quantization.quantize_.workflows import Int4PackingFormat

    model.eval()
    config = Int4WeightOnlyConfig(group_size=INT4_GROUP, int4_packing_format=Int4PackingFormat.TILE_PACKED_TO_4D)
    return model, _quantize_linears(model, config, "int4wo_layers", "bf16_layers_left", in_multiple=INT4_GROUP)


def _fp8(model: Any, case: Case) -> tuple[Any, dict[str, int]]:
    # e4m3 weights and activations, per-tensor scales (activations scaled every call),
    # through torch._scaled_mm. Its kernels take dimensions that are multiples of 16;
    # other layers stay bf16 and are counted.
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig

    model.eval()
    config = Float8DynamicActivationFloat8WeightConfig(**_fp8_dtypes(model))
    return model, _quantize_linears(model, config, "fp8_layers", "bf16_layers_left", 16)


def _fp8_dtypes(model: Any) -> dict[str, Any]:
    """The e4m3 format of the model's device where its kind differs from the OCP one
    (MI300's e4m3fnuz), as torchao's config arguments; {} for the standard format."""
    import torch

    from .devices import of_torch

    dev = next(model.parameters()).device
    name = of_torch(dev).precision_dtype("fp8", dev)
    return {} if name is None else {"activation_dtype": getattr(torch, name), "weight_dtype": getattr(torch, name)}


def _fp8_rowwise(model: Any, case: Case) -> tuple[Any, dict[str, int]]:
    # As fp8, with one scale per weight row (output channel) and per activation row
    # (token): the recipe torchao recommends for LLM inference, more accurate than one
    # scale per tensor where rows differ in range.
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow

    model.eval()
    config = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
    return model, _quantize_linears(model, config, "fp8_layers", "bf16_layers_left", 16)


_TORCHAO_NOTE = " (pip install torchao; torch.ao.quantization.quantize_dynamic is deprecated)"
_QUANT_TRAIN = " (torchao quantises the weights of a trained model; they are not trained)"
# The configs are used as torchao 0.18 defines them (version 2: Int8Tensor, Float8Tensor,
# Int4TilePackedTo4dTensor layouts); older torchao has other defaults, or none of these.
_TORCHAO = ("torchao", "0.18", " (its version-2 quantised tensor layouts)")
# torch._scaled_mm takes row-wise scales, and aten._convert_weight_to_int4pack uint8
# weights, from torch 2.5.
_TORCH_25 = ("torch", "2.5", "")

# Names as in suites, results and reports: changing one breaks case_id comparisons.
register(Precision("fp32", "float32 weights and math, TF32 off (true fp32)", "fp32"))
register(Precision(
    "tf32", "float32 weights, matmuls and convolutions on TF32 tensor cores", "tf32",
    needs=Needs(kinds=("cuda",), cap="tf32", note=" (Ampere or later)"), tf32=True,
))
register(Precision(
    "fp16", "float16 weights and inputs", "fp16", "float16",
    needs=Needs(no_train_on=("cpu",), train_note=" (use bf16 or amp_bf16)"),
))
register(Precision("bf16", "bfloat16 weights and inputs", "bf16", "bfloat16", needs=Needs(cap="bf16")))
register(Precision(
    "amp_fp16", "float32 weights, float16 autocast (grad scaler in training)", "fp16",
    needs=Needs(no_train_on=("cpu",), train_note=" (use bf16 or amp_bf16)"), autocast_dtype="float16", grad_scaler=True,
))
register(Precision(
    "amp_bf16", "float32 weights, bfloat16 autocast", "bf16", autocast_dtype="bfloat16", needs=Needs(cap="bf16"),
))
register(Precision(
    "int8", "torchao int8 dynamic activations x int8 weights on Linear layers (inference)", "int8",
    # torchao's int8 matmul is aten._int_mm: CPU (verified here) and CUDA kernels; none for MPS / XPU.
    needs=Needs(kinds=("cpu", "cuda", "rocm"), cap="int8_mm",
                note=" (torchao int8 matmuls are aten._int_mm: CPU, CUDA from Ampere, ROCm on CDNA 2+)",
                train=False, train_note=_QUANT_TRAIN, module="torchao", module_note=_TORCHAO_NOTE,
                min_versions=(_TORCHAO,)),
    convert=_int8, rewrites_linear=True,
))
register(Precision(
    "fp8", "torchao float8 e4m3 dynamic activations x weights on Linear layers, bf16 elsewhere (inference)", "fp8", "bfloat16",
    # torchao's Float8DynamicActivationFloat8WeightConfig asserts cc >= 8.9 (or MI300 / XPU);
    # on gfx942 (MI300) the format is e4m3fnuz (the ROCm kind's precision_dtype says so).
    needs=Needs(kinds=("cuda", "rocm"), cap="fp8", note=" (Ada or Hopper, MI300 or later: torchao float8 through torch._scaled_mm)",
                train=False, train_note=_QUANT_TRAIN, module="torchao", module_note=_TORCHAO_NOTE,
                min_versions=(_TORCHAO,)),
    convert=_fp8, rewrites_linear=True,
))
register(Precision(
    "int8wo", "torchao int8 weight-only (per-channel) Linear weights, bf16 activations and matmuls (inference)", "bf16",
    "bfloat16",
    # Int8Tensor dequantises in plain torch ops: CPU (verified here) and CUDA; bf16 on
    # CUDA from Ampere, as for the bf16 precision.
    needs=Needs(kinds=("cpu", "cuda", "rocm"), cap="bf16", note=" (bf16 activations)", train=False,
                train_note=_QUANT_TRAIN, module="torchao", module_note=_TORCHAO_NOTE, min_versions=(_TORCHAO,)),
    convert=_int8wo, rewrites_linear=True,
))
register(Precision(
    "int4wo", f"torchao int4 weight-only Linear weights (groups of {INT4_GROUP}, tinygemm kernel), bf16 activations (inference)",
    "bf16", "bfloat16",
    needs=Needs(kinds=("cuda",), cap="int4_mm",
                note=" (torchao's int4 weight-only kernel is tinygemm's aten._weight_int4pack_mm; "
                     "torchao 0.18 has no CPU layout for Int4WeightOnlyConfig)",
                train=False, train_note=_QUANT_TRAIN, module="torchao", module_note=_TORCHAO_NOTE,
                min_versions=(_TORCHAO, _TORCH_25)),
    convert=_int4wo, rewrites_linear=True,
))
register(Precision(
    "fp8_rowwise", "torchao float8 e4m3 dynamic activations x weights, one scale per row, bf16 elsewhere (inference)",
    "fp8", "bfloat16",
    needs=Needs(kinds=("cuda",), cap="fp8", note=" (Ada or Hopper: torchao float8 through torch._scaled_mm)",
                train=False, train_note=_QUANT_TRAIN, module="torchao", module_note=_TORCHAO_NOTE,
                min_versions=(_TORCHAO, _TORCH_25)),
    convert=_fp8_rowwise, rewrites_linear=True,
))
