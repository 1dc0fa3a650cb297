"""Peak dense throughput per precision, for MFU.

Accelerators: vendor datasheet figures for *dense* math (the sparse figures are twice
these and are not what a dense model can reach). TFLOP/s.

Sources:
* H100 SXM5 / PCIe / NVL, H200: NVIDIA H100 Tensor Core GPU datasheet; NVIDIA H200
  datasheet (H200 SXM has H100 SXM's compute).
* A100 SXM4 / PCIe: NVIDIA A100 Tensor Core GPU datasheet.
* L4, L40S: NVIDIA L4 and L40S datasheets.
* MI300X: AMD Instinct MI300X data sheet.

CPUs: physical cores x max clock x fp32 SIMD lanes x FMA units x 2 FLOPs (one FMA =
multiply + add). Lanes from the CPU flags (AVX-512: 16, AVX2 + FMA: 8, NEON/ASIMD: 4);
two FMA units per core is assumed for AVX2 / AVX-512 server cores (Skylake-SP Gold and
Platinum onwards, Zen 2 onwards; some parts have one, so CPU MFU may be understated by
up to 2x there). bf16 has twice the fp32 peak only where the CPU has AVX512_BF16;
otherwise torch computes it in fp32 and the fp32 peak applies. An unknown device has no
peak: MFU is left empty, never guessed.
"""

from __future__ import annotations

from typing import Mapping

# (name substring, lower-case) -> precision -> dense TFLOP/s. First match wins, so the
# more specific names come first.
ACCELERATORS: list[tuple[str, Mapping[str, float]]] = [
    ("h100 pcie", {"fp32": 51.2, "tf32": 378.0, "fp16": 756.0, "bf16": 756.0, "fp8": 1513.0, "int8": 1513.0}),
    ("h100 nvl", {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5, "bf16": 835.5, "fp8": 1670.5, "int8": 1670.5}),
    ("h100", {"fp32": 66.9, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4, "fp8": 1978.9, "int8": 1978.9}),
    ("h200", {"fp32": 66.9, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4, "fp8": 1978.9, "int8": 1978.9}),
    ("a100", {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0, "int8": 624.0}),
    ("l40s", {"fp32": 91.6, "tf32": 183.0, "fp16": 362.05, "bf16": 362.05, "fp8": 733.0, "int8": 733.0}),
    ("l4", {"fp32": 30.3, "tf32": 60.0, "fp16": 121.0, "bf16": 121.0, "fp8": 242.5, "int8": 242.5}),
    ("mi300x", {"fp32": 163.4, "tf32": 653.7, "fp16": 1307.4, "bf16": 1307.4, "fp8": 2614.9, "int8": 2614.9}),
]

# Which peak a case's precision is measured against.
PEAK_KEY = {
    "fp32": "fp32", "tf32": "tf32", "fp16": "fp16", "bf16": "bf16",
    "amp_fp16": "fp16", "amp_bf16": "bf16", "fp8": "fp8", "int8": "int8",
}


def accelerator_peak_tflops(device_model: str, precision: str) -> float | None:
    name = device_model.lower()
    for key, peaks in ACCELERATORS:
        if key in name:
            return peaks.get(PEAK_KEY[precision])
    return None


def cpu_peak_tflops(precision: str, cores: int, max_mhz: float | None, flags: set[str]) -> float | None:
    """Peak fp32 (or bf16) TFLOP/s of ``cores`` CPU cores; None where unknown."""
    if not max_mhz or cores < 1:
        return None
    if "avx512f" in flags:
        lanes, fma = 16, 2
    elif "avx2" in flags and "fma" in flags:
        lanes, fma = 8, 2
    elif "asimd" in flags:
        lanes, fma = 4, 2
    else:
        return None
    key = PEAK_KEY[precision]
    if key == "fp32" or (key == "bf16" and "avx512_bf16" not in flags):
        mult = 1
    elif key == "bf16":
        mult = 2
    else:
        return None  # fp16 / int8 / fp8 on CPU: no published-style peak to compare with
    return cores * max_mhz * 1e6 * lanes * fma * 2 * mult / 1e12


def peak_tflops(device_kind: str, device_model: str, precision: str, threads: int | None = None) -> float | None:
    """The peak a case is compared against, TFLOP/s, or None (MFU then stays empty)."""
    if device_kind == "cpu":
        import psutil

        from .devices.host import cpu_flags

        physical = psutil.cpu_count(logical=False) or 1
        cores = min(threads, physical) if threads else physical
        freq = psutil.cpu_freq()
        return cpu_peak_tflops(precision, cores, (freq.max or freq.current) if freq else None, cpu_flags())
    return accelerator_peak_tflops(device_model, precision)
