"""Samplers: one reading of one piece of hardware per call. Each declares the update
period of its energy source, so too-short windows can be flagged."""

from __future__ import annotations

from typing import Any

import psutil

from ..devices.nvidia import NvidiaGPU
from ..devices.rapl import Rapl


class HostSampler:
    """psutil: system and worker-process CPU %, worker RSS, system memory, CPU clock."""

    name = "host"
    device = None

    def __init__(self, per_core: bool = False):
        self.per_core = per_core
        self.errors = 0
        self.proc: psutil.Process | None = None
        psutil.cpu_percent(None)  # prime: the first call returns a meaningless 0.0
        if per_core:
            psutil.cpu_percent(None, percpu=True)

    def watch(self, pid: int | None) -> None:
        """Follow the worker process ``pid`` (None: none)."""
        self.proc = None
        if pid is not None:
            try:
                self.proc = psutil.Process(pid)
                self.proc.cpu_percent(None)  # prime
            except psutil.Error:
                self.errors += 1

    def read(self) -> dict[str, float]:
        out: dict[str, float] = {"cpu_util_pct": psutil.cpu_percent(None)}
        if self.per_core:
            for i, v in enumerate(psutil.cpu_percent(None, percpu=True)):
                out[f"cpu{i}_util_pct"] = v
        out["mem_used_bytes"] = float(psutil.virtual_memory().used)
        try:
            f = psutil.cpu_freq()
            if f is not None and f.current:
                out["cpu_freq_mhz"] = float(f.current)
        except (OSError, NotImplementedError):
            pass
        if self.proc is not None:
            try:
                with self.proc.oneshot():
                    out["proc_cpu_pct"] = self.proc.cpu_percent(None)
                    out["proc_rss_bytes"] = float(self.proc.memory_info().rss)
            except psutil.NoSuchProcess:
                self.proc = None  # the worker ended: not an error
            except psutil.Error:
                self.errors += 1
        return out


class NvidiaSampler:
    """One NVIDIA GPU through :class:`hwbench.devices.nvidia.NvidiaGPU`."""

    def __init__(self, gpu: NvidiaGPU):
        self.gpu = gpu
        self.name = f"nvidia:{gpu.index}"
        self.device = f"cuda:{gpu.index}"

    @property
    def errors(self) -> int:
        return self.gpu.errors

    def read(self) -> dict[str, float]:
        return {k if k.startswith("gpu_") else f"gpu_{k}": v for k, v in self.gpu.sample().items()}

    def energy_source(self) -> tuple[str, str, float] | None:
        """(source, sample key, update period s) for this GPU's energy."""
        if "energy" not in self.gpu.unsupported and self.gpu.energy_j() is not None:
            return "nvml_counter", "gpu_energy_counter_j", 0.1
        if self.gpu.power_w() is not None:
            # averaged readings cover about one second on most GPUs
            return "nvml_power", "gpu_power_w", 0.1 if self.gpu.power_source == "instant" else 1.0
        return None

    def info(self) -> dict[str, Any]:
        return {"unsupported": sorted(self.gpu.unsupported), "power_source": self.gpu.power_source}


class RaplSampler:
    """CPU package energy (all packages) from RAPL."""

    name = "rapl"
    device = "cpu"

    def __init__(self, rapl: Rapl):
        self.rapl = rapl

    @property
    def errors(self) -> int:
        return self.rapl.errors

    def read(self) -> dict[str, float]:
        e = self.rapl.energy_j()
        return {} if e is None else {"cpu_energy_counter_j": e}

    def info(self) -> dict[str, Any]:
        return {"domains": [d.name for d in self.rapl.domains]}
