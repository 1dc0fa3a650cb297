"""A fake ``amdsmi`` (AMD SMI's Python library, py-interface/amdsmi_interface.py) for
tests: the same function names, enums, exception classes, dict keys and units as the
real module -- power in W, the energy accumulator in ticks of ``counter_resolution``
µJ, VRAM in MB, clocks in MHz, temperatures in °C, "N/A" for a field the GPU does not
report -- replaying deterministic counters. Each GPU draws a constant power; its energy
accumulator is that power integrated over time.monotonic(), so counter energy and
integrated power agree, and energy over a window is power x window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import IntEnum

AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_UNKNOWN_ERROR = 0xFFFFFFFF


class AmdSmiException(Exception):
    """Base smi exception class (as amdsmi_exception.py)."""


class AmdSmiLibraryException(AmdSmiException):
    def __init__(self, err_code):
        err_code = abs(err_code)
        super().__init__(err_code)
        self.err_code = err_code

    def get_error_code(self):
        return self.err_code


class AmdSmiInitFlags(IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_CPUS = 1 << 0
    INIT_AMD_GPUS = 1 << 1


class AmdSmiClkType(IntEnum):
    SYS = 0
    GFX = 0
    DF = 1
    DCEF = 2
    SOC = 3
    MEM = 4


class AmdSmiTemperatureType(IntEnum):
    EDGE = 0
    HOTSPOT = 1
    JUNCTION = 1
    VRAM = 2


class AmdSmiTemperatureMetric(IntEnum):
    CURRENT = 0
    MAX = 1


@dataclass
class FakeAmdGPU:
    market_name: str = "AMD Instinct MI300X"
    gfx: str = "gfx942"
    power_w: float = 550.0
    has_energy_counter: bool = True
    has_current_power: bool = True  # MI300: current_socket_power; older parts: average only (0 / "N/A")
    counter_resolution_uj: float = 15.3
    vram_total_mb: int = 196592
    vram_used_mb: int = 1024
    not_supported: set = field(default_factory=set)  # "activity", "temp_edge", "violation", ...
    ppt_throttle: bool = False
    uuid: str = "2aff74a1-0000-1000-80f4-4c8b8f4e0000"
    bdf: str = "0000:0c:00.0"
    t0: float = field(default_factory=time.monotonic)
    fail_calls: int = 0  # the next N activity readings raise an unknown error


class _Handle:
    """Stands in for amdsmi_wrapper.amdsmi_processor_handle (a ctypes pointer)."""

    def __init__(self, gpu: FakeAmdGPU):
        self.gpu = gpu


class FakeAmdSmi:
    """An amdsmi module replacement: pass it where hwbench takes ``libs["amdsmi"]``."""

    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException
    AmdSmiInitFlags = AmdSmiInitFlags
    AmdSmiClkType = AmdSmiClkType
    AmdSmiTemperatureType = AmdSmiTemperatureType
    AmdSmiTemperatureMetric = AmdSmiTemperatureMetric

    def __init__(self, gpus: list[FakeAmdGPU], init_error: bool = False):
        self.gpus = gpus
        self.init_error = init_error
        self.handles = [_Handle(g) for g in gpus]
        self.calls = 0

    def amdsmi_init(self, flags=AmdSmiInitFlags.INIT_AMD_GPUS):
        if self.init_error:
            raise AmdSmiLibraryException(AMDSMI_STATUS_UNKNOWN_ERROR)

    def amdsmi_shut_down(self):
        pass

    def amdsmi_get_processor_handles(self):
        return list(self.handles)

    @staticmethod
    def _need(h, name):
        if name in h.gpu.not_supported:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)

    def amdsmi_get_gpu_asic_info(self, h):
        return {"market_name": h.gpu.market_name, "vendor_id": "0x1002", "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]",
                "subvendor_id": "0x1002", "device_id": "0x74a1", "rev_id": "0x00", "asic_serial": "0x0000000000000000",
                "oam_id": 0, "num_compute_units": 304, "target_graphics_version": h.gpu.gfx}

    def amdsmi_get_gpu_device_uuid(self, h):
        return h.gpu.uuid

    def amdsmi_get_gpu_device_bdf(self, h):
        return h.gpu.bdf

    def amdsmi_get_gpu_driver_info(self, h):
        return {"driver_name": "amdgpu", "driver_version": "6.8.5", "driver_date": "2015/01/01 00:00"}

    def amdsmi_get_power_info(self, h):
        self._need(h, "power")
        g = h.gpu
        return {"current_socket_power": int(g.power_w) if g.has_current_power else "N/A",
                "average_socket_power": int(g.power_w), "gfx_voltage": "N/A", "soc_voltage": "N/A",
                "mem_voltage": "N/A", "power_limit": 750}

    def amdsmi_get_energy_count(self, h):
        g = h.gpu
        if not g.has_energy_counter:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        uj = g.power_w * (time.monotonic() - g.t0) * 1e6
        ticks = int(uj / g.counter_resolution_uj)
        return {"power": ticks, "energy_accumulator": ticks, "counter_resolution": g.counter_resolution_uj,
                "timestamp": int(time.monotonic() * 1e9)}

    def amdsmi_get_gpu_activity(self, h):
        self._need(h, "activity")
        if h.gpu.fail_calls:
            h.gpu.fail_calls -= 1
            raise AmdSmiLibraryException(AMDSMI_STATUS_UNKNOWN_ERROR)
        self.calls += 1
        return {"gfx_activity": 97, "umc_activity": 41, "mm_activity": "N/A"}

    def amdsmi_get_gpu_vram_usage(self, h):
        return {"vram_total": h.gpu.vram_total_mb, "vram_used": h.gpu.vram_used_mb}

    def amdsmi_get_clock_info(self, h, clock_type):
        clk = {AmdSmiClkType.GFX: 2100, AmdSmiClkType.MEM: 1300}[clock_type]
        return {"clk": clk, "min_clk": 500, "max_clk": clk, "clk_locked": False, "clk_deep_sleep": False}

    def amdsmi_get_temp_metric(self, h, sensor_type, metric):
        name = {AmdSmiTemperatureType.EDGE: "temp_edge", AmdSmiTemperatureType.HOTSPOT: "temp_hotspot"}.get(sensor_type)
        self._need(h, name)
        return 62 if sensor_type == AmdSmiTemperatureType.HOTSPOT else 48

    def amdsmi_get_violation_status(self, h):
        self._need(h, "violation")
        return {"active_prochot_thrm": False, "active_ppt_pwr": h.gpu.ppt_throttle, "active_socket_thrm": False,
                "active_vr_thrm": False, "active_hbm_thrm": "N/A"}
