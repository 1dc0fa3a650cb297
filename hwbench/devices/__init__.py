"""What accelerators are present, asked without creating a CUDA context in the runner
(the runner must not hold GPU memory while workers measure)."""

from __future__ import annotations

import os
from dataclasses import dataclass

# torch and NVML must number GPUs the same way (DESIGN.md rule 6). Set before any
# CUDA initialisation; workers inherit it.
os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")


@dataclass(frozen=True)
class DeviceInfo:
    """A device a case can run on. ``capability`` is CUDA compute capability (major,
    minor) where known."""

    name: str  # "cpu", "cuda:0", "mps", "xpu:0"
    kind: str
    model: str
    capability: tuple[int, int] | None = None
    memory_bytes: int | None = None


def cuda_devices() -> list[DeviceInfo]:
    """CUDA devices, described through NVML (no CUDA context) with a torch fallback."""
    import torch

    if not torch.cuda.is_available():
        return []
    from . import nvidia

    gpus = nvidia.describe_all()
    if gpus:
        return [
            DeviceInfo(f"cuda:{g['index']}", "cuda", g["name"], tuple(g["compute_capability"]), g["memory_total_bytes"])
            for g in gpus
            if g.get("compute_capability")
        ]
    # No NVML (e.g. ROCm builds expose HIP devices as "cuda"): torch's view, which
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
