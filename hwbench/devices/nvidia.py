"""NVIDIA GPUs through NVML. The only module that imports ``pynvml``.

Vendor units are converted here, once: mW -> W, mJ -> J, KB/s -> bytes/s, MiB -> bytes.
A metric the GPU does not support (NVML_ERROR_NOT_SUPPORTED) is remembered as absent
and never asked again; the other metrics keep working. Other NVML errors are counted as
collector errors, not raised, so one bad reading never costs a measurement.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import DeviceNotSupported

# Clock-event (throttle) reason bits that mean the GPU slowed itself down.
THROTTLE_BITS = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal",
    0x40: "hw_thermal",
    0x80: "hw_power_brake",
}

_init_lock = threading.Lock()


def load_nvml(nvml: Any = None) -> Any:
    """Return an initialised pynvml module (or the fake passed in). Raises
    DeviceNotSupported where NVML is missing or no driver is loaded."""
    if nvml is None:
        try:
            import pynvml as nvml  # noqa: PLC0415 - the one import of pynvml
        except ImportError as e:  # pragma: no cover - nvidia-ml-py is a dependency
            raise DeviceNotSupported("pynvml is not installed") from e
    with _init_lock:
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as e:
            raise DeviceNotSupported(f"NVML unavailable: {e}") from e
    return nvml


def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class NvidiaGPU:
    """One GPU, by NVML index (equal to the CUDA index under CUDA_DEVICE_ORDER=PCI_BUS_ID)."""

    def __init__(self, index: int, nvml: Any):
        self.index = index
        self.nvml = nvml
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.unsupported: set[str] = set()
        self.errors = 0
        self.power_source: str | None = None  # "instant" or "average"
        self._gpm_prev = None
        self._gpm_ok: bool | None = None

    # -- static facts -----------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        n, h = self.nvml, self.handle
        info: dict[str, Any] = {"index": self.index, "name": _str(n.nvmlDeviceGetName(h))}
        for key, fn in (
            ("uuid", lambda: _str(n.nvmlDeviceGetUUID(h))),
            ("memory_total_bytes", lambda: int(n.nvmlDeviceGetMemoryInfo(h).total)),
            ("compute_capability", lambda: list(n.nvmlDeviceGetCudaComputeCapability(h))),
            ("power_limit_w", lambda: n.nvmlDeviceGetPowerManagementLimit(h) / 1e3),
            ("pci_bus_id", lambda: _str(n.nvmlDeviceGetPciInfo(h).busId)),
        ):
            try:
                info[key] = fn()
            except n.NVMLError:
                pass
        return info

    def has_energy_counter(self) -> bool:
        return self.energy_j() is not None

    # -- readings ---------------------------------------------------------------------
    def _get(self, name: str, fn):
        if name in self.unsupported:
            return None
        try:
            return fn()
        except self.nvml.NVMLError as e:
            if getattr(e, "value", None) == self.nvml.NVML_ERROR_NOT_SUPPORTED:
                self.unsupported.add(name)
            else:
                self.errors += 1
            return None

    def energy_j(self) -> float | None:
        """Total energy since the driver loaded, J (Volta and later), or None."""
        mj = self._get("energy", lambda: self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        return None if mj is None else mj / 1e3

    def power_w(self) -> float | None:
        """Instantaneous power where the GPU offers the field, else NVML's averaged
        reading; which one is kept in ``power_source``."""
        n, h = self.nvml, self.handle

        def instant():
            v = n.nvmlDeviceGetFieldValues(h, [n.NVML_FI_DEV_POWER_INSTANT])[0]
            if v.nvmlReturn != n.NVML_SUCCESS:
                raise n.NVMLError(v.nvmlReturn)
            return v.value.uiVal / 1e3

        w = self._get("power_instant", instant)
        if w is not None:
            self.power_source = "instant"
            return w
        w = self._get("power_average", lambda: n.nvmlDeviceGetPowerUsage(h) / 1e3)
        if w is not None:
            self.power_source = "average"
        return w

    def sample(self) -> dict[str, float]:
        """One reading of every supported metric. Keys carry units."""
        n, h, g = self.nvml, self.handle, self._get
        out: dict[str, float] = {}
        util = g("utilization", lambda: n.nvmlDeviceGetUtilizationRates(h))
        if util is not None:
            out["gpu_util_pct"] = float(util.gpu)
            out["mem_busy_pct"] = float(util.memory)  # memory-controller busy time, not bandwidth
        mem = g("memory", lambda: n.nvmlDeviceGetMemoryInfo(h))
        if mem is not None:
            out["memory_used_bytes"] = float(mem.used)
        p = self.power_w()
        if p is not None:
            out["power_w"] = p
        e = self.energy_j()
        if e is not None:
            out["energy_counter_j"] = e
        for key, clock in (("sm_clock_mhz", n.NVML_CLOCK_SM), ("mem_clock_mhz", n.NVML_CLOCK_MEM)):
            v = g(key, lambda c=clock: n.nvmlDeviceGetClockInfo(h, c))
            if v is not None:
                out[key] = float(v)
        t = g("temperature", lambda: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU))
        if t is not None:
            out["temperature_c"] = float(t)
        for key, ctr in (("pcie_rx_bytes_per_s", n.NVML_PCIE_UTIL_RX_BYTES), ("pcie_tx_bytes_per_s", n.NVML_PCIE_UTIL_TX_BYTES)):
            v = g(key, lambda c=ctr: n.nvmlDeviceGetPcieThroughput(h, c))
            if v is not None:
                out[key] = v * 1024.0  # KB/s
        r = g("throttle", lambda: n.nvmlDeviceGetCurrentClocksEventReasons(h))
        if r is not None:
            out["throttle_reasons"] = float(r)
        out.update(self._gpm())
        return out

    def _gpm(self) -> dict[str, float]:
        """DRAM bandwidth and tensor-core activity from GPM (Hopper and later): each
        reading compares the previous GPM sample with a new one."""
        n = self.nvml
        if self._gpm_ok is None:
            sup = self._get("gpm", lambda: n.nvmlGpmQueryDeviceSupport(self.handle))
            self._gpm_ok = bool(sup is not None and sup.isSupportedDevice)
        if not self._gpm_ok:
            return {}
        cur = self._get("gpm", lambda: n.nvmlGpmSampleGet(self.handle, n.nvmlGpmSampleAlloc()))
        prev, self._gpm_prev = self._gpm_prev, cur
        if prev is None or cur is None:
            return {}
        metrics = (
            ("dram_bw_util_pct", n.NVML_GPM_METRIC_DRAM_BW_UTIL),
            ("tensor_active_pct", n.NVML_GPM_METRIC_ANY_TENSOR_UTIL),
            ("sm_active_pct", n.NVML_GPM_METRIC_SM_UTIL),
        )
        mg = n.c_nvmlGpmMetricsGet_t()
        mg.version = n.NVML_GPM_METRICS_GET_VERSION
        mg.numMetrics = len(metrics)
        mg.sample1, mg.sample2 = prev, cur
        for i, (_, mid) in enumerate(metrics):
            mg.metrics[i].metricId = mid
        if self._get("gpm", lambda: n.nvmlGpmMetricsGet(mg)) is None:
            return {}
        try:
            n.nvmlGpmSampleFree(prev)
        except n.NVMLError:
            pass
        return {k: float(mg.metrics[i].value) for i, (k, _) in enumerate(metrics) if mg.metrics[i].nvmlReturn == n.NVML_SUCCESS}


def gpus(nvml: Any = None) -> list[NvidiaGPU]:
    """Every NVIDIA GPU NVML sees; empty list where NVML is unavailable."""
    try:
        n = load_nvml(nvml)
        return [NvidiaGPU(i, n) for i in range(n.nvmlDeviceGetCount())]
    except DeviceNotSupported:
        return []


def driver_info(nvml: Any = None) -> dict[str, str]:
    try:
        n = load_nvml(nvml)
    except DeviceNotSupported:
        return {}
    out = {"driver_version": _str(n.nvmlSystemGetDriverVersion())}
    try:
        v = n.nvmlSystemGetCudaDriverVersion()
        out["cuda_driver_version"] = f"{v // 1000}.{(v % 1000) // 10}"
    except n.NVMLError:
        pass
    return out


def describe_all(nvml: Any = None) -> list[dict[str, Any]]:
    return [g.describe() for g in gpus(nvml)]
