"""``hwbench list devices``: every device kind of the accelerator layer, whether it is
present here (or why not), its samplers and energy sources, distributed backend,
timer, and where its peaks come from."""

from __future__ import annotations

import textwrap
from typing import Any


def rows() -> list[dict[str, Any]]:
    """One row per registered kind, in registration order. ``peak_source`` names the
    datasheet or formula hwbench.peaks gives the kind's first present device (fp32),
    or, for an absent kind, where its peaks would come from."""
    from .. import devices, peaks

    found = devices.discover_all()
    env: dict[str, Any] | None = None
    out = []
    for name, acc in devices.KINDS.items():
        d = found[name]
        peak_source = acc.peak_source
        if d.present:
            if env is None:
                from ..env import fingerprint

                env = fingerprint()
            p = peaks.peak(name, d.devices[0].model, "fp32", env=env)
            peak_source = p.source or p.reason or peak_source
        out.append({
            "kind": name, "label": acc.label, "vendor": acc.vendor, "present": d.present,
            "devices": [x.name for x in d.devices], "models": [x.model for x in d.devices],
            "reason": d.reason, "samplers": list(acc.samplers), "energy_sources": list(acc.energy_sources),
            "energy_note": getattr(acc, "power_note", None), "dist_backend": acc.dist_backend,
            "parallel": acc.parallel, "timer": acc.timer, "peak_source": peak_source,
        })
    return out


def render(fmt: str) -> None:
    import json

    import click

    data = rows()
    if fmt == "json":
        click.echo(json.dumps(data, indent=1))
        return
    if fmt == "csv":
        import pandas as pd

        flat = [{k: ";".join(map(str, v)) if isinstance(v, list) else v for k, v in r.items()} for r in data]
        click.echo(pd.DataFrame(flat).to_csv(index=False), nl=False)
        return
    from ..report.fit import Column, fit
    from .output import console, print_lines, width

    for r in data:
        r["_here"] = ", ".join(r["devices"]) if r["present"] else "no"
        r["_energy"] = ", ".join(r["energy_sources"]) or "none"
    cols = [
        Column("kind", "kind", str, priority=0, align="left"),
        Column("_here", "present", str, priority=0, align="left", shrink=True, min_width=7),
        Column("dist_backend", "backend", str, priority=0, align="left"),
        Column("_energy", "energy sources", str, priority=1, align="left", shrink=True, min_width=12),
        Column("peak_source", "peaks from", str, priority=2, align="left", shrink=True, min_width=12),
    ]
    con = console()
    w = width()
    print_lines(con, ["device kinds (a suite's devices = [\"<kind>\"]; docs/accelerators.md)"], style="bold")
    print_lines(con, fit(data, cols, w).lines)
    # a present kind's peak source is a sentence about this machine: whole in the notes
    notes = [f"{r['kind']} peaks: {r['peak_source']}" for r in data if r["present"]]
    notes += [f"{r['kind']}: {r['reason']}" for r in data if not r["present"]]
    notes += [f"{r['kind']} energy: {r['energy_note']}" for r in data if r["energy_note"]]
    print_lines(con, [""] + [line for n in notes for line in textwrap.wrap(n, w, subsequent_indent="  ")])
