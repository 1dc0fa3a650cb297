"""AMD GPUs through a ROCm build of torch: torch calls them "cuda" (HIP implements the
torch.cuda API), results call them "rocm:N". Capabilities are gfx architectures;
collectives run on RCCL through torch's "nccl" backend; power and energy come from AMD
SMI (:mod:`hwbench.devices.amd`).

Verified against fakes only (no AMD GPU was available to this project)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._torchgpu import TorchGpu
from .accelerator import KINDS, Discovery
from .cuda import is_rocm_build

if TYPE_CHECKING:
    import torch

    from .info import DeviceInfo

# capability -> gfx architectures that have it (the arch's base name, before ":")
ARCHS: dict[str, tuple[str, ...]] = {
    # CDNA 1-4 matrix cores and RDNA 3-4 WMMA take bf16
    "bf16": ("gfx908", "gfx90a", "gfx940", "gfx941", "gfx942", "gfx950", "gfx1100", "gfx1101", "gfx1102",
             "gfx1200", "gfx1201"),
    # aten._int_mm through hipBLASLt
    "int8_mm": ("gfx90a", "gfx940", "gfx941", "gfx942", "gfx950"),
    # MI300 (e4m3fnuz), MI350 and RDNA 4 (OCP e4m3fn) through torch._scaled_mm
    "fp8": ("gfx940", "gfx941", "gfx942", "gfx950", "gfx1200", "gfx1201"),
}
# what ARCHS asks, in words for messages
REQUIREMENT = {"bf16": "gfx908 or later", "int8_mm": "gfx90a, gfx942 or gfx950", "fp8": "gfx942, gfx950 or gfx12"}
# MI300's fp8 is the "fnuz" variant (no negative zero, bias 8): torch.float8_e4m3fnuz
FP8_FNUZ = ("gfx940", "gfx941", "gfx942")


def base_arch(arch: str | None) -> str | None:
    """"gfx942:sramecc+:xnack-" -> "gfx942"."""
    return arch.split(":", 1)[0] if arch else None


class Rocm(TorchGpu):
    name = "rocm"
    probe = True  # torch.cuda's API on HIP: the CUDA probe path (unverified on hardware)
    torch_type = "cuda"
    label = "ROCm"
    vendor = "amd"
    dist_backend = "nccl"  # RCCL behind torch's nccl backend
    profiler_activity = "CUDA"  # HIP kernels are reported as CUDA activity
    bf16_compress = True
    comm_kernel = "nccl"  # RCCL kernels keep NCCL's names (ncclDevKernel_*)
    samplers = ("amdsmi",)
    energy_sources = ("amdsmi_counter", "amdsmi_power")
    peak_source = "hwbench/data/peaks.csv, by AMD SMI / torch device name"

    def claims(self, torch_type: str) -> bool:
        return torch_type == "cuda" and is_rocm_build()

    def discover(self) -> Discovery:
        import torch

        if not is_rocm_build():
            return Discovery(reason=f"this torch ({torch.__version__}) is not a ROCm build (torch.version.hip is None)")
        m = self.module()
        if not m.is_available():
            return Discovery(reason="no ROCm device visible (torch.cuda.is_available() is False on this HIP build)")
        from .info import DeviceInfo

        out = []
        for i in range(m.device_count()):
            # HIP's device properties: initialises the HIP runtime (no allocation)
            p = m.get_device_properties(i)
            out.append(DeviceInfo(f"rocm:{i}", "rocm", p.name, None, p.total_memory, None,
                                  base_arch(getattr(p, "gcnArchName", None))))
        return Discovery(tuple(out))

    def requirement(self, cap: str) -> str | None:
        archs = ARCHS.get(cap)
        return REQUIREMENT.get(cap)

    def capability_reason(self, cap: str, dev: "DeviceInfo") -> str | None:
        archs = ARCHS.get(cap)
        if archs is None:
            return None
        arch = base_arch(dev.arch)
        return None if arch in archs else f"this GPU is {arch or 'of unknown arch'}"

    def gemm_reason(self, dtype: str, device, cpu_flags=frozenset()) -> str | None:
        if dtype == "tf32":
            return "TF32 is an NVIDIA tensor-core mode; not probed on ROCm"
        if dtype == "fp8":
            return "the probe's fp8 GEMM is OCP e4m3fn (MI300 computes e4m3fnuz): not probed on ROCm yet"
        cap = {"bf16": "bf16", "int8": "int8_mm"}.get(dtype)
        arch = base_arch(getattr(self.module().get_device_properties(device), "gcnArchName", None))
        if cap is not None and arch not in ARCHS[cap]:
            return f"{dtype} GEMMs need {REQUIREMENT[cap]}; this GPU is {arch or 'of unknown arch'}"
        return None

    def precision_dtype(self, name: str, dev: Any = None) -> str | None:
        if name != "fp8" or dev is None:
            return None
        arch = dev.arch if hasattr(dev, "arch") else getattr(self.module().get_device_properties(dev), "gcnArchName", None)
        return "float8_e4m3fnuz" if base_arch(arch) in FP8_FNUZ else None

    def environment(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        import torch

        from . import amd

        accs = amd.describe_all()
        return accs, {"hip_version": getattr(torch.version, "hip", None)} if accs else {}


KINDS.register(Rocm())
