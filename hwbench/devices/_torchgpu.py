"""The shared behaviour of kinds whose torch module follows ``torch.cuda``'s API
(``torch.cuda`` for CUDA and ROCm, ``torch.xpu``): current device, memory fraction,
synchronisation, events, memory statistics, cache emptying."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .accelerator import Accelerator

if TYPE_CHECKING:
    import torch


class TorchGpu(Accelerator):
    indexed = True
    timer = "events"
    # the GPU runtimes reserve far more address space than memory: an RLIMIT_AS cap
    # makes them fail to initialise; their allocator caps device memory instead
    caps_address_space = False
    streams = True  # torch.cuda / torch.xpu streams (ROCm: HIP streams behind torch.cuda)

    def set_device(self, device: "torch.device", memory_limit_bytes: int | None = None) -> None:
        m = self.module()
        m.set_device(device)
        if memory_limit_bytes and hasattr(m, "set_per_process_memory_fraction"):
            total = m.get_device_properties(device).total_memory
            m.set_per_process_memory_fraction(min(1.0, memory_limit_bytes / total), device)

    def synchronize(self, device: "torch.device") -> None:
        self.module().synchronize(device)

    def reset_peak_memory(self, device: "torch.device") -> None:
        self.module().reset_peak_memory_stats(device)

    def memory_peaks(self, device: "torch.device") -> dict[str, int]:
        m = self.module()
        out = {"memory_peak_bytes": int(m.max_memory_allocated(device))}
        if hasattr(m, "max_memory_reserved"):
            out["memory_reserved_peak_bytes"] = int(m.max_memory_reserved(device))
        return out

    def empty_cache(self) -> None:
        self.module().empty_cache()

    def set_tf32(self, enabled: bool) -> None:
        if self.torch_type == "cuda":  # CUDA and ROCm builds share torch.backends.cuda's switches
            import torch

            torch.backends.cuda.matmul.allow_tf32 = enabled
            torch.backends.cudnn.allow_tf32 = enabled

    def init_process_group(self, device: "torch.device") -> None:
        import torch.distributed as dist

        # device_id binds the group to this rank's device (eager NCCL / RCCL / XCCL init)
        dist.init_process_group(self.dist_backend, device_id=device)

    def rng_devices(self, device: "torch.device") -> list[Any]:
        return [device]

    def cache_bytes(self, device: "torch.device") -> int | None:
        size = getattr(self.module().get_device_properties(device), "L2_cache_size", 0)
        return int(size) or 50 * 2**20

    def _count(self) -> int:
        m = self.module()
        return m.device_count() if m is not None and m.is_available() else 0
