"""Google TPUs through torch_xla: devices "xla:N"; lazy tensors, so a step is cut into
a graph and run by ``torch_xla.sync()`` and awaited by ``xm.wait_device_ops()``
(synchronise-then-wall-clock timing); memory from ``xm.get_memory_info``; the "xla"
torch.distributed backend.

Energy: the TPU runtime's metrics (``tpu-info``: duty cycle, HBM use) carry no power
or energy reading a tenant can read, so TPU cases get none. Verified against fakes
only (no TPU was available to this project)."""

from __future__ import annotations

import importlib
from typing import Any

from .accelerator import KINDS, Accelerator, Discovery


class Xla(Accelerator):
    name = "xla"
    torch_type = "xla"
    parallel = False  # hwbench's parallel path is not wired for this kind's backend yet
    label = "TPU (XLA)"
    vendor = "google"
    indexed = True
    dist_backend = "xla"
    timer = "wall"
    caps_address_space = False
    module_name = "torch_xla"
    capabilities = {"tf32": "TF32 is an NVIDIA tensor-core format", "int8_mm": "no aten._int_mm lowering in XLA",
                    "fp8": "hwbench's fp8 path is torch._scaled_mm, which XLA does not lower"}
    power_note = "TPU runtime metrics have no power or energy reading"

    def module(self) -> Any:
        """The torch_xla package with ``core.xla_model`` and ``runtime`` imported."""
        if self._module is not None:
            return self._module
        mod = importlib.import_module("torch_xla")
        importlib.import_module("torch_xla.core.xla_model")
        importlib.import_module("torch_xla.runtime")
        return mod

    def discover(self) -> Discovery:
        m = self.module()
        n = m.runtime.global_runtime_device_count()
        if not n:
            return Discovery(reason="torch_xla sees no device (PJRT_DEVICE unset or no TPU attached)")
        from .info import DeviceInfo

        kind = m.runtime.device_type()
        return Discovery(tuple(DeviceInfo(f"xla:{i}", "xla", f"{kind}") for i in range(n)))

    def synchronize(self, device) -> None:
        m = self.module()
        m.sync()  # cut and run the pending graph
        m.core.xla_model.wait_device_ops()

    def memory_peaks(self, device) -> dict[str, int]:
        info = self.module().core.xla_model.get_memory_info(device)
        peak = info.get("peak_bytes_used")
        return {} if peak is None else {"memory_peak_bytes": int(peak)}

    def init_process_group(self, device) -> None:
        import torch.distributed as dist

        importlib.import_module("torch_xla.distributed.xla_backend")  # registers "xla"
        dist.init_process_group("xla", init_method="xla://")

    def environment(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        m = self.module()
        n = m.runtime.global_runtime_device_count()
        kind = m.runtime.device_type()
        return ([{"index": i, "kind": "xla", "vendor": "google", "name": kind, "torch_device": f"xla:{i}"}
                 for i in range(n)], {"torch_xla_version": getattr(m, "__version__", None)})


KINDS.register(Xla())
