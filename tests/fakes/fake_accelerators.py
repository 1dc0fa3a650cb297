"""Fakes of the torch-side modules of the device kinds this project has no hardware
for, with the names, signatures and units of the real ones:

* :class:`FakeTorchGpu`: ``torch.cuda`` as a ROCm build offers it, ``torch.xpu`` and
  ``habana_frameworks.torch.hpu`` (they share torch.cuda's API: ``is_available``,
  ``device_count``, ``get_device_name``, ``get_device_properties(i).total_memory``,
  ``set_device``, ``set_per_process_memory_fraction``, ``synchronize``,
  ``Event(enable_timing=True)`` with ``record()`` / ``elapsed_time(end)`` in ms,
  ``reset_peak_memory_stats``, ``max_memory_allocated`` / ``max_memory_reserved`` in
  bytes, ``empty_cache``);
* :class:`FakeMps`: ``torch.mps`` (``synchronize``, ``empty_cache``,
  ``current_allocated_memory``, ``recommended_max_memory``,
  ``set_per_process_memory_fraction``; no peak statistics, no device index);
* :class:`FakeTorchXla`: the torch_xla package (``sync()``; ``core.xla_model`` with
  ``wait_device_ops()`` and ``get_memory_info(device)`` -> ``bytes_used``,
  ``bytes_limit``, ``peak_bytes_used``; ``runtime`` with
  ``global_runtime_device_count()`` and ``device_type()``).

Their "device" work runs on the CPU (tensors stay on the CPU: the test's kind maps its
device names to cpu), so each fake records what it was asked: synchronisations, events
recorded, peaks reset. Event times are host times taken at ``record()``, which on the
CPU's synchronous kernels are the times the work between two events took. Memory peaks
are the fake's own deterministic figure (``peak_bytes``), so a test can check that the
worker records exactly what the module reports.
"""

from __future__ import annotations

import time
from types import SimpleNamespace


class FakeEvent:
    def __init__(self, owner, enable_timing: bool = False):
        self.owner = owner
        self.t: float | None = None

    def record(self, stream=None):
        self.owner.events += 1
        self.t = time.perf_counter()

    def elapsed_time(self, end: "FakeEvent") -> float:
        if self.t is None or end.t is None:
            raise RuntimeError("both events must be recorded before calling elapsed_time()")
        return (end.t - self.t) * 1e3  # ms, as torch's events


class FakeTorchGpu:
    def __init__(self, name: str = "Fake GPU", total_memory: int = 64 * 2**30, peak_bytes: int = 123_456_789,
                 count: int = 1):
        self.name = name
        self.total_memory = total_memory
        self.peak_bytes = peak_bytes
        self.count = count
        self.syncs = self.events = self.resets = self.empties = 0
        self.fraction: float | None = None
        self.current: object = None
        owner = self

        class Event(FakeEvent):
            def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False):
                super().__init__(owner, enable_timing)

        self.Event = Event

    def is_available(self) -> bool:
        return self.count > 0

    def device_count(self) -> int:
        return self.count

    def get_device_name(self, device=None) -> str:
        return self.name

    def get_device_properties(self, device):
        return SimpleNamespace(name=self.name, total_memory=self.total_memory)

    def set_device(self, device) -> None:
        self.current = device

    def set_per_process_memory_fraction(self, fraction: float, device=None) -> None:
        self.fraction = fraction

    def synchronize(self, device=None) -> None:
        self.syncs += 1

    def reset_peak_memory_stats(self, device=None) -> None:
        self.resets += 1

    def max_memory_allocated(self, device=None) -> int:
        return self.peak_bytes

    def max_memory_reserved(self, device=None) -> int:
        return 2 * self.peak_bytes

    def empty_cache(self) -> None:
        self.empties += 1


class FakeMps:
    def __init__(self):
        self.syncs = self.empties = 0
        self.fraction: float | None = None

    def synchronize(self) -> None:
        self.syncs += 1

    def empty_cache(self) -> None:
        self.empties += 1

    def current_allocated_memory(self) -> int:
        return 1_000_000

    def recommended_max_memory(self) -> int:
        return 16 * 2**30

    def set_per_process_memory_fraction(self, fraction: float) -> None:
        self.fraction = fraction


class FakeTorchXla:
    def __init__(self, peak_bytes: int = 98_765_432, devices: int = 4, kind: str = "TPU"):
        self.syncs = self.waits = 0
        self.peak_bytes = peak_bytes
        owner = self
        self.core = SimpleNamespace(xla_model=SimpleNamespace(
            wait_device_ops=lambda devices=[]: owner._wait(),
            get_memory_info=lambda device=None: {"bytes_used": owner.peak_bytes // 2, "bytes_limit": 16 * 2**30,
                                                 "peak_bytes_used": owner.peak_bytes}))
        self.runtime = SimpleNamespace(global_runtime_device_count=lambda: devices, device_type=lambda: kind)
        self.__version__ = "2.8.0+fake"

    def _wait(self) -> None:
        self.waits += 1

    def sync(self, wait: bool = False) -> None:
        self.syncs += 1
