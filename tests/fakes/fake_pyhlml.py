"""A fake ``pyhlml`` (Habana's Python wrapper of libhlml: pyhlml/main.py, hlml_types.py,
hlml_error.py) for tests: the same function names, argument order, return shapes and
units as the real module -- power in mW, total energy in mJ since driver load, memory
in bytes (a struct with ``free`` / ``total`` / ``used``), clocks in MHz, temperatures in
°C, names, UUIDs and PCI bus ids as bytes -- replaying deterministic counters. Each
device draws a constant power; its energy counter is that power integrated over
time.monotonic(), so counter energy and integrated power agree.

Two generations of the wrapper, as released: ``api=2`` (current) raises ``HLMLError``
(``.value`` the HLML_RETURN code) from a failed call, returns the utilisation struct
and has hlmlDeviceGetModuleID; ``api=1`` (the archived HabanaAI/pyhlml 1.x) builds the
HLMLError without raising it and returns the zeroed output (0), returns the utilisation
as an int, and has no hlmlDeviceGetModuleID.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

HLML_SUCCESS = 0
HLML_ERROR_UNINITIALIZED = 1
HLML_ERROR_NOT_SUPPORTED = 3
HLML_ERROR_DRIVER_NOT_LOADED = 9
HLML_ERROR_UNKNOWN = 14
HLML_CLOCKS_THROTTLE_REASON_POWER = 1 << 0
HLML_CLOCKS_THROTTLE_REASON_THERMAL = 1 << 1


class HLMLError(Exception):
    """As hlml_error.HLMLError: built from the HLML_RETURN code, kept in ``value``."""

    def __init__(self, value):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return f"HLML Error with code {self.value}"


class c_hlml_memory:  # noqa: N801 - hlml_types' name
    def __init__(self, free=0, total=0, used=0):
        self.free, self.total, self.used = free, total, used


class c_hlml_utilization:  # noqa: N801
    def __init__(self, aip=0):
        self.aip = aip


class c_hlml_pci_info:  # noqa: N801
    def __init__(self, bus=0, bus_id=b"", device=0, domain=0, pci_device_id=0):
        self.bus, self.bus_id, self.device, self.domain, self.pci_device_id = bus, bus_id, device, domain, pci_device_id


@dataclass
class FakeGaudi:
    name: bytes = b"HL-325L"  # Gaudi 3 OAM, as hl-smi names it
    power_w: float = 600.0
    has_energy_counter: bool = True
    memory_total_bytes: int = 128 * 2**30
    memory_used_bytes: int = 2 * 2**30
    util_pct: int = 93
    soc_clock_mhz: int = 1600
    temp_aip_c: int = 55
    throttle_bits: int = 0
    module_id: int = 0
    uuid: bytes = b"01P0-HL3080A0-15-TNQ012-04-07-11"
    bus_id: bytes = b"0000:19:00.0"
    not_supported: set = field(default_factory=set)  # "power", "temperature", "clock", ...
    t0: float = field(default_factory=time.monotonic)
    fail_calls: int = 0  # the next N utilisation readings fail with HLML_ERROR_UNKNOWN


class FakePyhlml:
    """A pyhlml module replacement: pass it where hwbench takes ``libs["pyhlml"]``."""

    HLMLError = HLMLError

    def __init__(self, devices: list[FakeGaudi], init_error: bool = False, api: int = 2):
        self.devices = devices
        self.init_error = init_error
        self.api = api
        self.initialised = False
        self.calls = 0
        if api >= 2:
            self.hlmlDeviceGetModuleID = self._module_id

    def _fail(self, code, zero=0):
        """A failed call: api 2 raises, api 1 returns the zeroed output."""
        if self.api >= 2:
            raise HLMLError(code)
        HLMLError(code)  # built, not raised (pyhlml 1.x check_return)
        return zero

    def _dev(self, h) -> FakeGaudi:
        return self.devices[h]

    # -- library ----------------------------------------------------------------------
    def hlmlInit(self):
        if self.init_error:
            raise HLMLError(HLML_ERROR_DRIVER_NOT_LOADED)
        self.initialised = True

    def hlmlShutdown(self):
        self.initialised = False

    def hlmlDeviceGetCount(self):
        if not self.initialised:
            return self._fail(HLML_ERROR_UNINITIALIZED)
        return len(self.devices)

    def hlmlDeviceGetHandleByIndex(self, index):
        return index  # stands in for the ctypes c_void_p handle

    # -- facts ------------------------------------------------------------------------
    def hlmlDeviceGetName(self, h):
        return self._dev(h).name

    def hlmlDeviceGetUUID(self, h):
        return self._dev(h).uuid

    def hlmlDeviceGetPCIInfo(self, h):
        return c_hlml_pci_info(bus=0x19, bus_id=self._dev(h).bus_id, device=0, domain=0, pci_device_id=0x1060)

    def _module_id(self, h):
        return self._dev(h).module_id

    # -- readings ---------------------------------------------------------------------
    def _need(self, d, name):
        return name not in d.not_supported

    def hlmlDeviceGetPowerUsage(self, h):
        d = self._dev(h)
        if not self._need(d, "power"):
            return self._fail(HLML_ERROR_NOT_SUPPORTED)
        return int(d.power_w * 1e3)  # mW

    def hlmlDeviceGetTotalEnergyConsumption(self, h):
        d = self._dev(h)
        if not d.has_energy_counter:
            return self._fail(HLML_ERROR_NOT_SUPPORTED)
        return int(d.power_w * (time.monotonic() - d.t0) * 1e3) + 5_000_000  # mJ since driver load

    def hlmlDeviceGetUtilizationRates(self, h):
        d = self._dev(h)
        if d.fail_calls:
            d.fail_calls -= 1
            return self._fail(HLML_ERROR_UNKNOWN, c_hlml_utilization() if self.api >= 2 else 0)
        self.calls += 1
        return c_hlml_utilization(d.util_pct) if self.api >= 2 else d.util_pct

    def hlmlDeviceGetMemoryInfo(self, h):
        d = self._dev(h)
        return c_hlml_memory(free=d.memory_total_bytes - d.memory_used_bytes, total=d.memory_total_bytes,
                             used=d.memory_used_bytes)

    def hlmlDeviceGetClockInfo(self, h, clock_type=0):
        d = self._dev(h)
        if not self._need(d, "clock") or clock_type != 0:  # only the SOC clock on Gaudi
            return self._fail(HLML_ERROR_NOT_SUPPORTED)
        return d.soc_clock_mhz

    def hlmlDeviceGetTemperature(self, h, sensor_type):
        d = self._dev(h)
        if not self._need(d, "temperature"):
            return self._fail(HLML_ERROR_NOT_SUPPORTED)
        return d.temp_aip_c if sensor_type == 0 else d.temp_aip_c - 15  # 0: AIP, 1: board

    def hlmlDeviceGetCurrentClocksThrottleReasons(self, h):
        return self._dev(h).throttle_bits
