"""A fake pynvml for tests: the same names, error classes and units as the real module
(mW, mJ, KB/s, bytes), replaying deterministic counters. Each GPU draws a constant
power; its energy counter is that power integrated over time.monotonic(), so counter
energy and integrated power must agree, and energy over a window is power x window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace

NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_UNKNOWN = 999
NVML_FI_DEV_POWER_INSTANT = 186
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0
NVML_PCIE_UTIL_TX_BYTES = 0
NVML_PCIE_UTIL_RX_BYTES = 1
NVML_GPM_METRIC_DRAM_BW_UTIL = 10
NVML_GPM_METRIC_ANY_TENSOR_UTIL = 5
NVML_GPM_METRIC_SM_UTIL = 2
NVML_GPM_METRICS_GET_VERSION = 1


class NVMLError(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value


class NVMLError_NotSupported(NVMLError):
    def __init__(self):
        super().__init__(NVML_ERROR_NOT_SUPPORTED)


@dataclass
class FakeGPU:
    name: str = "NVIDIA H100 80GB HBM3"
    power_w: float = 300.0
    has_energy_counter: bool = True
    has_instant_power: bool = True
    not_supported: set = field(default_factory=set)  # metric names: "pcie", "temperature", ...
    throttle: int = 0
    capability: tuple = (9, 0)
    gpm: bool = False
    fail_calls: int = 0  # the next N readings of utilization raise an unknown error
    uuid: str | None = None  # default: "GPU-8f1c000<i>-2b3c-4d5e-8f90-00000000000<i>" for NVML index i
    pci_bus_id: str | None = None  # default: "00000000:0<i+1>:00.0" (NVML order = PCI order)
    memory_total_bytes: int = 80 * 2**30
    mig_uuids: tuple = ()  # MIG instances ("MIG-..."), when MIG mode is on


class FakeNVML:
    """Build with a list of FakeGPU; use the instance as the pynvml module."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported

    def __init__(self, gpus):
        self.gpus = list(gpus)
        self.t0 = time.monotonic()
        self.calls = 0
        for k, v in globals().items():
            if k.startswith("NVML_"):
                setattr(self, k, v)

    def _g(self, h) -> FakeGPU:
        self.calls += 1
        return self.gpus[h]

    def _check(self, g, metric):
        if metric in g.not_supported:
            raise NVMLError_NotSupported()

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        if not 0 <= i < len(self.gpus):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return i

    def nvmlDeviceGetName(self, h):
        return self._g(h).name

    def nvmlDeviceGetUUID(self, h):
        if isinstance(h, tuple):  # a MIG device handle: (parent, slot)
            return self._g(h[0]).mig_uuids[h[1]]
        return self._g(h).uuid or f"GPU-{0x8F1C0000 + h:08x}-2b3c-4d5e-8f90-{h:012x}"

    def nvmlDeviceGetMaxMigDeviceCount(self, h):
        return 7 if self._g(h).mig_uuids else 0  # A100 / H100: up to 7 slices

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, i):
        if i >= len(self._g(h).mig_uuids):
            raise NVMLError(NVML_ERROR_NOT_FOUND)  # an empty slot
        return (h, i)

    def nvmlDeviceGetMemoryInfo(self, h):
        total = self._g(h).memory_total_bytes
        return SimpleNamespace(total=total, used=2 * 2**30, free=total - 2 * 2**30)

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return self._g(h).capability

    def nvmlDeviceGetPowerManagementLimit(self, h):
        return 700_000

    def nvmlDeviceGetPciInfo(self, h):
        return SimpleNamespace(busId=self._g(h).pci_bus_id or f"00000000:{h + 1:02X}:00.0")

    def nvmlSystemGetDriverVersion(self):
        return "555.42"

    def nvmlSystemGetCudaDriverVersion(self):
        return 12050

    def nvmlDeviceGetUtilizationRates(self, h):
        g = self._g(h)
        if g.fail_calls:
            g.fail_calls -= 1
            raise NVMLError(NVML_ERROR_UNKNOWN)
        return SimpleNamespace(gpu=87, memory=41)

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        g = self._g(h)
        if not g.has_energy_counter:
            raise NVMLError_NotSupported()
        return int(g.power_w * (time.monotonic() - self.t0) * 1e3)  # mJ

    def nvmlDeviceGetFieldValues(self, h, ids):
        g = self._g(h)
        ret = NVML_SUCCESS if g.has_instant_power else NVML_ERROR_NOT_SUPPORTED
        return [SimpleNamespace(nvmlReturn=ret, value=SimpleNamespace(uiVal=int(g.power_w * 1e3)))]

    def nvmlDeviceGetPowerUsage(self, h):
        return int(self._g(h).power_w * 1e3)  # mW

    def nvmlDeviceGetClockInfo(self, h, c):
        return 1980 if c == NVML_CLOCK_SM else 2619

    def nvmlDeviceGetTemperature(self, h, s):
        g = self._g(h)
        self._check(g, "temperature")
        return 55

    def nvmlDeviceGetPcieThroughput(self, h, c):
        g = self._g(h)
        self._check(g, "pcie")
        return 1000  # KB/s

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return self._g(h).throttle

    def nvmlGpmQueryDeviceSupport(self, h):
        return SimpleNamespace(isSupportedDevice=int(self._g(h).gpm))

    def nvmlGpmSampleAlloc(self):
        return SimpleNamespace(t=None)

    def nvmlGpmSampleGet(self, h, s):
        s.t = time.monotonic()
        return s

    def nvmlGpmSampleFree(self, s):
        pass

    def c_nvmlGpmMetricsGet_t(self):
        return SimpleNamespace(version=0, numMetrics=0, sample1=None, sample2=None,
                               metrics=[SimpleNamespace(metricId=0, nvmlReturn=NVML_SUCCESS, value=0.0) for _ in range(8)])

    def nvmlGpmMetricsGet(self, mg):
        values = {NVML_GPM_METRIC_DRAM_BW_UTIL: 62.5, NVML_GPM_METRIC_ANY_TENSOR_UTIL: 48.0, NVML_GPM_METRIC_SM_UTIL: 90.0}
        for m in mg.metrics[: mg.numMetrics]:
            m.value = values[m.metricId]
        return mg
