"""The accelerator layer (docs/accelerators.md): what devices are present, asked
without creating a device context in the runner (the runner must not hold GPU memory
while workers measure), and one :class:`~.accelerator.Accelerator` per device kind in
:data:`KINDS` that every other module asks instead of branching on a kind."""

from __future__ import annotations

import os

# torch and NVML must number GPUs the same way (docs/architecture.md, rule 6). Set before any
# CUDA initialisation; workers inherit it.
os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")


from .info import DeviceInfo  # noqa: E402  (a leaf module, so the kinds import it without a circle)


from .accelerator import KINDS, Accelerator, Discovery, absent_reason, bind, discover_all, kind_of, of, of_torch, use_module  # noqa: E402

# one module per kind, registered in this order (``hwbench list devices`` shows it)
from . import cpu, cuda, rocm, xpu, mps, xla, hpu  # noqa: E402,F401
from .cuda import cuda_devices  # noqa: E402,F401

# ``auto`` takes the first present kind of this order
AUTO_ORDER = ("cuda", "rocm", "xpu", "hpu", "xla", "mps", "cpu")


def present() -> list[DeviceInfo]:
    """Every device present on this machine, best first for ``auto``."""
    found = discover_all()
    ordered = [k for k in AUTO_ORDER if k in found] + [k for k in found if k not in AUTO_ORDER]
    return [d for k in ordered for d in found[k].devices]


__all__ = ["AUTO_ORDER", "KINDS", "Accelerator", "absent_reason", "bind", "DeviceInfo", "Discovery", "cuda_devices", "discover_all", "kind_of",
           "of", "of_torch", "present", "use_module"]
