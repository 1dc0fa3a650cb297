"""Intel Gaudi accelerators through habana_frameworks (``habana_frameworks.torch.hpu``):
device "hpu"; ``hpu.synchronize()`` and HPU events; the allocator's memory
statistics; the "hccl" torch.distributed backend.

Energy: power and the total energy counter come from HLML (``pyhlml``, hl-smi's
library; :mod:`hwbench.devices.habana`) through the ``hlml`` collector. Verified against
fakes only (no Gaudi was available to this project)."""

from __future__ import annotations

import importlib
from typing import Any

from ._torchgpu import TorchGpu
from .accelerator import KINDS, Discovery


class Hpu(TorchGpu):
    name = "hpu"
    torch_type = "hpu"
    parallel = False  # hwbench's parallel path is not wired for this kind's backend yet
    label = "Gaudi (HPU)"
    vendor = "intel-habana"
    indexed = False  # one HPU per process, chosen by the runtime (HABANA_VISIBLE_MODULES)
    dist_backend = "hccl"
    module_name = "habana_frameworks"
    capabilities = {"tf32": "TF32 is an NVIDIA tensor-core format", "int8_mm": "no aten._int_mm kernel for HPU",
                    "int4_mm": "no tinygemm kernel for HPU", "sparse24": "no 2:4 sparse kernels for HPU",
                    "fp8": "hwbench's fp8 path is torchao's, not Gaudi's own fp8 (habana_quantization_toolkit)"}
    samplers = ("hlml",)
    energy_sources = ("hlml_counter", "hlml_power")

    def module(self) -> Any:
        if self._module is not None:
            return self._module
        return importlib.import_module("habana_frameworks.torch.hpu")

    def discover(self) -> Discovery:
        m = self.module()
        if not m.is_available():
            return Discovery(reason="no Gaudi device (habana_frameworks.torch.hpu.is_available() is False)")
        from .info import DeviceInfo

        return Discovery((DeviceInfo("hpu", "hpu", m.get_device_name()),))

    def set_device(self, device, memory_limit_bytes: int | None = None) -> None:
        pass  # the runtime binds the process to its module; no allocator fraction

    def cache_bytes(self, device) -> int | None:
        return 96 * 2**20  # Gaudi 2 / 3 on-die SRAM (48 / 96 MB): flush the larger

    def init_process_group(self, device) -> None:
        import torch.distributed as dist

        importlib.import_module("habana_frameworks.torch.distributed.hccl")  # registers "hccl"
        dist.init_process_group("hccl")

    def environment(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        m = self.module()
        if not m.is_available():
            return [], {}
        from . import habana

        accs = habana.describe_all()  # HLML's facts (UUID, bus id, memory) where pyhlml is there
        if accs:
            return accs, {}
        return [{"index": 0, "kind": "hpu", "vendor": "intel-habana", "name": m.get_device_name(),
                 "torch_device": "hpu"}], {}


KINDS.register(Hpu())
