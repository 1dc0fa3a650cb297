"""Joining the parts of a multi-node run (``hwbench run --nnodes``) into one record. Pure
and torch-free: :func:`hwbench.results.read_many` applies it to whatever it reads, so
``hwbench report`` / ``compare`` / ``load_results`` see one run; ``hwbench merge``
writes the joined record to a file.

Each node's part holds, per parallel case, its own ranks' results and its own
collectors. Joined, per case:

* step times: per repeat and step, the slowest node's value (each node's value is
  already its slowest rank's, and every rank runs the same aligned steps), so the
  result is the slowest rank of the whole group, as on one machine;
* first iteration, warmup, timed window, overheads: the largest over the nodes;
* memory peaks and communication: the largest; the per-rank lists are concatenated in
  rank order (``facts.ranks``);
* energy: the sum over the nodes (each measured its own devices over its own window),
  its window the longest; the weakest source names it (a counter and an estimate
  together read as "estimated");
* collectors: node 0's under their names, the others' as ``node<R>/<name>``;
* status: ok when every node's part is ok; else the worst (oom, failed, timeout) with
  every non-ok node's reason.

A node without a part (or without a result for a case) leaves the case flagged
``node_parts_missing``: its step times are then the slowest of the nodes present only,
and it has no energy.

The same module makes one case result of what ran on one machine
(:func:`assemble`): a case's process-isolated repeats (:func:`merge_repeats`) and the
ranks of a parallel case (:func:`merge_ranks`) are joined here too, so every rule of
joining measurements lives in one file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from .records import CaseIdentity, CaseResult, Energy, Flag, NodePart, Overheads, RunRecord

_WORST = {"oom": 0, "failed": 1, "timeout": 2, "skipped": 3, "ok": 4}


def join_parts(items: list[tuple[Path, RunRecord]], warn: Callable[[str], None] | None = None
               ) -> list[tuple[Path, RunRecord]]:
    """``items`` with the parts of each multi-node run replaced by their merge (at the
    place of its node-0 part, or its first part). Parts that cannot be joined (another
    suite, another node count) stay as they are, with a warning."""
    merged_runs = {part.run_id: p for p, rec in items for part in rec.nodes}
    groups: dict[str, list[tuple[Path, RunRecord]]] = {}
    kept = []
    for p, rec in items:
        if rec.node is not None and rec.run_id in merged_runs:
            if warn is not None:
                warn(f"{p}: a part already in the merged file {merged_runs[rec.run_id]}: left out")
            continue
        kept.append((p, rec))
        if rec.node is not None:
            groups.setdefault(rec.node.job_id, []).append((p, rec))
    items = kept
    if not groups:
        return items
    out: list[tuple[Path, RunRecord]] = []
    done: set[str] = set()
    for p, rec in items:
        if rec.node is None:
            out.append((p, rec))
            continue
        job = rec.node.job_id
        if job in done:
            continue
        done.add(job)
        parts = groups[job]
        try:
            merged, notes = merge_parts(parts)
        except ValueError as e:
            if warn is not None:
                warn(f"multi-node run {job}: parts not merged: {e}")
            out.extend(parts)
            continue
        for note in notes:
            if warn is not None:
                warn(f"multi-node run {job}: {note}")
        first = min(parts, key=lambda x: x[1].node.node_rank)[0]
        out.append((first, merged))
    return out


def merge_parts(parts: list[tuple[Path, RunRecord]]) -> tuple[RunRecord, list[str]]:
    """One record from the parts of one multi-node run, and notes for the reader (a
    node missing, a part chosen over another). Raises ValueError where the parts do not
    belong together."""
    notes: list[str] = []
    first = parts[0][1]
    nnodes = first.node.nnodes
    by_rank: dict[int, tuple[Path, RunRecord]] = {}
    for p, rec in parts:
        if rec.node.nnodes != nnodes:
            raise ValueError(f"{p}: a part of a {rec.node.nnodes}-node run, the others of {nnodes}")
        if rec.suite.hash != first.suite.hash:
            raise ValueError(f"{p}: suite {rec.suite.name!r} hash {rec.suite.hash}, not {first.suite.hash}")
        r = rec.node.node_rank
        if r in by_rank:
            keep = max((by_rank[r], (p, rec)), key=lambda x: x[1].updated or x[1].created)
            notes.append(f"two parts of node {r} ({by_rank[r][0]}, {p}): the newer, {keep[0]}, is used")
            by_rank[r] = keep
        else:
            by_rank[r] = (p, rec)
    missing = [r for r in range(nnodes) if r not in by_rank]
    if missing:
        notes.append(f"no part of node{'s' * (len(missing) > 1)} {', '.join(map(str, missing))} "
                     f"of {nnodes}: its cases are flagged node_parts_missing")
    ranks = sorted(by_rank)
    base = by_rank[ranks[0]][1]
    order: list[str] = []
    for r in ranks:
        for c in by_rank[r][1].cases:
            if c.case_id not in order:
                order.append(c.case_id)
    cases = []
    for cid in order:
        have = {r: c for r in ranks for c in by_rank[r][1].cases if c.case_id == cid}
        cases.append(merge_case(have, nnodes))
    statuses = {by_rank[r][1].status for r in ranks}
    status = ("running" if "running" in statuses else "interrupted" if "interrupted" in statuses
              else "partial" if missing or "partial" in statuses else "complete")
    nodes = [NodePart(node_rank=r, nnodes=nnodes, hostname=by_rank[r][1].environment.hostname, run_id=by_rank[r][1].run_id,
                      path=str(by_rank[r][0]), status=by_rank[r][1].status, created=by_rank[r][1].created,
                      updated=by_rank[r][1].updated, segments=by_rank[r][1].segments) for r in ranks]
    updated = max((by_rank[r][1].updated or by_rank[r][1].created) for r in ranks)
    merged = base.model_copy(update={"cases": cases, "status": status, "node": None, "nodes": nodes,
                                     "updated": updated})
    return RunRecord.model_validate(merged.model_dump()), notes


def merge_case(have: dict[int, CaseResult], nnodes: int) -> CaseResult:
    """One case from each node's result of it (``have``: node rank -> result)."""
    ranks = sorted(have)
    c0 = have[ranks[0]]
    missing = [r for r in range(nnodes) if r not in have]
    flags = _flags(have)
    names = {c.device_name for c in have.values() if c.device_name}
    if len(names) > 1:
        flags.append(Flag(flag="mixed_devices", detail="the nodes ran on " + ", ".join(sorted(names))))
    if missing:
        flags.append(Flag(flag="node_parts_missing", detail=(
            f"no result from node{'s' * (len(missing) > 1)} {', '.join(map(str, missing))}: step times are the "
            f"slowest of node{'s' * (len(ranks) > 1)} {', '.join(map(str, ranks))} only; no energy")))
    bad = sorted((r for r in ranks if have[r].status != "ok"), key=lambda r: (_WORST.get(have[r].status, 9), r))
    if bad:
        status = have[bad[0]].status
        if status == "skipped":
            return c0.model_copy(update={"status": "skipped", "reason": have[bad[0]].reason, "flags": flags})
        reason = "; ".join(f"node {r}: {have[r].reason}" for r in bad
                           if have[r].status not in ("ok", "skipped"))
        return c0.model_copy(update={"status": status, "reason": reason, "measurement": None, "facts": None,
                                     "energy": None, "collectors": _collectors(have), "flags": flags,
                                     "timing": _timing(have)})
    ms = [have[r].measurement for r in ranks]
    m = ms[0]
    if all(x is not None for x in ms):
        n_rep = min(len(x.raw_times_s) for x in ms)
        rounds = []
        for i in range(n_rep):
            n = min(len(x.raw_times_s[i]) for x in ms)
            rounds.append([max(x.raw_times_s[i][j] for x in ms) for j in range(n)])
        m = m.model_copy(update={"raw_times_s": rounds, "first_iter_s": max(x.first_iter_s for x in ms),
                                 "warmup_s": max(x.warmup_s for x in ms), "measured_s": max(x.measured_s for x in ms)})
    return c0.model_copy(update={
        "measurement": m, "facts": _facts(have), "timing": _timing(have), "collectors": _collectors(have),
        "energy": None if missing else _energy(have), "flags": flags,
    })


def _flags(have: dict[int, CaseResult]) -> list[Flag]:
    out: dict[tuple[str, str], Flag] = {}
    for r in sorted(have):
        for f in have[r].flags:
            detail = f.detail if r == min(have) else f"node {r}: {f.detail}"
            out.setdefault((f.flag, f.detail), Flag(flag=f.flag, detail=detail))
    return list(out.values())


def _largest(values: list):
    """The largest of ``values``; None if any is missing (a maximum over some is not the
    maximum over all)."""
    return max(values) if all(v is not None for v in values) else None


def merge_facts(facts: list):
    """The facts of one case measured by several processes (a worker per repeat, or the
    nodes of a multi-node run): the first's, with each memory peak the largest over them
    (None if one lacks it) and the router's tokens per expert summed element by element
    (each process counted its own timed iterations)."""
    first = facts[0]
    if first is None or any(f is None for f in facts):
        return first
    update = {k: _largest([getattr(f, k) for f in facts])
              for k in ("memory_peak_bytes", "memory_reserved_peak_bytes", "host_rss_peak_bytes")}
    routers = [f.router_tokens_per_expert for f in facts]
    if all(r is not None for r in routers):
        shapes = {tuple(len(layer) for layer in r) for r in routers}
        update["router_tokens_per_expert"] = (
            [[sum(col) for col in zip(*layers)] for layers in zip(*routers)] if len(shapes) == 1 else routers[0])
    return first.model_copy(update=update)


def _facts(have: dict[int, CaseResult]):
    """:func:`merge_facts`, plus the group's communication (the largest node's) and the
    per-rank lists joined in rank order."""
    fs = [have[r].facts for r in sorted(have)]
    merged = merge_facts(fs)
    if any(f is None for f in fs):
        return merged

    def joined(key):
        pairs = []
        for f in fs:
            vals, rk = getattr(f, key), f.ranks
            if vals is None or rk is None or len(vals) != len(rk):
                return None
            pairs.extend(zip(rk, vals))
        return [v for _, v in sorted(pairs)]

    return merged.model_copy(update={
        "rank_memory_peak_bytes": joined("rank_memory_peak_bytes"),
        "rank_host_rss_peak_bytes": joined("rank_host_rss_peak_bytes"),
        "comm_s_per_step": _largest([f.comm_s_per_step for f in fs]),
        "comm_bytes_per_step": _largest([f.comm_bytes_per_step for f in fs]),
        "comm_exposed_s_per_step": _largest([f.comm_exposed_s_per_step for f in fs]),
        "param_rel_l2_vs_none": _largest([f.param_rel_l2_vs_none for f in fs]),
        "ranks": sorted(r for f in fs for r in (f.ranks or [])) or None,
    })


def _timing(have: dict[int, CaseResult]) -> Overheads:
    ts = [have[r].timing for r in sorted(have)]
    return Overheads(**{k: _largest([getattr(t, k) for t in ts]) for k in Overheads.model_fields})


def _collectors(have: dict[int, CaseResult]) -> dict:
    r0 = min(have)
    out = dict(have[r0].collectors)
    for r in sorted(have):
        if r != r0:
            out.update({f"node{r}/{k}": v for k, v in have[r].collectors.items()})
    return out


def _energy(have: dict[int, CaseResult]) -> Energy | None:
    es = [(f"node {r}", have[r].energy) for r in sorted(have)]
    if any(e is None for _, e in es):
        return None  # a node without energy: no honest sum
    return Energy.total(es)


# ------------------------------------------------------------ one machine's case result
def assemble(p, run, collection=None, segment: int = 0) -> CaseResult:
    """A case result of planned case ``p`` (:class:`hwbench.planning.Planned`) from what
    the launcher observed (``run``, a :class:`hwbench.launch.CaseRun`), the worker reported and the
    collectors measured. Pure: no clocks, no I/O."""
    o = run.outcome
    ts = o.timestamps if o is not None else {}
    timing: dict[str, float] = {}
    if run.status != "skipped":
        timing["wall_s"] = run.end - run.launch
    if "first_timed" in ts:
        timing.update({
            # launch -> first timed iteration: what isolation + setup + warmup cost
            "fixed_cost_s": ts["first_timed"] - ts["launch"],
            "launch_s": ts["worker_start"] - ts["launch"],
            "setup_s": ts["ready"] - ts["worker_start"],
            "warmup_s": ts["first_timed"] - ts["ready"],
        })
    flags: list[Flag] = list(o.flags) if o is not None else []
    extra: dict[str, Any] = {}
    if collection is not None:
        flags += list(collection.flags)
        extra = {"collectors": collection.collectors, "energy": collection.energy}
    ok = run.status == "ok" and o is not None
    return CaseResult(
        case_id=p.case.case_id,
        case=CaseIdentity(**p.case.to_dict()),
        segment=segment,
        status=run.status,
        reason=run.reason,
        device_name=p.device_name,
        device_resolved=p.device,
        measurement=o.measurement if ok else None,
        facts=o.facts if ok else None,
        timing=Overheads(**timing),
        flags=flags,
        **extra,
    )


def merge_repeats(runs: list, collections: list) -> tuple[Any, Any]:
    """One result (:class:`hwbench.launch.CaseRun`) from single-repeat workers of the
    same case. Pure.

    * Every worker ok: raw times are one list per worker (``repeat_isolation =
      "process"``), ``measured_s`` and generation times add up; the first worker's
      first-iteration time, warmup, accuracy and timestamps stand for the case; memory
      peaks are the largest of the workers', MoE router counts the sum over every
      worker's timed iterations (:func:`merge_facts`); flags of every worker are kept,
      without duplicates.
    * A worker that failed, ran out of memory or timed out: the case has that status,
      its reason prefixed with the repeat ("repeat 2/3: ...").
    * Collectors: the energy of every timed window is summed (windows and energy; the
      gaps between workers -- launch, setup, warmup -- are not in it); the first
      repeat's sampler summaries and time series stand for the case.
    """
    from .worker import Outcome

    last = runs[-1]
    first_launch = runs[0].launch
    if last.status != "ok" or last.outcome is None:
        k = len(runs)
        reason = f"repeat {k}: {last.reason}" if k > 1 else last.reason
        bad = dataclasses.replace(last, reason=reason, launch=first_launch)
        return bad, collections[-1]
    outs = [r.outcome for r in runs]
    ms = [o.measurement for o in outs]
    gen = all(m.ttft_s is not None for m in ms)
    measurement = ms[0].model_copy(update={
        "raw_times_s": [list(r) for m in ms for r in m.raw_times_s],
        "measured_s": sum(m.measured_s for m in ms),
        "ttft_s": [t for m in ms for t in m.ttft_s] if gen else None,
        "decode_s": [t for m in ms for t in (m.decode_s or [])] if gen and all(m.decode_s for m in ms) else None,
        "repeat_isolation": "process",
    })
    flags = tuple(dict.fromkeys(f for o in outs for f in o.flags))
    outcome = Outcome("ok", measurement=measurement, facts=merge_facts([o.facts for o in outs]), flags=flags,
                      timestamps=outs[0].timestamps)
    windows = [r.window for r in runs]
    window = (windows[0][0], windows[-1][1]) if all(windows) else None
    merged = dataclasses.replace(runs[0], outcome=outcome, window=window, end=last.end)
    return merged, _merge_collections(collections)


def _merge_collections(collections: list):
    """The collectors' view of single-repeat workers (see :func:`merge_repeats`)."""
    if not collections or collections[0] is None:
        return None
    from .collectors import CaseCollection

    first = collections[0]
    energy = first.energy
    es = [c.energy for c in collections]
    if energy is not None and all(e is not None and e.energy_source == energy.energy_source for e in es):
        cross = [e.energy_j_power_integrated for e in es]
        energy = energy.model_copy(update={
            "energy_j": sum(e.energy_j for e in es),
            "energy_window_s": sum(e.energy_window_s for e in es),
            "energy_j_power_integrated": sum(cross) if all(x is not None for x in cross) else None,
        })
    elif energy is not None:
        energy = None  # a repeat without energy (or from another source): no honest total
    flags = tuple(dict.fromkeys(f for c in collections for f in c.flags))
    return CaseCollection(first.collectors, energy, flags)

def merge_ranks(run):
    """A parallel case's group run (:func:`hwbench.launch.run_group`) with the outcome of
    its ranks: step by step the slowest rank's time, facts joined over the ranks
    (:func:`hwbench.parallel.report.merge`), and the timed window's edges. A run that
    already holds an outcome, or that is not ok, is returned as it is. Pure."""
    if run.status != "ok" or run.outcome is not None or not run.reports:
        return run
    from .parallel.report import merge, window_flags
    from .worker import Outcome

    m, facts, ts = merge(run.reports)
    outcome = Outcome("ok", measurement=m, facts=facts, flags=tuple(window_flags(run.reports)),
                      timestamps={"launch": run.launch, **ts})
    return dataclasses.replace(run, outcome=outcome, window=(ts["first_timed"], ts["window_end"]))
