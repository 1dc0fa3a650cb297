"""The host CPU as a device kind: the base behaviour of the layer (wall-clock timing,
no device synchronisation or device memory, gloo for parallel cases), RAPL or the
CPU-time estimate for energy."""

from __future__ import annotations

from typing import Any

from .accelerator import KINDS, Accelerator


class Cpu(Accelerator):
    name = "cpu"
    torch_type = "cpu"
    label = "CPU"
    vendor = "host"
    samplers = ("host", "rapl")
    energy_sources = ("rapl", "estimated")
    peak_source = "hwbench.peaks: CPU formula from the recorded clock and SIMD flags"
    # torchao's int8 matmul is aten._int_mm (CPU kernels); bf16 runs (slowly without AMX)
    capabilities = {"tf32": "TF32 is a GPU tensor-core format", "sparse24": "no sparse tensor cores"}

    def gemm_reason(self, dtype: str, device, cpu_flags=frozenset()) -> str | None:
        import torch

        if dtype == "tf32":
            return "TF32 is a mode of NVIDIA tensor cores; CPUs compute fp32 matmuls in fp32"
        if dtype == "fp8":
            return "torch has no fp8 matmul kernel for CPUs (torch._scaled_mm is CUDA / ROCm only)"
        if dtype == "fp16":
            return "not probed on CPUs: no CPU case precision runs fp16 matmuls natively"
        if dtype == "int8" and not hasattr(torch, "_int_mm"):
            return f"torch {torch.__version__} has no torch._int_mm"
        return None

    def device_name(self, device) -> str:
        from .host import cpu_model

        return cpu_model()

    def environment(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return [], {}  # the CPU's facts are the fingerprint's own cpu_* fields


KINDS.register(Cpu())
