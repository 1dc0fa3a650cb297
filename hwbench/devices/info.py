"""A device a case can run on (:class:`DeviceInfo`): the leaf value every kind of the
accelerator layer returns, kept apart so the kind modules import it without importing
the package that imports them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceInfo:
    """A device a case can run on, named as results name it ("rocm:0" for what torch
    calls cuda:0 on a ROCm build). ``capability`` is the CUDA compute capability
    (major, minor) where known; ``arch`` the architecture in the kind's own terms
    ("sm_90", "gfx942"); ``memory_bytes`` the device's total memory, bytes; ``uuid``
    the vendor UUID of the physical device, where known."""

    name: str  # "cpu", "cuda:0", "rocm:0", "mps", "xpu:0", "xla:0", "hpu"
    kind: str
    model: str
    capability: tuple[int, int] | None = None
    memory_bytes: int | None = None
    uuid: str | None = None
    arch: str | None = None
