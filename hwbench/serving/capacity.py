"""The capacity search: the highest offered rate whose load point meets the SLO.

Rule (docs/serving.md): latency is taken to grow with load. The search starts from
``upper`` (the rate the SUT sustains with full batches and no SLO, measured first: no
served rate can exceed it) and probes ``lower = upper * start_fraction``. If ``lower``
misses the SLO, there is no capacity (None, with the reason). Else it bisects
``[lower, upper]`` -- the passing bound rises to a probe that meets the SLO, the failing
bound falls to one that misses -- until ``(fail - pass) <= rel_tol * fail`` or
``max_probes`` load points were run. Capacity is the highest probed rate that met the
SLO: never above the true boundary when latency grows with load, and within
``rel_tol`` of it when the search converged. ``upper`` itself is probed first (it may
meet the SLO: then it is the capacity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Search:
    """A finished search: ``capacity`` (rate, or None), ``probes`` ((rate, met) in the
    order run), ``converged`` and why it stopped."""

    capacity: float | None
    probes: list[tuple[float, bool]] = field(default_factory=list)
    converged: bool = False
    stopped: str = ""


def find_capacity(meets: Callable[[float], bool], upper: float, *, start_fraction: float = 0.05,
                  rel_tol: float = 0.1, max_probes: int = 8) -> Search:
    """Bisect for the highest rate in ``(0, upper]`` where ``meets(rate)`` is True
    (module docstring). ``meets`` runs one load point."""
    if not upper > 0:
        return Search(None, stopped="no upper bound: the SUT completed no queries")
    probes: list[tuple[float, bool]] = []

    def probe(rate: float) -> bool:
        ok = bool(meets(rate))
        probes.append((rate, ok))
        return ok

    lo = upper * start_fraction
    if not probe(lo):
        return Search(None, probes, False, f"the SLO is missed already at {lo:.4g} /s "
                      f"({start_fraction:.0%} of the {upper:.4g} /s upper bound)")
    ok, bad = lo, upper
    while bad - ok > rel_tol * bad:
        if len(probes) >= max_probes:
            return Search(ok, probes, False, f"stopped after {max_probes} load points, "
                          f"between {ok:.4g} and {bad:.4g} /s")
        mid = (ok + bad) / 2
        if probe(mid):
            ok = mid
        else:
            bad = mid
    return Search(ok, probes, True, f"converged: passing {ok:.4g} /s, failing {bad:.4g} /s "
                  f"(within {rel_tol:.0%})")
