"""The accelerator layer: one :class:`Accelerator` per device kind, in :data:`KINDS`.

Every other module asks the layer instead of branching on a device kind: a worker,
a rank, the probe and the collectives benchmark take the kind of the device they run
on (:func:`of`, from the name the runner resolved, e.g. ``"rocm:0"``) and call its
``synchronize``, ``event``, ``set_device``, ``reset_peak_memory``, ``memory_peaks``,
``empty_cache``, ``init_process_group``; planning asks ``discover`` what is present and
why a kind is not; precisions ask ``capability_reason`` in the kind's own terms (CUDA
compute capability, ROCm gfx arch, ...); the environment asks ``environment``.

A kind is named as users type it and results show it (``rocm:0``); ``torch_type`` is
what torch calls it (ROCm builds of torch name HIP devices ``cuda``). The base class
describes the host CPU's behaviour (no device synchronisation, wall-clock timing, no
device memory); a kind overrides what differs. Adding a kind: one module that
registers its object (``KINDS.register(MyKind())``) and its name on the import line
of :mod:`hwbench.devices` (docs/accelerators.md).

torch is imported lazily (spec and planning import this layer without torch).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..registry import Registry

if TYPE_CHECKING:  # annotations only
    import torch

    from .info import DeviceInfo


@dataclass(frozen=True)
class Discovery:
    """What a kind found on this machine: its devices, best first, or why there are
    none (``reason``: one line a user can act on)."""

    devices: tuple[Any, ...] = ()  # DeviceInfo
    reason: str | None = None

    @property
    def present(self) -> bool:
        return bool(self.devices)


@dataclass(frozen=True)
class Capability:
    """A feature a precision, backend or variant needs from a device, named once
    (``"bf16"``, ``"tf32"``, ``"fp8"``, ``"int8_mm"``, ``"int4_mm"``, ``"sparse24"``);
    each kind answers for it in its own terms (:meth:`Accelerator.capability_reason`)."""

    name: str
    what: str  # in words, e.g. "bf16 tensor-core math"


class Accelerator:
    """One device kind. Defaults are the host CPU's; a kind overrides what differs.

    Declared facts (class attributes):

    * ``name``: the kind as users type it and results name it ("cuda", "rocm").
    * ``torch_type``: torch's device type ("cuda" for ROCm too); ``label``: its name in
      messages ("ROCm").
    * ``vendor``: who makes it, for the environment and ``hwbench list devices``.
    * ``indexed``: devices are ``<name>:<N>`` (False: one device named ``<name>``).
    * ``dist_backend``: the torch.distributed backend its ranks use.
    * ``comm_kernel``: the substring of the profiler's device-kernel names that are the
      backend's collectives (None: time the backend's CPU-side operations instead).
    * ``profiler_activity``: the ``torch.profiler.ProfilerActivity`` of its kernels.
    * ``parallel``: whether hwbench runs parallel cases (torchrun ranks) on it;
      ``bf16_compress``: whether DDP's bf16_compress_hook works with its backend.
    * ``samplers``: the sampler kinds (``collectors``) that read its devices;
      ``energy_sources``: the energy sources they give, best first.
    * ``timer``: "events" (device events around each call, read after one
      synchronisation per block) or "wall" (synchronise, then ``perf_counter``).
    * ``caps_address_space``: whether a memory cap may be an RLIMIT_AS on the worker
      (False where the runtime reserves far more address space than memory).
    * ``peak_source``: where its datasheet peaks come from (hwbench.peaks).
    * ``module_name``: the Python module that must import for the kind to exist
      (None: torch itself).
    * ``streams``: whether its torch module offers streams (``Stream``, ``stream()``),
      so that concurrent serving instances each queue work on their own (:meth:`lane`).
    """

    name: str = "cpu"
    label: str = "CPU"
    torch_type: str = "cpu"
    vendor: str = ""
    indexed: bool = False
    dist_backend: str = "gloo"
    comm_kernel: str | None = None
    profiler_activity: str | None = None  # torch.profiler.ProfilerActivity name of its kernels
    parallel: bool = True  # hwbench's parallel cases (torchrun ranks) run on this kind
    probe: bool = False  # hwbench probe's device path (GEMMs, bandwidths, copies) runs on it
    bf16_compress: bool = False  # DDP's bf16_compress_hook works with its backend
    samplers: tuple[str, ...] = ()
    energy_sources: tuple[str, ...] = ()
    timer: str = "wall"
    caps_address_space: bool = True
    peak_source: str = "hwbench/data/peaks.csv, by device name"
    module_name: str | None = None
    streams: bool = False  # its torch module has streams (Stream, stream()): serving instances get one each
    # capability name -> None where every device of the kind has it, or the reason
    # every device of the kind lacks it; kinds with per-device answers override
    # capability_reason instead.
    capabilities: dict[str, str | None] = {}

    # -- injection seam: tests replace the torch-side module of a kind with a fake
    def __init__(self, module: Any = None):
        self._module = module

    def module(self) -> Any:
        """The kind's torch-side module (``torch.cuda``, ``torch.xpu``, ``torch_xla``'s
        ``xm``...), or None where it is absent. Tests inject a fake through
        :func:`use_module`."""
        if self._module is not None:
            return self._module
        import torch

        return getattr(torch, self.torch_type, None)

    # -- discovery and names -----------------------------------------------------------
    def discover(self) -> Discovery:
        """The devices of this kind on this machine, best first, or why none."""
        from .info import DeviceInfo
        from .host import cpu_model

        return Discovery((DeviceInfo("cpu", "cpu", cpu_model()),))

    def resolve(self, name: str) -> str:
        """A suite's device name of this kind -> the device name results use: "rocm"
        -> "rocm:0" for indexed kinds; unindexed kinds keep their name."""
        return f"{name}:0" if self.indexed and ":" not in name else name

    def torch_device(self, name: str) -> "torch.device":
        """The torch device behind a device name of this kind ("rocm:1" -> cuda:1)."""
        import torch

        index = name.split(":", 1)[1] if ":" in name else None
        return torch.device(self.torch_type if index is None else f"{self.torch_type}:{index}")

    def result_name(self, device: "torch.device") -> str:
        """The inverse of :meth:`torch_device`: the name results give a torch device."""
        return self.name if device.index is None or not self.indexed else f"{self.name}:{device.index}"

    def claims(self, torch_type: str) -> bool:
        """Whether a torch device of type ``torch_type`` in this process is one of this
        kind's (ROCm and CUDA share "cuda"; the torch build decides)."""
        return torch_type == self.torch_type

    # -- running ---------------------------------------------------------------------
    def set_device(self, device: "torch.device", memory_limit_bytes: int | None = None) -> None:
        """Make ``device`` current for this process and cap its memory where the kind's
        allocator can (the CPU is capped by RLIMIT_AS in the worker instead)."""

    def synchronize(self, device: "torch.device") -> None:
        """Wait for the device's queued work (rule 1: before reading a host clock)."""

    def event(self) -> Any:
        """The kind's timing event class (``Event(enable_timing=True)``, ``record()``,
        ``elapsed_time(other)`` in ms) where ``timer`` is "events", else None."""
        if self.timer != "events":
            return None
        return getattr(self.module(), "Event", None)

    def reset_peak_memory(self, device: "torch.device") -> None:
        """Start the device-memory peak afresh (no-op without device memory stats)."""

    def memory_peaks(self, device: "torch.device") -> dict[str, int]:
        """Device memory peaks since the last reset, bytes: ``memory_peak_bytes``
        (allocated) and ``memory_reserved_peak_bytes`` where the kind reports them;
        empty where it has no device-memory statistics."""
        return {}

    def empty_cache(self) -> None:
        """Give cached device memory back (between batch-size probes)."""

    def set_tf32(self, enabled: bool) -> None:
        """Allow (or forbid) TF32 math in fp32 matmuls and convolutions where the kind
        has a switch for it (CUDA, ROCm); fp32 cases measure true fp32."""

    def host_threads(self) -> bool:
        """Whether a case's intra-op thread count is what runs it (CPU)."""
        return self.name == "cpu"

    def lane(self, device: "torch.device") -> "Lane":
        """A place for one of several concurrent workers (a serving instance) on
        ``device``: its own stream where the kind's torch module offers streams
        (``Stream`` and the ``stream`` context, as ``torch.cuda``), else none (the CPU:
        concurrent workers are host threads)."""
        m = self.module() if self.streams else None
        if m is None or not hasattr(m, "Stream") or not hasattr(m, "stream"):
            return Lane(self, device, None)
        return Lane(self, device, m.Stream(device))

    def init_process_group(self, device: "torch.device") -> None:
        """Join the torch.distributed group of a parallel case with this kind's backend."""
        import torch.distributed as dist

        dist.init_process_group(self.dist_backend)

    def rng_devices(self, device: "torch.device") -> list[Any]:
        """Devices whose RNG ``torch.random.fork_rng`` must save (none for the CPU)."""
        return []

    def gemm_reason(self, dtype: str, device: "torch.device", cpu_flags=frozenset()) -> str | None:
        """Why the probe cannot time ``dtype`` GEMMs (fp32, tf32, fp16, bf16, fp8,
        int8) on ``device`` of this kind, or None."""
        return None if dtype in ("fp32", "fp16", "bf16") else f"{dtype} GEMMs are not probed on {self.label} devices"

    def device_name(self, device: "torch.device") -> str:
        """The model name of ``device`` (the probe's and peaks' device name)."""
        return self.module().get_device_name(device)

    def cache_bytes(self, device: "torch.device") -> int | None:
        """The last cache level a flush must evict, bytes; None: the CPU's LLC."""
        return None

    # -- capabilities ----------------------------------------------------------------
    def requirement(self, cap: str) -> str | None:
        """What a device of this kind needs for capability ``cap``, in the kind's own
        terms ("compute capability >= 8.9", "gfx arch gfx942/gfx950"); None: nothing."""
        return None

    def capability_reason(self, cap: str, dev: "DeviceInfo") -> str | None:
        """Why device ``dev`` of this kind lacks capability ``cap``, or None. Unknown
        capabilities are allowed (a precision's ``kinds`` already limits where it runs)."""
        return self.capabilities.get(cap)

    def precision_dtype(self, name: str, dev: "DeviceInfo | None" = None) -> str | None:
        """The torch dtype name a precision's format takes on this kind where it differs
        from the standard one (fp8 on gfx942: ``float8_e4m3fnuz``); None: the standard."""
        return None

    # -- facts ------------------------------------------------------------------------
    def environment(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """(one fact dict per physical device, software facts) for the environment
        fingerprint; the device dicts carry ``kind``, ``vendor``, ``name`` and what the
        kind knows (arch, memory, driver / runtime versions, UUID or bus id)."""
        return [], {}

    def available(self) -> str | None:
        """Why the kind's software is missing here (module not importable), or None."""
        if self.module_name is not None and importlib.util.find_spec(self.module_name.split(".")[0]) is None:
            return f"the {self.module_name} module is not installed"
        return None


class Lane:
    """Where one concurrent worker (a serving instance) queues its device work
    (:meth:`Accelerator.lane`): ``scope()`` makes its stream current in the calling
    thread, ``synchronize()`` waits for that stream alone (other lanes' work goes on);
    without a stream both fall back to the device's (no-ops on the CPU)."""

    def __init__(self, acc: Accelerator, device: "torch.device", stream: Any = None):
        self.acc, self.device, self.stream = acc, device, stream

    def scope(self) -> Any:
        if self.stream is None:
            return contextlib.nullcontext()
        return self.acc.module().stream(self.stream)

    def synchronize(self) -> None:
        if self.stream is None:
            self.acc.synchronize(self.device)
        else:
            self.stream.synchronize()


# the device-kind registry (hwbench.registry): suites name its entries as devices
KINDS: Registry[Accelerator] = Registry("device kind")


def kind_of(name: str) -> str:
    """The kind part of a device name ("rocm:0" -> "rocm")."""
    return name.split(":", 1)[0]


def of(name: str) -> Accelerator:
    """The kind of a device name as results give it ("cuda:0", "rocm:1", "cpu")."""
    return KINDS.get(kind_of(name))


# torch device (as str) -> the kind this process resolved it to (bind)
_BOUND: dict[str, Accelerator] = {}


def bind(device: "torch.device", acc: Accelerator) -> None:
    """Record that ``device`` is kind ``acc``'s in this process (a worker binds the
    device the runner resolved, so every later question about it goes to that kind
    without looking at torch again)."""
    _BOUND[str(device)] = acc


def of_torch(device: "torch.device | str") -> Accelerator:
    """The kind of a torch device in this process: the kind it was bound to, else the
    kind that claims its type (ROCm builds: "cuda" is ROCm's)."""
    bound = _BOUND.get(str(device))
    if bound is not None:
        return bound
    t = device if isinstance(device, str) else device.type
    t = kind_of(t)
    for acc in KINDS.values():
        if acc.claims(t):
            return acc
    return KINDS.get(t)


def use_module(kind: str, module: Any) -> Any:
    """Tests: replace kind ``kind``'s torch-side module by ``module`` (a fake); returns
    the previous one, to put back with another call."""
    acc = KINDS.get(kind)
    prev, acc._module = acc._module, module
    return prev


def discover_all(kinds: tuple[str, ...] | None = None) -> dict[str, Discovery]:
    """Every registered kind's discovery (or those of ``kinds``), in registration
    order; a kind whose discovery fails has the error as its reason."""
    out = {}
    for name, acc in KINDS.items():
        if kinds is not None and name not in kinds:
            continue
        why = acc.available()
        try:
            out[name] = Discovery(reason=why) if why else acc.discover()
        except Exception as e:  # noqa: BLE001 - a broken driver is a reason, not a crash
            out[name] = Discovery(reason=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
    return out


@functools.lru_cache(maxsize=None)
def absent_reason(kind: str) -> str | None:
    """Why kind ``kind`` has no device here (its discovery's reason), or None where it
    has some; asked once per kind and process."""
    return discover_all(kinds=(kind,))[kind].reason
