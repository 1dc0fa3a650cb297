"""Apple GPUs through ``torch.mps`` (Metal Performance Shaders): one device, "mps";
synchronise-then-wall-clock timing; no device-memory peak (torch.mps keeps no peak
statistics, so none is recorded); gloo for parallel cases on the CPU side.

Power: macOS reads GPU power only through ``powermetrics``, which needs root; hwbench
does not raise its privileges, so MPS cases carry no energy figure (an estimate would
not be a measurement). Verified against fakes only."""

from __future__ import annotations

from typing import Any

from .accelerator import KINDS, Accelerator, Discovery


class Mps(Accelerator):
    name = "mps"
    torch_type = "mps"
    parallel = False  # hwbench's parallel path is not wired for this kind's backend yet
    label = "MPS"
    vendor = "apple"
    indexed = False
    timer = "wall"
    caps_address_space = False  # Metal maps unified memory: an RLIMIT_AS cap breaks it
    capabilities = {"tf32": "TF32 is an NVIDIA tensor-core format", "int8_mm": "no aten._int_mm kernel for MPS",
                    "fp8": "no fp8 matmul on MPS"}
    power_note = "GPU power needs root powermetrics (macOS): not measured"

    def module(self) -> Any:
        if self._module is not None:
            return self._module
        import torch

        return getattr(torch, "mps", None)

    def discover(self) -> Discovery:
        import torch

        backend = getattr(self._module, "backend_available", None) if self._module is not None else None
        ok = backend() if backend is not None else torch.backends.mps.is_available()
        if not ok:
            return Discovery(reason="no MPS device (torch.backends.mps.is_available() is False)")
        from .info import DeviceInfo

        return Discovery((DeviceInfo("mps", "mps", "Apple MPS"),))

    def set_device(self, device, memory_limit_bytes: int | None = None) -> None:
        if memory_limit_bytes:
            m = self.module()
            total = m.recommended_max_memory()
            m.set_per_process_memory_fraction(min(1.0, memory_limit_bytes / total))

    def synchronize(self, device) -> None:
        self.module().synchronize()

    def empty_cache(self) -> None:
        self.module().empty_cache()


KINDS.register(Mps())
