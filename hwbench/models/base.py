"""What every reference model family declares (docs/architecture.md: capabilities are declared).

A family is a :class:`ModelFamily` registered in :mod:`hwbench.models`. It owns its sizes,
builds the module from plain torch with a fixed seed, makes synthetic inputs, and gives
analytic counts: parameters and FLOPs per sample. FLOPs count multiply-adds as two
FLOPs and cover matrix multiplications and convolutions only (normalisation,
activations and additions are a rounding error and are not what accelerators' peak
figures describe) -- the same convention as ``torch.utils.flop_counter``.

This module and every family's metadata are torch-free: the suite loader validates
names, modes, shapes and sequence limits, and answers user errors, before torch (seconds
to import) is loaded. The ``nn.Module`` code lives in :mod:`hwbench.models.nets`, one
module per family, named by the family's ``nets`` field and imported by its ``build`` /
``make_batch`` / ``loss`` on first call.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, runtime_checkable

from ..case import Shape

if TYPE_CHECKING:  # annotations only: importing this module must not import torch
    import torch

    KVCache = list[tuple[torch.Tensor, torch.Tensor]]
    """One ``(k, v)`` pair per layer, each (batch, heads, positions, head_dim); with
    grouped-query attention ``heads`` are the key/value heads."""
else:
    KVCache = list

MODES = ("infer", "train", "generate")
SHAPE_KINDS = (None, "seq_len", "image_size")

Config = Mapping[str, Any]
"""One size's configuration: plain values (ints, tuples), no torch objects."""


@runtime_checkable
class GenerativeModel(Protocol):
    """What the ``generate`` workload needs of a model: a causal LM with a KV cache.

    ``model(ids, cache=None, last_only=False)`` (i.e. ``forward``):

    * ``ids``: int64 token ids, shape (batch, new_positions).
    * ``cache=None``: a plain forward; returns the logits, (batch, new_positions, vocab).
    * ``cache`` a list (``[]`` to start one): positions continue after the cached ones;
      returns ``(logits, new_cache)``, ``new_cache`` being one ``(k, v)`` pair per layer,
      each (batch, kv heads, cached + new_positions, head_dim), the input cache extended by
      this call's positions. The input cache is not modified.
    * ``last_only=True``: the LM head runs on the final position only, so logits are
      (batch, 1, vocab) -- prefill needs just the next token's distribution.

    Serving under load (:mod:`hwbench.serving.generation`) also calls
    ``model(ids, slots=step, last_only=True)``: each row of ``ids`` continues its own
    slot of a preallocated slot cache at its own position, the cache is written in place
    and the logits are returned (:mod:`hwbench.models.nets.slots`). Every family that
    declares ``generate`` takes ``slots`` (tested against the cache path above); the
    generate workload itself never passes it.

    ``runtime_checkable`` checks only that the methods exist (any ``nn.Module`` has a
    ``forward``); the families that declare the ``generate`` mode are tested to honour
    the full contract.
    """

    def forward(
        self, ids: torch.Tensor, cache: KVCache | None = None, last_only: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, KVCache]: ...

    def __call__(
        self, ids: torch.Tensor, cache: KVCache | None = None, last_only: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, KVCache]: ...


@runtime_checkable
class RoutedModel(Protocol):
    """A model with mixture-of-experts layers that counts how many tokens its routers
    send to each expert (on the device, without a host sync per step).

    * ``reset_router_counts()``: zero every layer's counts.
    * ``router_counts()``: tokens routed to each expert since the last reset, one list
      per MoE layer (a token sent to its top k experts counts once for each). Reads the
      device (a sync).
    """

    def reset_router_counts(self) -> None: ...

    def router_counts(self) -> list[list[int]]: ...


NETS_ENTRIES = ("build", "make_batch", "loss")
"""What a family's module in :mod:`hwbench.models.nets` defines (see :class:`ModelFamily`)."""


def _nets_module(name: str) -> str:
    return f"{__package__}.nets.{name}"


def _call_nets(name: str, entry: str, *args: Any, **kwargs: Any) -> Any:
    # Looked up at each call, not bound at import: importing the module imports torch.
    return getattr(importlib.import_module(_nets_module(name)), entry)(*args, **kwargs)


@dataclass(frozen=True)
class ModelFamily:
    """A reference model family.

    Fields (FLOPs: per sample, multiply-add = 2; parameters: a count of scalars):

    * ``sizes``: size name -> configuration (a plain mapping, see :data:`Config`).
    * ``nets``: the family's torch module, ``hwbench.models.nets.<nets>``, which defines
      the three functions below under those names (:data:`NETS_ENTRIES`). A family's
      ``build`` / ``make_batch`` / ``loss`` default to forwarding there, importing the
      module (and torch) on first call; its existence is checked here, without
      importing it. A family whose torch code lives elsewhere (a test's) gives the three
      functions instead.
    * ``build(cfg)``: an ``nn.Module`` (weights drawn from torch's RNG, which the worker
      seeds). Imports torch.
    * ``make_batch(cfg, batch, shape, device, dtype)``: ``(inputs, targets)`` created on
      ``device``; floating inputs in ``dtype`` (token ids stay int64). Imports torch.
    * ``loss(output, targets)``: the scalar training loss. Imports torch.
    * ``flops_forward(cfg, shape)``: forward FLOPs per sample.
    * ``param_count(cfg)``: the analytic parameter count (exact, tested against the
      built module and against published counts).
    * ``active_param_count(cfg)``: parameters one token (sample) goes through where that
      is fewer than all of them (mixture of experts: the chosen experts only); None:
      every parameter is active. Read it through :meth:`active_params`.
    * ``output_dim(cfg)``: the width of the output logits (classes, or the vocabulary):
      knowledge distillation compares teacher and student logits, so they must agree.
    * ``default_shape(cfg)``: the shape used when a suite names none.
    * ``shape_kind``: which :class:`Shape` field a suite varies: ``"seq_len"``,
      ``"image_size"`` or None.
    * ``modes``: the workloads this family supports, a subset of :data:`MODES`.
    * ``first_layer_flops(cfg, shape)``: forward FLOPs of the layers whose input needs no
      gradient (their backward computes one product, not two), for the training count.
    * ``float_inputs``: False where inputs are token ids, which stay integer whatever
      the precision.
    * ``max_seq_len(cfg)``: the longest sequence (tokens, prompt + generated) the model
      accepts -- its position table. Set exactly when ``shape_kind == "seq_len"``.
    * ``flops_generate(cfg, prompt_len, new_tokens)``: FLOPs to generate ``new_tokens``
      tokens for one sequence after a ``prompt_len``-token prompt (prefill + decode).
      Set exactly when ``"generate" in modes``; ``build`` then returns a
      :class:`GenerativeModel` (with the ``slots`` path serving uses).
    """

    name: str
    description: str
    sizes: Mapping[str, Config]
    flops_forward: Callable[[Config, Shape], float]
    param_count: Callable[[Config], int]
    default_shape: Callable[[Config], Shape]
    shape_kind: str | None
    nets: str | None = None
    # None: forward to the ``nets`` module's function of that name (set in __post_init__)
    build: Callable[[Config], torch.nn.Module] = None  # type: ignore[assignment]
    make_batch: Callable[..., tuple[Any, Any]] = None  # type: ignore[assignment]
    loss: Callable[[Any, Any], torch.Tensor] = None  # type: ignore[assignment]
    modes: tuple[str, ...] = ("infer", "train")
    first_layer_flops: Callable[[Config, Shape], float] = lambda c, s: 0.0
    float_inputs: bool = True
    max_seq_len: Callable[[Config], int] | None = None
    flops_generate: Callable[[Config, int, int], float] | None = None
    active_param_count: Callable[[Config], int] | None = None
    output_dim: Callable[[Config], int] | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        # A family definition that contradicts itself is a bug in hwbench, caught at
        # import: the suite loader trusts these declarations without re-checking.
        where = f"model family {self.name!r}"
        if not self.sizes:
            raise ValueError(f"{where}: no sizes")
        if not self.modes or any(m not in MODES for m in self.modes):
            raise ValueError(f"{where}: modes {self.modes!r} must be a non-empty subset of {MODES}")
        if self.shape_kind not in SHAPE_KINDS:
            raise ValueError(f"{where}: shape_kind {self.shape_kind!r} must be one of {SHAPE_KINDS}")
        if (self.max_seq_len is None) != (self.shape_kind != "seq_len"):
            raise ValueError(f"{where}: max_seq_len is declared exactly when shape_kind is 'seq_len'")
        if ("generate" in self.modes) != (self.flops_generate is not None):
            raise ValueError(f"{where}: the 'generate' mode and flops_generate go together (modes {self.modes!r})")
        if "generate" in self.modes and self.shape_kind != "seq_len":
            raise ValueError(f"{where}: the 'generate' mode needs token sequences (shape_kind 'seq_len')")
        if self.nets is not None and importlib.util.find_spec(_nets_module(self.nets)) is None:
            raise ValueError(f"{where}: nets {self.nets!r}: no module {_nets_module(self.nets)}")
        for entry in NETS_ENTRIES:
            if getattr(self, entry) is None:
                if self.nets is None:
                    raise ValueError(f"{where}: {entry} is missing: give it, or nets (the family's torch module)")
                object.__setattr__(self, entry, partial(_call_nets, self.nets, entry))

    def active_params(self, cfg: Config) -> int:
        """Parameters active per token: all of them unless the family says fewer."""
        return self.param_count(cfg) if self.active_param_count is None else self.active_param_count(cfg)

    def flops_per_sample(self, size: str, mode: str, shape: Shape) -> float:
        """Analytic FLOPs per sample for one step of ``mode``.

        Training = forward + backward, backward being two products per matmul (grad of
        input and grad of weight) except for layers whose input needs no gradient.
        Generation FLOPs per sequence come from :attr:`flops_generate`, which needs the
        number of generated tokens; for ``generate`` this returns the forward FLOPs.
        """
        cfg = self.sizes[size]
        fwd = self.flops_forward(cfg, shape)
        if mode == "train":
            return 3.0 * fwd - self.first_layer_flops(cfg, shape)
        return fwd


INPUTS: dict[str, dict[str, Any]] = {
    "vector": {"shape_kind": None, "default_shape": lambda cfg: Shape()},
    "image": {"shape_kind": "image_size", "default_shape": lambda cfg: Shape(image_size=cfg["image_size"])},
    "tokens": {"shape_kind": "seq_len", "default_shape": lambda cfg: Shape(seq_len=cfg["seq_len"]),
               "float_inputs": False},
}
"""What a family's inputs are, as :class:`ModelFamily` fields: ``vector`` (fixed-width
features, no shape to vary), ``image`` (square RGB images, ``cfg["image_size"]`` by
default) or ``tokens`` (int64 token ids, ``cfg["seq_len"]`` by default)."""

MODULE_FIELDS = ("flops_forward", "param_count", "first_layer_flops", "flops_generate", "active_param_count")
"""The :class:`ModelFamily` fields :func:`declare` takes from the family module's own
functions of the same names."""


def declare(namespace: Mapping[str, Any], name: str, description: str, *, inputs: str,
            output: str | int, max_seq_len: str | None = None, **fields: Any) -> ModelFamily:
    """The :class:`ModelFamily` a module of :mod:`hwbench.models` defines, stating only
    what differs between families (call it as ``FAMILY = declare(globals(), ...)``).

    From ``namespace`` (the module's globals): ``SIZES`` and the functions named in
    :data:`MODULE_FIELDS` that the module defines; a module with ``flops_generate``
    supports every mode in :data:`MODES`. ``inputs`` is a key of :data:`INPUTS`;
    ``output`` is the config key of the logits' width (``"classes"``, ``"vocab"``) or
    a fixed width; ``max_seq_len`` the config key of the position limit (token
    families); ``nets`` is the family's name. ``fields`` are any other
    :class:`ModelFamily` fields, given as they are.
    """
    found = {k: namespace[k] for k in MODULE_FIELDS if k in namespace}
    if "flops_generate" in found:
        fields.setdefault("modes", MODES)
    return ModelFamily(
        name=name, description=description, sizes=namespace["SIZES"], nets=name,
        output_dim=(lambda cfg: output) if isinstance(output, int) else (lambda cfg: cfg[output]),
        max_seq_len=None if max_seq_len is None else (lambda cfg: cfg[max_seq_len]),
        **INPUTS[inputs], **found, **fields,
    )
