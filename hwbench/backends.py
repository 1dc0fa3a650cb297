"""Putting a model on a device, in a precision, through a compiler backend -- and
declaring which combinations a machine supports (checked before launch, so a case that
cannot run is ``skipped`` with a precise reason instead of failing)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import torch

from . import variants
from .devices import DeviceInfo
from .spec import Case

# dtype of weights and floating inputs per precision; amp_* keep fp32 weights.
WEIGHT_DTYPE = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "amp_fp16": torch.float32,
    "amp_bf16": torch.float32,
    "int8": torch.float32,
    "fp8": torch.bfloat16,
}


def resolve_device(name: str, devices: list[DeviceInfo]) -> DeviceInfo | None:
    """Map a suite device name to a present device (``auto`` = best present; ``cuda``
    = ``cuda:0``). None if absent."""
    by_name = {d.name: d for d in devices}
    if name == "auto":
        return devices[0]
    if name in ("cuda", "xpu"):
        name += ":0"
    return by_name.get(name)


def _absent_reason(name: str) -> str:
    kind = name.split(":")[0]
    why = {
        "cuda": "no CUDA device visible (torch.cuda.is_available() is False or the index is out of range)",
        "mps": "no MPS device (torch.backends.mps.is_available() is False)",
        "xpu": "no XPU device (torch.xpu.is_available() is False)",
    }
    return f"device {name}: {why.get(kind, 'not present')}"


def unsupported_reason(case: Case, dev: DeviceInfo | None) -> str | None:
    """Why ``case`` cannot run on this machine, or None. Declared capabilities only:
    the worker does not re-check."""
    if dev is None:
        return _absent_reason(case.device)
    cc = dev.capability
    p = case.precision
    if p == "tf32" and (dev.kind != "cuda" or cc is None or cc < (8, 0)):
        return "tf32 needs a CUDA GPU with compute capability >= 8.0 (Ampere or later)"
    if p in ("fp16", "amp_fp16") and dev.kind == "cpu" and case.mode == "train":
        return f"{p} training on CPU is not supported by hwbench (use bf16 or amp_bf16)"
    if p in ("bf16", "amp_bf16") and dev.kind == "cuda" and cc is not None and cc < (8, 0):
        return f"{p} needs compute capability >= 8.0 (this GPU has {cc[0]}.{cc[1]})"
    if p == "int8":
        if dev.kind != "cpu":
            return "int8 (dynamic quantization of Linear layers) runs on CPU only"
        if case.mode == "train":
            return "int8 dynamic quantization is inference-only"
        if "x86" not in torch.backends.quantized.supported_engines and "qnnpack" not in torch.backends.quantized.supported_engines:
            return "int8 needs a quantized engine (x86, fbgemm or qnnpack) in this torch build"
    if p == "fp8":
        if dev.kind != "cuda" or cc is None or cc < (8, 9):
            return "fp8 needs a CUDA GPU with compute capability >= 8.9 (Ada or Hopper)"
        if case.mode == "train":
            return "fp8 is inference-only in hwbench (Linear layers through torch._scaled_mm)"
    v = case.variant
    if v == "sparse24":
        if dev.kind != "cuda" or cc is None or cc < (8, 0):
            return "sparse24 (2:4 semi-structured sparsity) needs a CUDA GPU with compute capability >= 8.0"
        if p not in ("fp16", "bf16"):
            return "sparse24 needs fp16 or bf16 weights"
        if case.mode == "train":
            return "sparse24 is inference-only"
    if v != "none" and p in ("int8", "fp8"):
        return f"variant {v} is not combined with {p} (both rewrite the Linear layers)"
    if case.mode == "generate" and case.backend != "eager":
        return f"generate with the {case.backend} backend is not supported (the KV cache changes shape every step)"
    if case.backend == "cudagraphs" and dev.kind != "cuda":
        return "cudagraphs backend needs a CUDA device"
    if case.backend == "compile" and not _compile_available():
        return "torch.compile is not available in this torch build"
    if case.threads is not None and dev.kind != "cpu":
        return "threads applies to CPU cases only"
    return None


def _compile_available() -> bool:
    return hasattr(torch, "compile")


@dataclass
class Prepared:
    """A model ready to step: module on device, input dtype, autocast context factory
    and grad scaler (fp16 autocast training)."""

    model: torch.nn.Module
    input_dtype: torch.dtype
    autocast: Callable[[], Any]
    scaler: Any = None
    changes: dict[str, int] | None = None  # what the variant / fp8 conversion rewrote


def prepare(model: torch.nn.Module, case: Case, device: torch.device, float_inputs: bool) -> Prepared:
    """Apply precision then backend. Called inside the worker."""
    p = case.precision
    if device.type == "cuda":
        # tf32 only where asked: fp32 cases measure true fp32 matmuls.
        torch.backends.cuda.matmul.allow_tf32 = p == "tf32"
        torch.backends.cudnn.allow_tf32 = p == "tf32"
    model = model.to(device=device, dtype=WEIGHT_DTYPE[p])
    changes = variants.apply(model, case.variant)
    if p == "int8":
        model = torch.ao.quantization.quantize_dynamic(model.eval(), {torch.nn.Linear}, dtype=torch.qint8)
    if p == "fp8":
        changes.update(variants.to_fp8(model))
    autocast: Callable[[], Any] = contextlib.nullcontext
    scaler = None
    if p in ("amp_fp16", "amp_bf16"):
        dt = torch.float16 if p == "amp_fp16" else torch.bfloat16
        autocast = lambda: torch.autocast(device_type=device.type, dtype=dt)  # noqa: E731
        if p == "amp_fp16" and case.mode == "train":
            scaler = torch.amp.GradScaler(device.type)
    return Prepared(model, WEIGHT_DTYPE[p] if float_inputs else torch.long, autocast, scaler, changes)


def compile_model(model: torch.nn.Module, case: Case, mode: str = "default") -> torch.nn.Module:
    """``compile``: torch.compile (inductor) in ``mode``. ``cudagraphs``: dynamo's
    CUDA-graphs backend (captures and replays the step's kernels, no inductor)."""
    if case.backend == "compile":
        return torch.compile(model, mode=None if mode == "default" else mode)
    if case.backend == "cudagraphs":
        return torch.compile(model, backend="cudagraphs")
    return model
