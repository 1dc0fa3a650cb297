"""AMD GPUs through AMD SMI (the ``amdsmi`` Python library shipped with ROCm). The only
module that imports ``amdsmi``.

Vendor units are converted here, once: the energy accumulator x its resolution (µJ)
-> J, VRAM MB (MiB) -> bytes, clocks MHz, power W, temperature °C. A metric the GPU
does not support (AMDSMI_STATUS_NOT_SUPPORTED, or "N/A" in a returned dict) is
remembered as absent and never asked again; other errors are counted, not raised.

Verified against a fake of the library's documented API (tests/fakes/fake_amdsmi.py)
only: no AMD GPU was available to this project.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Mapping

from ..errors import DeviceNotSupported
from .nvidia import parse_visible_devices

AMDSMI_STATUS_NOT_SUPPORTED = 2
# amdsmi_get_violation_status' "active_*" booleans -> a throttle bit and its name
THROTTLE_BITS = {
    0x1: ("active_ppt_pwr", "power_cap"),
    0x2: ("active_socket_thrm", "socket_thermal"),
    0x4: ("active_prochot_thrm", "prochot"),
    0x8: ("active_vr_thrm", "vr_thermal"),
    0x10: ("active_hbm_thrm", "hbm_thermal"),
}

_init_lock = threading.Lock()


def load_amdsmi(amdsmi: Any = None) -> Any:
    """An initialised amdsmi module (or the fake passed in). DeviceNotSupported where
    the library is missing or no amdgpu driver is loaded."""
    if amdsmi is None:
        try:
            import amdsmi  # noqa: PLC0415 - the one import of amdsmi
        except ImportError as e:
            raise DeviceNotSupported("the amdsmi library is not installed (it ships with ROCm)") from e
    with _init_lock:
        try:
            amdsmi.amdsmi_init(amdsmi.AmdSmiInitFlags.INIT_AMD_GPUS)
        except amdsmi.AmdSmiException as e:
            raise DeviceNotSupported(f"AMD SMI unavailable: {e}") from e
    return amdsmi


def _na(v: Any) -> bool:
    return v is None or v == "N/A"


class AmdGPU:
    """One AMD GPU by AMD SMI processor handle. ``torch_device`` is its name in results
    ("rocm:N", N counted after HIP_VISIBLE_DEVICES masking), None when hidden."""

    def __init__(self, index: int, handle: Any, lib: Any, torch_device: str | None = None):
        self.index = index
        self.handle = handle
        self.lib = lib
        self.torch_device = torch_device
        self.unsupported: set[str] = set()
        self.errors = 0
        self.power_source: str | None = None  # "instant" or "average"

    def _get(self, name: str, fn):
        if name in self.unsupported:
            return None
        try:
            return fn()
        except self.lib.AmdSmiLibraryException as e:
            if e.get_error_code() == AMDSMI_STATUS_NOT_SUPPORTED:
                self.unsupported.add(name)
            else:
                self.errors += 1
            return None

    # -- static facts -----------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        n, h = self.lib, self.handle
        info: dict[str, Any] = {"index": self.index, "torch_device": self.torch_device, "kind": "rocm", "vendor": "amd"}
        asic = self._get("asic", lambda: n.amdsmi_get_gpu_asic_info(h)) or {}
        info["name"] = asic.get("market_name") if not _na(asic.get("market_name")) else "AMD GPU"
        if not _na(asic.get("target_graphics_version")):
            info["arch"] = asic["target_graphics_version"]
        for key, fn in (
            ("uuid", lambda: n.amdsmi_get_gpu_device_uuid(h)),
            ("pci_bus_id", lambda: n.amdsmi_get_gpu_device_bdf(h)),
            ("memory_total_bytes", lambda: int(n.amdsmi_get_gpu_vram_usage(h)["vram_total"]) * 2**20),
            ("driver_version", lambda: n.amdsmi_get_gpu_driver_info(h)["driver_version"]),
        ):
            v = self._get(key, fn)
            if not _na(v):
                info[key] = v
        return info

    # -- readings ---------------------------------------------------------------------
    def energy_j(self) -> float | None:
        """The energy accumulator x its resolution (µJ), J; None where unsupported."""
        r = self._get("energy", lambda: self.lib.amdsmi_get_energy_count(self.handle))
        if r is None or _na(r.get("energy_accumulator")) or _na(r.get("counter_resolution")):
            return None
        return r["energy_accumulator"] * r["counter_resolution"] / 1e6

    def power_w(self) -> float | None:
        """The current socket power where the GPU reports it (MI300 and later), else
        the averaged one; which is kept in ``power_source``."""
        p = self._get("power", lambda: self.lib.amdsmi_get_power_info(self.handle))
        if p is None:
            return None
        for key, source in (("current_socket_power", "instant"), ("average_socket_power", "average")):
            v = p.get(key)
            if not _na(v) and v:  # 0 means "not reported" on GPUs without this field
                self.power_source = source
                return float(v)
        return None

    def sample(self) -> dict[str, float]:
        """One reading of every supported metric; keys carry units."""
        n, h, g = self.lib, self.handle, self._get
        out: dict[str, float] = {}
        act = g("activity", lambda: n.amdsmi_get_gpu_activity(h))
        if act is not None:
            if not _na(act.get("gfx_activity")):
                out["gpu_util_pct"] = float(act["gfx_activity"])
            if not _na(act.get("umc_activity")):
                out["mem_busy_pct"] = float(act["umc_activity"])  # memory-controller activity, not bandwidth
        vram = g("memory", lambda: n.amdsmi_get_gpu_vram_usage(h))
        if vram is not None and not _na(vram.get("vram_used")):
            out["memory_used_bytes"] = float(vram["vram_used"]) * 2**20
        p = self.power_w()
        if p is not None:
            out["power_w"] = p
        e = self.energy_j()
        if e is not None:
            out["energy_counter_j"] = e
        for key, clk in (("sm_clock_mhz", n.AmdSmiClkType.GFX), ("mem_clock_mhz", n.AmdSmiClkType.MEM)):
            c = g(key, lambda c=clk: n.amdsmi_get_clock_info(h, c))
            if c is not None and not _na(c.get("clk")):
                out[key] = float(c["clk"])
        t = self._temperature()
        if t is not None:
            out["temperature_c"] = t
        v = g("throttle", lambda: n.amdsmi_get_violation_status(h))
        if v is not None:
            out["throttle_reasons"] = float(sum(bit for bit, (k, _) in THROTTLE_BITS.items() if v.get(k) is True))
        return out

    def _temperature(self) -> float | None:
        n, h = self.lib, self.handle
        # MI200 / MI300 report the hotspot (junction); older and consumer parts the edge
        for name, sensor in (("temp_hotspot", n.AmdSmiTemperatureType.HOTSPOT), ("temp_edge", n.AmdSmiTemperatureType.EDGE)):
            t = self._get(name, lambda s=sensor: n.amdsmi_get_temp_metric(h, s, n.AmdSmiTemperatureMetric.CURRENT))
            if not _na(t):
                return float(t)
        return None


def gpus(amdsmi: Any = None, environ: Mapping[str, str] | None = None) -> list[AmdGPU]:
    """Every AMD GPU AMD SMI sees, in its order, each named "rocm:<k>" as HIP numbers
    it under HIP_VISIBLE_DEVICES (integer indices; else ROCR_VISIBLE_DEVICES); empty
    where AMD SMI is unavailable. AMD SMI's order is taken to be HIP's (both follow the
    KFD topology order): unverified on multi-GPU hardware."""
    try:
        n = load_amdsmi(amdsmi)
        handles = list(n.amdsmi_get_processor_handles())
    except DeviceNotSupported:
        return []
    except Exception:  # noqa: BLE001 - AmdSmiException from the handle listing
        return []
    env = os.environ if environ is None else environ
    mask = parse_visible_devices(env.get("HIP_VISIBLE_DEVICES", env.get("ROCR_VISIBLE_DEVICES")))
    if mask is None:
        order = list(range(len(handles)))
    elif mask and isinstance(mask[0], int):
        order = [i for i in mask if i < len(handles)]
    else:
        order = []  # UUID masks: not resolved here; no GPU is claimed rather than guessed
    names = {i: f"rocm:{k}" for k, i in enumerate(order)}
    return [AmdGPU(i, h, n, names.get(i)) for i, h in enumerate(handles)]


def describe_all(amdsmi: Any = None, environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    return [g.describe() for g in gpus(amdsmi, environ)]


def throttle_names(bits: int) -> list[str]:
    return [name for bit, (_, name) in THROTTLE_BITS.items() if bits & bit]
