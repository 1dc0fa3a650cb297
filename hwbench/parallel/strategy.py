"""The parallel-strategy registry: what each strategy module declares about itself.

A strategy is one module in this package that registers one :class:`Strategy` (its
facts: name, whether it is data-parallel, the backends it runs, its own ``check`` and
its ``make_step``) and is imported by :mod:`hwbench.parallel` (one name on its import
line). The suite's ``parallelism`` values, the planner's checks, the mesh's batch split
and the scaling report read these facts; no other file lists strategies.

Torch-free (the suite loader and the planner use it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..registry import Registry


@dataclass(frozen=True)
class Strategy:
    """One parallel strategy.

    ``data_parallel``: every rank trains the whole step on its own batch (its own data
    seed; with ``scaling = "strong"`` the global batch is split over the ranks); False
    where all ranks see the group batch (tp) or the first stage feeds it (pp).
    ``backends``: the backends it runs (``compile`` applied where PyTorch recommends
    for that strategy, see its module). ``check(case, family, settings)``: why this
    strategy cannot run ``case`` (a reason, or None), torch-free, called when a run is
    planned after the checks every strategy shares (``settings`` may be None).
    ``make_step(prep, family, inputs, targets, mesh, compile_fn)``: the train step, in
    the rank. ``comm``: the strategy takes the ``comm`` dimension (gradient compression,
    :mod:`hwbench.parallel.comm`): its ``make_step`` then also takes ``comm=`` and
    ``bucket_cap_mb=``.
    """

    name: str
    help: str
    data_parallel: bool
    backends: tuple[str, ...]
    check: Callable[..., str | None]
    make_step: Callable[..., Any]
    comm: bool = False


# registration order is the order `hwbench list` and error messages name them
STRATEGIES: Registry[Strategy] = Registry("parallel strategy")


def data_parallel() -> tuple[str, ...]:
    """The registered data-parallel strategies, in registration order."""
    return tuple(s.name for s in STRATEGIES.values() if s.data_parallel)
