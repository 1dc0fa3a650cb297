"""The environment fingerprint stored with every run: enough to tell where each number
came from (docs/architecture.md, rule 7) and to refuse resuming onto another machine's file."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from . import cpu_uarch, devices
from .devices import host
from .errors import DeviceNotSupported
from .version import __version__


def git_commit() -> str | None:
    """The hwbench checkout's commit, when hwbench runs from a git checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def fingerprint() -> dict[str, Any]:
    """Facts about this machine and software, JSON types only. It also carries what
    peaks are derived from at load time (hwbench.peaks.peak): the CPU's max clock and
    where it was read, its SIMD flags, its identity (vendor / family / model or Arm
    implementer / part, hwbench.cpu_uarch), an all-core clock where one was declared,
    and which device name each accelerator had under this process's
    CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES (``accelerators[i]["torch_device"]``).
    Accelerators and their software versions come from every kind of the accelerator
    layer (``Accelerator.environment``)."""
    import torch

    max_mhz, max_source = host.cpu_freq_max()
    env: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": host.cpu_model(),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "cpu_cores_logical": psutil.cpu_count(logical=True),
        "cpu_freq_max_mhz": max_mhz,
        "cpu_freq_max_source": max_source,
        "cpu_flags": host.peak_cpu_flags(),
        # what the CPU peak's microarchitecture table is keyed by, and a declared
        # all-core clock (hwbench.cpu_uarch; docs/measuring.md)
        **cpu_uarch.read_identity(),
        **cpu_uarch.declared_all_core_clock(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        **host.cpu_scaling(),
        "memory_total_bytes": psutil.virtual_memory().total,
        "python_version": platform.python_version(),
        "python_implementation": sys.implementation.name,
        "torch_version": torch.__version__,
        "torch_cuda_version": torch.version.cuda,
        "torch_num_threads": torch.get_num_threads(),
        "hwbench_version": __version__,
        "hwbench_git_commit": git_commit(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    env.update(accelerator_facts())
    return env


def accelerator_facts() -> dict[str, Any]:
    """``accelerators`` (every device every installed kind describes) and the kinds'
    software facts (driver, CUDA driver, HIP versions), JSON types only."""
    accs: list[dict[str, Any]] = []
    soft: dict[str, Any] = {}
    for acc in devices.KINDS.values():
        if acc.available() is not None:
            continue
        try:
            found, facts = acc.environment()
        except (DeviceNotSupported, ImportError, RuntimeError, OSError):
            continue  # a kind whose library fails to answer describes nothing
        accs += found
        soft.update({k: v for k, v in facts.items() if v is not None})
    return {"accelerators": accs, **soft}


def machine_id(env: dict[str, Any]) -> tuple:
    """What must match to resume a run: host, CPU and accelerators (``gpus`` in files
    and profiles written before schema 4)."""
    accs = env.get("accelerators", env.get("gpus")) or []
    return (env.get("hostname"), env.get("cpu_model"), tuple(g.get("uuid", g.get("name")) for g in accs))
