"""Intel GPUs (Data Center GPU Max, Arc) through ``torch.xpu``: events for timing, the
caching allocator's memory statistics, XCCL (torch >= 2.8's "xccl" backend) for
collectives, energy from the GPU's hwmon energy counter in sysfs (i915 / xe drivers,
:mod:`hwbench.devices.intel`).

Verified against fakes only (no Intel GPU was available to this project)."""

from __future__ import annotations

from typing import Any

from ._torchgpu import TorchGpu
from .accelerator import KINDS, Discovery


class Xpu(TorchGpu):
    name = "xpu"
    torch_type = "xpu"
    parallel = False  # hwbench's parallel path is not wired for this kind's backend yet
    label = "XPU"
    vendor = "intel"
    dist_backend = "xccl"
    comm_kernel = None  # XCCL's kernels are not named in the profiler: CPU-side operations
    samplers = ("intel_hwmon",)
    energy_sources = ("hwmon_counter",)
    # fp32 matmuls on Xe matrix engines have no TF32 switch in torch.xpu
    capabilities = {"tf32": "torch.xpu has no TF32 matmul switch"}

    def discover(self) -> Discovery:
        m = self.module()
        if m is None:
            import torch

            return Discovery(reason=f"this torch ({torch.__version__}) has no torch.xpu module")
        if not m.is_available():
            return Discovery(reason="no XPU device (torch.xpu.is_available() is False)")
        from .info import DeviceInfo

        out = []
        for i in range(m.device_count()):
            p = m.get_device_properties(i)
            out.append(DeviceInfo(f"xpu:{i}", "xpu", m.get_device_name(i), None, getattr(p, "total_memory", None)))
        return Discovery(tuple(out))

    def cache_bytes(self, device) -> int | None:
        return 50 * 2**20  # torch.xpu's properties carry no L2 size: flush 2 x 50 MiB

    def environment(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        m = self.module()
        if m is None or not m.is_available():
            return [], {}
        out = []
        for i in range(m.device_count()):
            p = m.get_device_properties(i)
            out.append({"index": i, "kind": "xpu", "vendor": "intel", "torch_device": f"xpu:{i}",
                        "name": m.get_device_name(i), "memory_total_bytes": getattr(p, "total_memory", None),
                        "driver_version": getattr(p, "driver_version", None)})
        return out, {}


KINDS.register(Xpu())
