"""HTML section "Machines and environments": each machine, each run segment's
environment, the runs, and the quality flags counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ...analysis import tradeoffs as tr
from .. import format as fm
from ..escape import esc
from ..page import Page
from ..table import MACHINE_FLAGS, runs_of
from . import PAGE, Report


@PAGE.register(name="machines")
def machines_section(page: Page, rep: Report) -> None:
    df = rep.df
    page.section("Machines and environments", key="machines")
    page.add(page.frame(tr.machine_summary(df), csv_name="machines.csv", cls="wrap"))
    env = _env_rows(rep.records)
    if len(env):
        page.add(page.frame(env.T.reset_index().set_axis(["field", *[f"run {str(r)[:8]} seg {s}" for r, s in
                                                                      zip(env["run_id"], env["segment"])]], axis=1),
                            caption="Environment of each run segment", cls="wrap"))
    runs = pd.DataFrame([{"run": r.short_id, "suite": r.suite, "created": r.created, "status": r.status,
                          "cases ok": f"{r.n_ok}/{r.n_cases}", "results file": r.results_file} for r in runs_of(df)])
    page.add(page.frame(runs, caption="Runs"))
    page.add("<h3>Quality flags</h3>" + _flag_html(df))


def _env_rows(records: Sequence[tuple[Path, Any]]) -> pd.DataFrame:
    """One row per segment of every run: the environment that measured its cases."""
    rows = []
    for path, rec in records:
        # a joined multi-node run: every node's segments (node 0's are also rec.segments)
        segs = [(f" node {n.node_rank}", seg) for n in rec.nodes for seg in n.segments] or \
            [("", seg) for seg in rec.segments]
        for node, seg in segs:
            e = seg.environment
            col = seg.collectors
            idle = seg.idle_baseline
            rows.append({
                "hostname": e.hostname, "run_id": rec.run_id, "segment": f"{seg.index}{node}",
                "cpu_model": e.cpu_model, "cpu_cores": f"{e.cpu_cores_physical or ''} physical / {e.cpu_cores_logical or ''} logical",
                "cpu_freq_max": f"{fm.mhz(e.cpu_freq_max_mhz)} ({e.cpu_freq_max_source})" if e.cpu_freq_max_mhz
                else "unknown (MFU needs it)",
                "cpu_governor": " / ".join(x for x in (e.cpu_governor, {True: "boost on", False: "boost off"}
                                                         .get(e.cpu_boost)) if x) or "not exposed",
                "memory_total": fm.nbytes(e.memory_total_bytes),
                "gpus": "; ".join(f"{g.name} ({fm.nbytes(g.memory_total_bytes)})" for g in e.accelerators),
                "driver": " / ".join(v for v in (e.driver_version, e.cuda_driver_version) if v),
                "os": e.os, "python_version": e.python_version, "torch_version": e.torch_version,
                "hwbench_version": e.hwbench_version, "git_commit": (e.hwbench_git_commit or "")[:12],
                "collectors": ", ".join(col.active) if col else "",
                "collectors_unavailable": "; ".join(f"{k}: {v}" for k, v in col.unavailable.items()) if col else "",
                "idle_power_w": ", ".join(f"{k} {fm.power_w(v)} ({idle.energy_source.get(k, '')})"
                                          for k, v in idle.power_w.items()) if idle else "",
                "idle_flags": ", ".join(f.flag for f in idle.flags) if idle else "",
                "env_changes": "; ".join(seg.env_changes),
                "machine_profile": seg.machine_profile.profile_id if seg.machine_profile else "",
            })
    return pd.DataFrame(rows)


def _flag_html(df: pd.DataFrame) -> str:
    """Every quality flag with its count and one example's reason."""
    counts: dict[str, list[int]] = {}
    for i, fl in enumerate(df["quality_flags"]):
        for f in fl if isinstance(fl, (list, tuple)) else ():
            counts.setdefault(f, []).append(i)
    if not counts:
        return '<p class="note">No quality flags.</p>'
    items = []
    for f, idx in sorted(counts.items(), key=lambda kv: -len(kv[1])):
        r = df.iloc[idx[0]]
        detail = ""
        for part in str(r["flag_details"] if not fm.missing(r["flag_details"]) else "").split("; "):
            if part.startswith(f + ": "):
                detail = part[len(f) + 2:]
                break
        what = "machine-level" if f in MACHINE_FLAGS else "per case"
        items.append(f'<li><span class="flag">{esc(f)}</span> in {len(idx)} of {len(df)} cases ({what}); '
                     f'e.g. <code>{esc(r["case_id"])}</code>: {esc(detail)}</li>')
    return "<ul>" + "".join(items) + "</ul>"
