"""Compiler backends (one registered object each), and putting a model on a device in a
precision, through a variant and a backend -- with the check of which combinations a
machine supports (made before launch, so a case that cannot run is ``skipped`` with a
precise reason instead of failing).

The three axes are registries: :mod:`hwbench.precisions`, :mod:`hwbench.variants` and
the backends below. :func:`unsupported_reason` walks them; the rules that involve two
axes at once are in :data:`CROSS_RULES`.

No torch at import time (the suite loader validates names before torch is loaded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from . import precisions, variants
from .precisions import Needs
from .registry import Registry

if TYPE_CHECKING:
    import torch

    from .devices import DeviceInfo
    from .case import Case


@dataclass(frozen=True)
class Backend:
    """One way of executing the model.

    ``wrap``: (eager model, torch.compile mode) -> the model to step; None: eager.
    ``generate``: False where generation (a KV cache that grows every step) cannot run
    through it; ``generate_note`` says why.
    """

    name: str
    help: str
    needs: Needs = field(default_factory=Needs)
    wrap: Callable[[Any, str], Any] | None = None
    generate: bool = True
    generate_note: str = ""

    def requires(self, device: DeviceInfo, case: Case) -> str | None:
        """Why this backend cannot run ``case`` on ``device``, or None."""
        if case.mode == "generate" and not self.generate:
            return f"generate with the {self.name} backend is not supported{self.generate_note}"
        return self.needs.reason(f"{self.name} backend", device, case)

    def apply(self, model: Any, mode: str = "default") -> Any:
        return model if self.wrap is None else self.wrap(model, mode)


# the backend registry (hwbench.registry)
REGISTRY: Registry[Backend] = Registry("backend")
register, unregister, names, get = REGISTRY.register, REGISTRY.unregister, REGISTRY.names, REGISTRY.get


def _compile(model: Any, mode: str) -> Any:
    import torch

    return torch.compile(model, mode=None if mode == "default" else mode)


def _cudagraphs(model: Any, mode: str) -> Any:
    import torch

    return torch.compile(model, backend="cudagraphs")


_KV_NOTE = " (the KV cache changes shape every step)"
register(Backend("eager", "PyTorch eager execution"))
register(Backend("compile", "torch.compile (inductor) in the suite's compile_mode", wrap=_compile,
                 generate=False, generate_note=_KV_NOTE))
register(Backend("cudagraphs", "dynamo's CUDA-graphs backend: captures and replays the step's kernels, no inductor",
                 needs=Needs(kinds=("cuda", "rocm")), wrap=_cudagraphs, generate=False, generate_note=_KV_NOTE))


# --- the whole case -----------------------------------------------------------------


def resolve_device(name: str, devices: list[DeviceInfo]) -> DeviceInfo | None:
    """Map a suite device name to a present device (``auto`` = best present; an
    indexed kind's bare name = its device 0, ``rocm`` = ``rocm:0``). None if absent."""
    from . import devices as kinds

    by_name = {d.name: d for d in devices}
    if name == "auto":
        return devices[0]
    if kinds.kind_of(name) in kinds.KINDS:
        name = kinds.of(name).resolve(name)
    return by_name.get(name)


def _absent_reason(name: str) -> str:
    """Why device ``name`` is not here: its kind's discovery says (cached per kind)."""
    from . import devices as kinds

    kind = kinds.kind_of(name)
    why = kinds.absent_reason(kind) if kind in kinds.KINDS else None
    return f"device {name}: {why or 'not present (the index is out of range)'}"


def _variant_vs_quantisation(case: Case, dev: DeviceInfo) -> str | None:
    if case.variant != "none" and precisions.get(case.precision).rewrites_linear:
        return f"variant {case.variant} is not combined with {case.precision} (both rewrite the Linear layers)"
    return None


def _threads_on_cpu(case: Case, dev: DeviceInfo) -> str | None:
    from . import devices

    if case.threads is not None and not (dev.kind in devices.KINDS and devices.KINDS.get(dev.kind).host_threads()):
        return "threads applies to CPU cases only"
    return None


# Rules that no single axis can state alone, checked after each axis' own requires().
CROSS_RULES: tuple[Callable[[Case, DeviceInfo], str | None], ...] = (_variant_vs_quantisation, _threads_on_cpu)


def unsupported_reason(case: Case, dev: DeviceInfo | None) -> str | None:
    """Why ``case`` cannot run on this machine, or None. Declared capabilities only:
    the worker does not re-check. Order: device presence, precision, variant, backend,
    then the cross-axis rules; the first reason found is returned."""
    if dev is None:
        return _absent_reason(case.device)
    variant, _ = variants.get(case.variant)
    checks = (
        lambda: precisions.REGISTRY.requires(case.precision, dev, case),
        lambda: variant.requires(dev, case),
        lambda: REGISTRY.requires(case.backend, dev, case),
        *(lambda rule=rule: rule(case, dev) for rule in CROSS_RULES),
    )
    for check in checks:
        reason = check()
        if reason is not None:
            return reason
    return None


@dataclass
class Prepared:
    """A model ready to step: module on device, input dtype, autocast context factory,
    grad scaler (fp16 autocast training) and what the variant / quantisation rewrote
    (counts, e.g. {"int8_layers": 12}). Mutable: the worker swaps in the compiled model."""

    model: torch.nn.Module
    input_dtype: torch.dtype
    autocast: Callable[[], Any]
    scaler: Any = None
    changes: dict[str, int] | None = None


def prepare(model: torch.nn.Module, case: Case, device: torch.device, float_inputs: bool) -> Prepared:
    """Apply precision, then variant, then the precision's conversion (quantisation).
    Called inside the worker; the backend is applied by :func:`compile_model`."""
    import torch

    p = precisions.get(case.precision)
    p.set_math_mode(device)
    dtype = p.torch_dtype()
    model = model.to(device=device, dtype=dtype)
    changes = dict(variants.apply(model, case.variant))
    if p.convert is not None:
        model, more = p.convert(model, case)
        changes.update(more)
    return Prepared(model, dtype if float_inputs else torch.long, p.autocast(device), p.scaler(device, case), changes)


def compile_counter():
    """A zero-argument function: how many torch.compile compilations this process has
    finished so far (dynamo's frames, and the backward graphs AOTAutograd compiles
    lazily at the first backward), from dynamo's compile-end callbacks. Eager models
    count 0. Used to keep warming up while a model still compiles, and to flag
    compilations inside a timed window."""
    from torch._dynamo.callback import on_compile_end

    n = [0]

    @on_compile_end
    def _count(_args) -> None:
        n[0] += 1

    return lambda: n[0]


# warmup steps added while the model still compiles; past dynamo's recompile limit (8 per
# frame) a frame runs eager, so compilation stops before this
MAX_RECOMPILE_STEPS = 20


def compile_model(model: torch.nn.Module, case: Case, mode: str = "default") -> torch.nn.Module:
    """The model as ``case.backend`` runs it (``mode``: torch.compile mode)."""
    return get(case.backend).apply(model, mode)
