"""``python -m hwbench.selfcheck --gpu`` / ``--cpu``: every measuring path once, small.

One prepared acceptance run for a machine (a GPU machine is often lent for minutes):
it runs each path the project measures with, once, with small shapes, through the
project's own machinery -- generated suites through :func:`hwbench.run_suite`, the
probe API, the collectors, the device layer -- and prints one verdict per path:

* ``ran``: the path produced what it should (the rule is in the verdict function);
* ``failed``: it applies here and did not (with the reason);
* ``n/a``: it does not apply to this machine (with the reason: no GPM before Hopper,
  no fp8 before compute capability 8.9, cudagraphs on a CPU, ...).

It writes the suites' results files, the machine profile (``profiles/``, picked up by
the results) and ``selfcheck.json`` (the verdicts) under ``--out`` (default
``results/selfcheck-<host>-<time>/``), and exits 1 if any path that applies failed
(2 for a usage error). It never changes clocks, power limits, modes or MIG: it only
reads NVML and runs workloads.

The verdict rules are pure functions of what was measured (:mod:`.verdicts`), tested
against constructed records and the fake NVML; :mod:`.paths` measures.
"""

from __future__ import annotations

from .verdicts import FAILED, NA, RAN, Verdict

__all__ = ["FAILED", "NA", "RAN", "Verdict"]
