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
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .records import CaseResult, Energy, Flag, NodePart, Overheads, RunRecord

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
