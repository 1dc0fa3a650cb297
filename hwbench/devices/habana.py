"""Intel Gaudi accelerators through HLML (``pyhlml``, Habana's Python wrapper of
libhlml, the library behind hl-smi). The only module that imports ``pyhlml``.

Vendor units are converted here, once: power mW -> W, the total energy counter mJ -> J
(it counts from the last driver load), memory bytes, clocks MHz (the SOC clock, Gaudi's
compute clock, is reported as ``sm_clock_mhz``), the on-chip (AIP) temperature °C.
A metric the device or the installed pyhlml does not offer (HLML_ERROR_NOT_SUPPORTED,
or a function the wrapper lacks) is remembered as absent and never asked again; other
errors are counted, not raised. Older pyhlml releases build the HLMLError of a failed
call without raising it and return 0: a power or energy reading of 0 is therefore taken
as "not reported" (a device's energy since driver load is never 0).

Verified against a fake of pyhlml's API (tests/fakes/fake_pyhlml.py) only: no Gaudi
was available to this project.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Mapping

from ..errors import DeviceNotSupported

HLML_ERROR_NOT_SUPPORTED = 3  # hlml_types.HLML_RETURN
HLML_CLOCK_SOC = 0  # hlml_types.HLML_CLOCK_TYPE: Gaudi's clock
HLML_TEMPERATURE_ON_AIP = 0  # hlml_types.HLML_TEMP_SENS: on the chip (1: the board)
# hlml_types.HLML_DEFINE.HLML_CLOCKS_THROTTLE_REASON_* -> name
THROTTLE_BITS = {0x1: "power_cap", 0x2: "thermal"}

_init_lock = threading.Lock()


def load_hlml(pyhlml: Any = None) -> Any:
    """An initialised pyhlml module (or the fake passed in). DeviceNotSupported where
    the library is missing or HLML cannot start (no habanalabs driver, no libhlml)."""
    if pyhlml is None:
        try:
            import pyhlml  # noqa: PLC0415 - the one import of pyhlml
        except ImportError as e:
            raise DeviceNotSupported("the pyhlml library is not installed (it ships with Gaudi's software)") from e
    with _init_lock:
        try:
            pyhlml.hlmlInit()
        except Exception as e:  # noqa: BLE001 - HLMLError, or OSError where libhlml.so is absent
            raise DeviceNotSupported(f"HLML unavailable: {e}") from e
    return pyhlml


def _text(v: Any) -> str | None:
    """HLML strings come back as bytes (a ctypes string buffer's value)."""
    if isinstance(v, bytes):
        v = v.decode(errors="replace")
    if not isinstance(v, str):
        return None
    return v.strip() or None


class HabanaDevice:
    """One Gaudi by HLML handle. ``torch_device`` is its name in results ("hpu": one
    device per process), None where it is not the one this process uses."""

    def __init__(self, index: int, handle: Any, lib: Any, torch_device: str | None = None):
        self.index = index
        self.handle = handle
        self.lib = lib
        self.torch_device = torch_device
        self.unsupported: set[str] = set()
        self.errors = 0
        # hlmlDeviceGetPowerUsage's averaging is not documented: not claimed "instant",
        # so the sampler takes its update period as 1 s
        self.power_source: str | None = None

    def _get(self, name: str, fn_name: str, *args: Any) -> Any:
        if name in self.unsupported:
            return None
        fn = getattr(self.lib, fn_name, None)
        if fn is None:  # an older pyhlml without this call
            self.unsupported.add(name)
            return None
        try:
            return fn(self.handle, *args)
        except self.lib.HLMLError as e:
            if getattr(e, "value", None) == HLML_ERROR_NOT_SUPPORTED:
                self.unsupported.add(name)
            else:
                self.errors += 1
            return None

    # -- static facts -----------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"index": self.index, "torch_device": self.torch_device, "kind": "hpu",
                                "vendor": "intel-habana"}
        info["name"] = _text(self._get("name", "hlmlDeviceGetName")) or "Gaudi"
        uuid = _text(self._get("uuid", "hlmlDeviceGetUUID"))
        if uuid:
            info["uuid"] = uuid
        pci = self._get("pci", "hlmlDeviceGetPCIInfo")
        bus = _text(getattr(pci, "bus_id", None))
        if bus:
            info["pci_bus_id"] = bus
        mem = self._get("memory", "hlmlDeviceGetMemoryInfo")
        if mem is not None and getattr(mem, "total", 0):
            info["memory_total_bytes"] = int(mem.total)
        return info

    # -- readings ---------------------------------------------------------------------
    def energy_j(self) -> float | None:
        """hlmlDeviceGetTotalEnergyConsumption (mJ since driver load), J; None where
        unsupported or 0 (see the module's note)."""
        mj = self._get("energy", "hlmlDeviceGetTotalEnergyConsumption")
        return mj / 1e3 if mj else None

    def power_w(self) -> float | None:
        """hlmlDeviceGetPowerUsage (mW), W; None where unsupported or 0."""
        mw = self._get("power", "hlmlDeviceGetPowerUsage")
        if not mw:
            return None
        self.power_source = "power_usage"
        return mw / 1e3

    def sample(self) -> dict[str, float]:
        """One reading of every supported metric; keys carry units."""
        out: dict[str, float] = {}
        util = self._get("utilization", "hlmlDeviceGetUtilizationRates")
        util = getattr(util, "aip", util)  # pyhlml 1.x returns the percentage, later ones the struct
        if util is not None:
            out["gpu_util_pct"] = float(util)
        mem = self._get("memory", "hlmlDeviceGetMemoryInfo")
        if mem is not None:
            out["memory_used_bytes"] = float(mem.used)
        p = self.power_w()
        if p is not None:
            out["power_w"] = p
        e = self.energy_j()
        if e is not None:
            out["energy_counter_j"] = e
        clk = self._get("clock", "hlmlDeviceGetClockInfo", HLML_CLOCK_SOC)
        if clk:
            out["sm_clock_mhz"] = float(clk)
        t = self._get("temperature", "hlmlDeviceGetTemperature", HLML_TEMPERATURE_ON_AIP)
        if t is not None:
            out["temperature_c"] = float(t)
        bits = self._get("throttle", "hlmlDeviceGetCurrentClocksThrottleReasons")
        if bits is not None:
            out["throttle_reasons"] = float(bits)
        return out


def _process_device(lib: Any, handles: list[Any], environ: Mapping[str, str]) -> int | None:
    """Which HLML device this process's "hpu" is: the only one; else the one whose
    module id HABANA_VISIBLE_MODULES names alone (hlmlDeviceGetModuleID, newer pyhlml);
    else None -- the runtime takes a free device, which cannot be known from here."""
    if len(handles) == 1:
        return 0
    mask = [e.strip() for e in environ.get("HABANA_VISIBLE_MODULES", "").split(",") if e.strip()]
    get_module = getattr(lib, "hlmlDeviceGetModuleID", None)
    if len(mask) != 1 or not mask[0].isdigit() or get_module is None:
        return None
    for i, h in enumerate(handles):
        try:
            if get_module(h) == int(mask[0]):
                return i
        except lib.HLMLError:
            return None
    return None


def devices(pyhlml: Any = None, environ: Mapping[str, str] | None = None) -> list[HabanaDevice]:
    """Every Gaudi HLML sees, in its order, the one this process uses named "hpu"
    (:func:`_process_device`); empty where HLML is unavailable."""
    try:
        lib = load_hlml(pyhlml)
        handles = [lib.hlmlDeviceGetHandleByIndex(i) for i in range(lib.hlmlDeviceGetCount())]
    except DeviceNotSupported:
        return []
    except Exception:  # noqa: BLE001 - HLMLError from the count or a handle
        return []
    mine = _process_device(lib, handles, os.environ if environ is None else environ)
    return [HabanaDevice(i, h, lib, "hpu" if i == mine else None) for i, h in enumerate(handles)]


def describe_all(pyhlml: Any = None, environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    return [d.describe() for d in devices(pyhlml, environ)]


def throttle_names(bits: int) -> list[str]:
    return [name for bit, name in THROTTLE_BITS.items() if bits & bit]
