"""What accelerators are present, asked without creating a CUDA context in the runner
(the runner must not hold GPU memory while workers measure)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

# torch and NVML must number GPUs the same way (docs/architecture.md, rule 6). Set before any
# CUDA initialisation; workers inherit it.
os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")


@dataclass(frozen=True)
class DeviceInfo:
    """A device a case can run on, named as torch names it in this process.
    ``capability`` is CUDA compute capability (major, minor) where known;
    ``memory_bytes`` the device's total memory, bytes; ``uuid`` the NVML UUID of the
    physical GPU behind a "cuda:N" name, where NVML knows it."""

    name: str  # "cpu", "cuda:0", "mps", "xpu:0"
    kind: str
    model: str
    capability: tuple[int, int] | None = None
    memory_bytes: int | None = None
    uuid: str | None = None


def cuda_devices(nvml: Any = None, environ: Mapping[str, str] | None = None) -> list[DeviceInfo]:
    """The CUDA devices torch can use in this process, as "cuda:<torch ordinal>",
    described through NVML (no CUDA context) with a torch fallback.

    torch numbers only the GPUs CUDA_VISIBLE_DEVICES leaves visible, in its order, so
    "cuda:0" under CUDA_VISIBLE_DEVICES=2 is NVML's GPU 2: each torch ordinal is
    matched to its physical GPU by index in PCI order or by UUID
    (:func:`hwbench.devices.nvidia.visible_gpus`). ``nvml`` and ``environ`` replace
    pynvml and os.environ in tests."""
    import torch

    # cudaGetDeviceCount: loads the driver, creates no context, honours the mask.
    if not torch.cuda.is_available():
        return []
    from . import nvidia

    gpus = nvidia.gpus(nvml, environ)
    visible = sorted((g for g in gpus if g.torch_device), key=lambda g: int(g.torch_device.split(":")[1]))
    if visible:
        out = []
        for g in visible:
            d = g.describe()
            cap = d.get("compute_capability")
            out.append(DeviceInfo(g.torch_device, "cuda", d["name"], tuple(cap) if cap else None, d.get("memory_total_bytes"), d.get("uuid")))
        return out
    # No NVML (ROCm builds expose HIP devices as "cuda"), or a mask NVML could not
    # resolve (e.g. MIG ids of a driver without MIG queries): torch's own view, which
    # initialises the runtime in this process.
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out.append(DeviceInfo(f"cuda:{i}", "cuda", p.name, (p.major, p.minor), p.total_memory))
    return out


def present() -> list[DeviceInfo]:
    """Every device present on this machine, best first for ``auto``."""
    import torch

    out = list(cuda_devices())
    if getattr(torch, "xpu", None) is not None and torch.xpu.is_available():
        out += [DeviceInfo(f"xpu:{i}", "xpu", torch.xpu.get_device_name(i)) for i in range(torch.xpu.device_count())]
    if torch.backends.mps.is_available():
        out.append(DeviceInfo("mps", "mps", "Apple MPS"))
    from .host import cpu_model

    out.append(DeviceInfo("cpu", "cpu", cpu_model()))
    return out
