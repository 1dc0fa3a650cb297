"""Host facts: CPU model, cores, memory. Reads the OS, nothing vendor-specific."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path

# The CPU flags a peak formula reads (hwbench.peaks): SIMD width (avx2 + fma, avx512f,
# asimd = NEON, sve), bf16 dot products (avx512_bf16) and matrix units (amx_*), which
# the formula does not count yet but a stored environment lets a later one use.
PEAK_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "asimd", "sve")

SYSFS_MAX_FREQ = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
SYSFS_CPU = "/sys/devices/system/cpu"


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's marketing name, e.g. 'AMD EPYC 7R13 Processor'."""
    system = platform.system()
    try:
        if system == "Linux":
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.lower().startswith(("model name", "hardware", "processor\t: ")) and ":" in line:
                        value = line.split(":", 1)[1].strip()
                        if value and not value.isdigit():
                            return value
        elif system == "Darwin":
            return subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> set[str]:
    """CPU feature flags (Linux /proc/cpuinfo), empty where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def peak_cpu_flags() -> list[str]:
    """The flags of :data:`PEAK_CPU_FLAGS` this CPU has, sorted. On AArch64 Advanced
    SIMD (NEON) is mandatory, so "asimd" is known even without /proc/cpuinfo (macOS)."""
    flags = cpu_flags()
    if platform.machine().lower() in ("arm64", "aarch64"):
        flags.add("asimd")
    return sorted(f for f in PEAK_CPU_FLAGS if f in flags)


def cpu_freq_max(sysfs_path: str = SYSFS_MAX_FREQ) -> tuple[float | None, str | None]:
    """The CPU's maximum clock, MHz, and where it was read: the kernel's cpufreq
    ``cpuinfo_max_freq`` (kHz) first, then ``psutil.cpu_freq().max``. (None, None)
    where neither knows (VMs often report 0); never the current clock, which moves
    with load and power state."""
    try:
        khz = float(Path(sysfs_path).read_text().strip())
        if khz > 0:
            return khz / 1e3, sysfs_path
    except (OSError, ValueError):
        pass
    import psutil

    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError, RuntimeError):  # psutil raises these on odd hosts
        freq = None
    if freq is not None and freq.max and freq.max > 0:
        return float(freq.max), "psutil.cpu_freq().max"
    return None, None


def cpu_scaling(root: str = SYSFS_CPU) -> dict[str, object]:
    """How the kernel scales this machine's CPU clocks, as pyperf's ``system show`` reads
    them: ``cpu_governor`` (the cpufreq governors of the CPUs, comma-joined when they
    differ, e.g. "performance" or "powersave"), ``cpu_boost`` (turbo / boost enabled:
    ``cpufreq/boost`` = 1, or intel_pstate's ``no_turbo`` = 0). None where the kernel
    does not say (VMs, containers without cpufreq)."""
    base = Path(root)
    govs: list[str] = []
    for f in sorted(base.glob("cpu[0-9]*/cpufreq/scaling_governor")):
        try:
            g = f.read_text().strip()
        except OSError:
            continue
        if g and g not in govs:
            govs.append(g)
    boost: bool | None = None
    for f, on in ((base / "cpufreq" / "boost", "1"), (base / "intel_pstate" / "no_turbo", "0")):
        try:
            boost = f.read_text().strip() == on
            break
        except OSError:
            continue
    return {"cpu_governor": ",".join(govs) or None, "cpu_boost": boost}
