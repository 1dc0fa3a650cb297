"""Planning a run: which cases a segment selects (``--filter``), where each runs or why
it cannot run here, and what a resume has left to do. One plan per run
(:func:`plan_run`), asked for once: ``hwbench run --dry-run`` shows it, the runner
(:mod:`hwbench.runner`) runs it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from . import backends
from .errors import UserError
from .records import RunRecord
from .case import Case
from .spec import LoadedSuite

FINISHED = ("ok", "skipped")  # kept on resume; failed / oom / timeout are run again


@dataclass(frozen=True)
class Planned:
    case: Case
    skip_reason: str | None
    device_name: str | None  # the device's model name, e.g. "NVIDIA H100 80GB HBM3"
    device: str | None = None  # the resolved device, e.g. "cuda:0" for "cuda" or "auto"


FILTER_FIELDS = tuple(sorted(set(Case.__dataclass_fields__) | {"family", "size"}))


def parse_filter(exprs: Iterable[str]) -> list[Callable[[Case], bool]]:
    """``--filter`` expressions -> predicates on a Case; a case runs if any matches.
    ``field=glob[,field=glob...]`` matches fields (all must match); anything else is a
    glob on ``case_id`` (a plain word matches as a substring)."""
    preds = []
    for expr in exprs:
        if "=" in expr:
            terms = []
            for term in expr.split(","):
                key, _, pat = term.partition("=")
                key = key.strip()
                if key not in FILTER_FIELDS:
                    raise UserError(f"--filter {expr!r}: unknown field {key!r}; fields: {', '.join(FILTER_FIELDS)}")
                terms.append((key, pat.strip()))

            def pred(c: Case, terms=terms) -> bool:
                vals = {**c.to_dict(), "family": c.family, "size": c.size}
                return all(fnmatch.fnmatchcase(str(vals[k]), p) for k, p in terms)

        else:
            pat = expr if any(ch in expr for ch in "*?[") else f"*{expr}*"

            def pred(c: Case, pat=pat) -> bool:
                return fnmatch.fnmatchcase(c.case_id, pat)

        preds.append(pred)
    return preds


def select(suite: LoadedSuite, filters: Iterable[str] = ()) -> list[Case]:
    """The suite's cases that match ``filters`` (all of them without filters)."""
    preds = parse_filter(filters)
    out = [c for c in suite.cases if not preds or any(p(c) for p in preds)]
    if preds and not out:
        raise UserError(f"{suite.path}: --filter matched none of the suite's {len(suite.cases)} cases")
    return out


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else every core)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _cpu_ranks_reason(case: Case, nnodes: int, cores: int) -> str | None:
    """CPU ranks share the cores, one core at least each: more ranks per node than
    usable cores is skipped, as more ranks than GPUs is on CUDA."""
    here = case.world_size // nnodes
    if here > cores:
        per = f" ({nnodes} nodes: {here} per node)" if nnodes > 1 else ""
        return (f"{case.parallelism}: world size {case.world_size}{per} needs {here} CPU cores (one per rank); "
                f"this machine has {cores} usable")
    return None


def plan(suite: LoadedSuite, filters: Iterable[str] = (), present=None, nodes=None,
         cores: int | None = None) -> list[Planned]:
    """Every selected case with the device it resolves to, or why it cannot run here.
    ``nodes`` (:class:`hwbench.parallel.nodes.Nodes`): a multi-node run, where only
    parallel cases that split evenly over the nodes run. ``cores``: the usable CPU
    cores (default: this process's, :func:`usable_cores`)."""
    return _resolve(suite, select(suite, filters), present, nodes, cores)


def _resolve(suite: LoadedSuite, cases: list[Case], present=None, nodes=None, cores: int | None = None) -> list[Planned]:
    from . import devices, parallel

    present = devices.present() if present is None else present
    settings = suite.spec.settings
    out = []
    for case in cases:
        dev = backends.resolve_device(case.device, present)
        why = backends.unsupported_reason(case, dev)
        if why is None and case.checkpointer is not None:
            from .io import CHECKPOINTERS

            why = CHECKPOINTERS.requires(case.checkpointer, dev, case)
        if why is None and nodes is not None:
            why = nodes.requires(case)
        if why is None and dev is not None and case.parallelism != "none":
            n = sum(d.kind == dev.kind for d in present)
            nnodes = nodes.nnodes if nodes else 1
            why = parallel.requires(case, dev.kind, n, settings, nnodes=nnodes)
            if why is None and devices.KINDS.get(dev.kind).host_threads():
                why = _cpu_ranks_reason(case, nnodes, usable_cores() if cores is None else cores)
        out.append(Planned(case, why, dev.model if dev else None, dev.name if dev else None))
    return out


def auto_expansion(p: Planned, limit: int) -> list[Planned]:
    """The concrete cases of a batch_sizes = ["auto"] case: powers of two up to the limit."""
    sizes = [2**k for k in range(limit.bit_length()) if 2**k <= limit]
    return [Planned(dataclasses.replace(p.case, batch_size=b), None, p.device_name, p.device) for b in sizes]


def pending(planned: list[Planned], record: RunRecord) -> list[Planned]:
    """The planned cases ``record`` has no finished (ok / skipped) result for. An auto
    batch case whose search finished counts through its expanded cases."""
    done = {c.case_id for c in record.cases if c.status in FINISHED}
    out = []
    for p in planned:
        if p.case.auto_batch and p.skip_reason is None and p.case.case_id in record.batch_limits:
            limit = record.batch_limits[p.case.case_id].batch_limit
            if all(e.case.case_id in done for e in auto_expansion(p, limit)):
                continue
        elif p.case.case_id in done:
            continue
        out.append(p)
    return out


@dataclass(frozen=True)
class Plan:
    """What a run (or a resume) does, before anything starts: ``planned`` are the cases
    this segment's filters select, ``scope`` those of the whole run (the first segment's
    filters), ``todo`` the planned cases ``record`` has not finished (every planned case
    for a new run); ``record`` / ``path``: the results file resumed onto (None: a new run)."""

    suite: LoadedSuite
    planned: list[Planned]
    scope: list[Planned]
    todo: list[Planned]
    record: RunRecord | None = None
    path: Path | None = None

    def resumed(self, record: RunRecord) -> Plan:
        """The same plan onto ``record`` as read now (another resume may have finished
        cases since): the scope stays, what is left is asked again."""
        return dataclasses.replace(self, record=record, todo=pending(self.planned, record))


def plan_run(suite: LoadedSuite, filters: Iterable[str] = (), record: RunRecord | None = None,
             path: Path | None = None, nodes=None, present=None) -> Plan:
    """The run's plan: every case of the suite resolved once (devices looked up once),
    then selected by this segment's ``filters`` and, for a resume of ``record``, by the
    run's first filters (its scope). Raises UserError for a filter that matches nothing."""
    filters = list(filters)
    chosen = set(select(suite, filters))
    every = _resolve(suite, list(suite.cases), present, nodes)
    planned = [p for p in every if p.case in chosen]
    if record is None:
        return Plan(suite, planned, planned, list(planned), None, path)
    first = set(select(suite, record.segments[0].filters))
    scope = [p for p in every if p.case in first]
    return Plan(suite, planned, scope, pending(planned, record), record, path)
