"""NVIDIA GPUs through a CUDA build of torch (``torch.cuda``) and NVML
(:mod:`hwbench.devices.nvidia`, the only importer of pynvml).

Capabilities are CUDA compute capabilities; collectives run on NCCL; energy comes
from NVML's total-energy counter, else integrated NVML power."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from ._torchgpu import TorchGpu
from .accelerator import KINDS, Discovery

if TYPE_CHECKING:
    from .info import DeviceInfo

# capability -> lowest compute capability (major, minor) that has it
MIN_CC: dict[str, tuple[int, int]] = {
    "tf32": (8, 0),  # Ampere tensor cores
    "bf16": (8, 0),
    "int8_mm": (8, 0),  # aten._int_mm's CUDA kernel
    "int4_mm": (8, 0),  # tinygemm's aten._weight_int4pack_mm
    "sparse24": (8, 0),  # 2:4 semi-structured sparse tensor cores
    "fp8": (8, 9),  # Ada / Hopper e4m3 through torch._scaled_mm
}


def is_rocm_build() -> bool:
    """Whether this torch is a ROCm (HIP) build, whose "cuda" devices are AMD GPUs."""
    import torch

    return getattr(torch.version, "hip", None) is not None


# (lowest compute capability, what it is) per GEMM dtype the probe times
GEMM_NEEDS = {
    "fp32": ((0, 0), ""),
    "tf32": ((8, 0), "TF32 tensor cores (Ampere and later)"),
    "fp16": ((7, 0), "fp16 tensor cores (Volta and later)"),
    "bf16": ((8, 0), "bf16 tensor cores (Ampere and later)"),
    "fp8": ((8, 9), "fp8 tensor cores (Ada and Hopper and later)"),
    "int8": ((8, 0), "torch._int_mm's int8 tensor-core kernels (Ampere and later)"),
}


class Cuda(TorchGpu):
    name = "cuda"
    probe = True
    torch_type = "cuda"
    label = "CUDA"
    vendor = "nvidia"
    dist_backend = "nccl"
    profiler_activity = "CUDA"
    bf16_compress = True
    comm_kernel = "nccl"
    samplers = ("nvidia",)
    energy_sources = ("nvml_counter", "nvml_power")
    peak_source = "hwbench/data/peaks.csv, by NVML / torch device name"

    def claims(self, torch_type: str) -> bool:
        return torch_type == "cuda" and not is_rocm_build()

    def discover(self) -> Discovery:
        import torch

        if is_rocm_build():
            return Discovery(reason=f"this torch is a ROCm build (HIP {torch.version.hip}): its GPUs are kind rocm")
        if torch.version.cuda is None:
            return Discovery(reason=f"no CUDA device visible: this torch ({torch.__version__}) is built without CUDA")
        devs = cuda_devices()
        if not devs:
            return Discovery(reason="no CUDA device visible (torch.cuda.is_available() is False)")
        return Discovery(tuple(devs))

    def requirement(self, cap: str) -> str | None:
        cc = MIN_CC.get(cap)
        return None if cc is None else f"compute capability >= {cc[0]}.{cc[1]}"

    def capability_reason(self, cap: str, dev: "DeviceInfo") -> str | None:
        need = MIN_CC.get(cap)
        if need is None:
            return None
        cc = dev.capability
        if cc is None or tuple(cc) < need:
            return f"this GPU has {'unknown' if cc is None else f'{cc[0]}.{cc[1]}'}"
        return None

    def gemm_reason(self, dtype: str, device, cpu_flags=frozenset()) -> str | None:
        import torch

        m = self.module()
        need, what = GEMM_NEEDS[dtype]
        have = tuple(m.get_device_capability(device))
        if have < need:
            return (f"{what} need compute capability >= {need[0]}.{need[1]}; {m.get_device_name(device)} "
                    f"has {have[0]}.{have[1]}")
        if dtype == "fp8" and not (hasattr(torch, "float8_e4m3fn") and hasattr(torch, "_scaled_mm")):
            return f"torch {torch.__version__} has no float8_e4m3fn / torch._scaled_mm"
        if dtype == "int8" and not hasattr(torch, "_int_mm"):
            return f"torch {torch.__version__} has no torch._int_mm"
        return None

    def environment(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        from . import nvidia

        accs = [{"kind": "cuda", "vendor": "nvidia", **g, "arch": _sm(g.get("compute_capability"))}
                for g in nvidia.describe_all()]
        return accs, nvidia.driver_info()


def _sm(cc) -> str | None:
    return f"sm_{cc[0]}{cc[1]}" if cc else None


def cuda_devices(nvml: Any = None, environ: Mapping[str, str] | None = None) -> list["DeviceInfo"]:
    """The CUDA devices torch can use in this process, as "cuda:<torch ordinal>",
    described through NVML (no CUDA context) with a torch fallback.

    torch numbers only the GPUs CUDA_VISIBLE_DEVICES leaves visible, in its order, so
    "cuda:0" under CUDA_VISIBLE_DEVICES=2 is NVML's GPU 2: each torch ordinal is
    matched to its physical GPU by index in PCI order or by UUID
    (:func:`hwbench.devices.nvidia.visible_gpus`). ``nvml`` and ``environ`` replace
    pynvml and os.environ in tests."""
    import torch

    from .info import DeviceInfo

    # cudaGetDeviceCount: loads the driver, creates no context, honours the mask.
    if not torch.cuda.is_available():
        return []
    from . import nvidia

    gpus = nvidia.gpus(nvml, environ)
    visible = sorted((g for g in gpus if g.torch_device), key=lambda g: int(g.torch_device.split(":")[1]))
    if visible:
        out = []
        for g in visible:
            d = g.describe()
            cap = d.get("compute_capability")
            out.append(DeviceInfo(g.torch_device, "cuda", d["name"], tuple(cap) if cap else None,
                                  d.get("memory_total_bytes"), d.get("uuid"), _sm(cap)))
        return out
    # A mask NVML could not resolve (e.g. MIG ids of a driver without MIG queries):
    # torch's own view, which initialises the runtime in this process.
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out.append(DeviceInfo(f"cuda:{i}", "cuda", p.name, (p.major, p.minor), p.total_memory, arch=_sm((p.major, p.minor))))
    return out


KINDS.register(Cuda())
