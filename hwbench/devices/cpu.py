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

    def environment(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return [], {}  # the CPU's facts are the fingerprint's own cpu_* fields


KINDS.register(Cpu())
