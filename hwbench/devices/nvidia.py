"""NVIDIA GPUs through NVML. The only module that imports ``pynvml``.

Vendor units are converted here, once: mW -> W, mJ -> J, KB/s -> bytes/s, MiB -> bytes.
A metric the GPU does not support (NVML_ERROR_NOT_SUPPORTED) is remembered as absent
and never asked again; the other metrics keep working. Other NVML errors are counted as
collector errors, not raised, so one bad reading never costs a measurement.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Mapping

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
    """One physical GPU, by NVML index. ``torch_device`` is the name torch gives it in
    this process ("cuda:N", N counted after CUDA_VISIBLE_DEVICES masking and
    reordering), or None when CUDA_VISIBLE_DEVICES hides it. The NVML index is not a
    torch ordinal: use ``torch_device`` to name the GPU a case ran on.
    ``mig_uuid`` is set when the GPU is visible only through one of its MIG instances
    (then its readings, like its datasheet peak, are the whole GPU's, not the slice's)."""

    def __init__(self, index: int, nvml: Any, torch_device: str | None = None, mig_uuid: str | None = None):
        self.index = index
        self.nvml = nvml
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.torch_device = torch_device
        self.mig_uuid = mig_uuid
        self.unsupported: set[str] = set()
        self.errors = 0
        self.power_source: str | None = None  # "instant" or "average"
        self._gpm_prev = None
        self._gpm_ok: bool | None = None

    # -- static facts -----------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        n, h = self.nvml, self.handle
        info: dict[str, Any] = {
            "index": self.index,
            "name": _str(n.nvmlDeviceGetName(h)),
            "torch_device": self.torch_device,
        }
        if self.mig_uuid:
            info["mig_uuid"] = self.mig_uuid
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


# ---------------------------------------------------------------- CUDA_VISIBLE_DEVICES
def parse_visible_devices(value: str | None) -> list[int] | list[str] | None:
    """CUDA_VISIBLE_DEVICES as the CUDA runtime reads it, before looking at the GPUs.

    None when unset (every GPU visible). Otherwise the entries up to the first invalid
    one, in order: integer indices (in CUDA_DEVICE_ORDER) or UUIDs / UUID prefixes
    ("GPU-8f1c...", "MIG-..."). Rules (CUDA Programming Guide, "CUDA Environment
    Variables"; the details as torch.cuda._parse_visible_devices reproduces them):

    * an index is read like ``strtoul``: leading digits count ("1gpu" is 1), an entry
      without them ("", "-1", "x") is invalid and ends the list, so "" and "-1" mean
      no GPU and "0,2,-1,1" means 0 and 2;
    * the first entry decides the form: after a UUID, an index is invalid and vice versa;
    * a repeated entry makes no GPU visible.
    """
    if value is None:
        return None
    entries = [e.strip() for e in value.split(",")]
    if entries[0].startswith(("GPU-", "MIG-")):
        prefix = entries[0][:4]
        ids: list[str] = []
        for e in entries:
            if not e.startswith(prefix):
                break
            if e in ids:
                return []
            ids.append(e)
        return ids
    idx: list[int] = []
    for e in entries:
        digits = e[1:] if e.startswith("+") else e
        n = len(digits) - len(digits.lstrip("0123456789"))
        if n == 0:
            break
        i = int(digits[:n])
        if i in idx:
            return []
        idx.append(i)
    return idx


def _bus_key(bus_id: str) -> tuple[int, ...]:
    """"00000000:3B:00.0" -> (domain, bus, device, function), for PCI order."""
    dom, bus, rest = bus_id.split(":")
    dev, fn = rest.split(".")
    return (int(dom, 16), int(bus, 16), int(dev, 16), int(fn, 16))


def _cuda_order(n: Any, handles: list[Any]) -> list[int]:
    """NVML indices in CUDA's PCI_BUS_ID enumeration order. NVML's own order is not
    guaranteed to be CUDA's (nvmlDeviceGetIndex docs), so sort by PCI bus id; where a
    bus id cannot be read, NVML order is all there is."""
    try:
        keys = [_bus_key(_str(n.nvmlDeviceGetPciInfo(h).busId)) for h in handles]
    except (n.NVMLError, ValueError):
        return list(range(len(handles)))
    return sorted(range(len(handles)), key=lambda i: keys[i])


def _mig_uuids(n: Any, handle: Any) -> list[str]:
    """UUIDs of the MIG instances of one GPU; empty where MIG is off or unsupported."""
    try:
        count = n.nvmlDeviceGetMaxMigDeviceCount(handle)
    except (n.NVMLError, AttributeError):
        return []
    out = []
    for i in range(count):
        try:
            out.append(_str(n.nvmlDeviceGetUUID(n.nvmlDeviceGetMigDeviceHandleByIndex(handle, i))))
        except n.NVMLError:
            continue  # an empty MIG slot
    return out


def visible_gpus(n: Any, handles: list[Any], value: str | None) -> list[tuple[int, str | None]]:
    """Which physical GPUs torch sees under CUDA_VISIBLE_DEVICES=``value``, in torch
    ordinal order: (NVML index, MIG UUID or None) for cuda:0, cuda:1, ... Asks NVML
    only (no CUDA context). An index past the last GPU, a UUID prefix matching no GPU
    or more than one, ends the list, as in CUDA."""
    entries = parse_visible_devices(value)
    order = _cuda_order(n, handles)
    if entries is None:
        return [(i, None) for i in order]
    out: list[tuple[int, str | None]] = []
    if entries and isinstance(entries[0], int):
        for e in entries:
            if e >= len(order):
                break
            out.append((order[e], None))
        return out
    try:
        uuids = [_str(n.nvmlDeviceGetUUID(h)) for h in handles]
    except n.NVMLError:
        return []  # cannot tell which GPUs the UUIDs name: claim none rather than guess
    # (uuid, NVML index of the physical GPU, MIG uuid or None)
    known = [(u, i, None) for i, u in enumerate(uuids)]
    if any(e.startswith("MIG-") for e in entries):
        known += [(m, i, m) for i, h in enumerate(handles) for m in _mig_uuids(n, h)]
    for e in entries:
        if e.startswith("MIG-GPU-"):  # legacy MIG-GPU-<uuid>/<gi>/<ci>: the parent's uuid
            parent = e[len("MIG-"):].split("/")[0]
            hits = [(i, e) for u, i, _ in known if u.startswith("GPU-") and u.startswith(parent)]
        else:
            hits = [(i, m) for u, i, m in known if u.startswith(e)]
        if len(hits) != 1:  # unknown or ambiguous
            break
        if hits[0] in out:  # two prefixes of one GPU: a repeat, so none visible
            return []
        out.append(hits[0])
    return out


def gpus(nvml: Any = None, environ: Mapping[str, str] | None = None) -> list[NvidiaGPU]:
    """Every NVIDIA GPU NVML sees, in NVML order, each with its ``torch_device`` under
    the CUDA_VISIBLE_DEVICES of ``environ`` (default: this process's environment);
    empty list where NVML is unavailable."""
    try:
        n = load_nvml(nvml)
    except DeviceNotSupported:
        return []
    env = os.environ if environ is None else environ
    handles = [n.nvmlDeviceGetHandleByIndex(i) for i in range(n.nvmlDeviceGetCount())]
    names: dict[int, tuple[str, str | None]] = {}
    for k, (i, mig) in enumerate(visible_gpus(n, handles, env.get("CUDA_VISIBLE_DEVICES"))):
        names.setdefault(i, (f"cuda:{k}", mig))  # two MIG slices of one GPU: the first names it
    return [NvidiaGPU(i, n, *names.get(i, (None, None))) for i in range(len(handles))]


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


def describe_all(nvml: Any = None, environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Static facts of every GPU NVML sees (visible to torch or not), NVML order."""
    return [g.describe() for g in gpus(nvml, environ)]
