"""The capacity search: the highest offered rate whose load point meets the SLO.

Rule (docs/serving.md): latency is taken to grow with load. ``guess`` is the rate the
SUT sustains with full batches back to back and no SLO (measured first, briefly). The
search probes ``lower = guess * start_fraction``; if that misses the SLO there is no
capacity (None, with the reason). Then it probes ``guess`` and, while a probe meets the
SLO, doubles it (a short calibration may have underestimated the SUT), until a probe
misses. Then it bisects between the highest passing and the lowest failing rate -- the
passing bound rises to a probe that meets the SLO, the failing bound falls to one that
misses -- until ``(fail - pass) <= rel_tol * fail`` or ``max_probes`` load points were
run. Capacity is the highest probed rate that met the SLO: never above the true boundary
when latency grows with load, and within ``rel_tol`` of it (relative to the failing
bound) when the search converged.
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


def find_capacity(meets: Callable[[float], bool], guess: float, *, start_fraction: float = 0.1,
                  rel_tol: float = 0.1, max_probes: int = 10) -> Search:
    """Search for the highest rate where ``meets(rate)`` is True (module docstring).
    ``meets`` runs one load point."""
    if not guess > 0:
        return Search(None, stopped="no starting rate: the SUT completed no queries")
    probes: list[tuple[float, bool]] = []

    def probe(rate: float) -> bool:
        ok = bool(meets(rate))
        probes.append((rate, ok))
        return ok

    lo = guess * start_fraction
    if not probe(lo):
        return Search(None, probes, False, f"the SLO is missed already at {lo:.4g} /s "
                      f"({start_fraction:.0%} of the {guess:.4g} /s full-batch rate)")
    ok, bad = lo, guess
    while probe(bad):
        ok, bad = bad, bad * 2
        if len(probes) >= max_probes:
            return Search(ok, probes, False, f"stopped after {max_probes} load points, still meeting the SLO "
                          f"at {ok:.4g} /s")
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
