"""``hwbench list``: the reference models, the shipped suites, the device kinds or the
peaks."""

from __future__ import annotations

import json

import click

from ..report.text import clean
from .output import console, print_lines, width


@click.command("list")
@click.argument("what", type=click.Choice(["models", "suites", "devices", "peaks"]), default="models",
                metavar="[models|suites|devices|peaks]")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
def list_(what: str, fmt: str) -> None:
    """List reference models (family:size), the shipped suites, the device kinds
    (present or why not, samplers, energy sources, backend, peak source), or the peaks
    MFU is measured against (accelerator datasheet rows and CPU microarchitectures,
    with sources)."""
    if what == "peaks":
        from .peaks_listing import show

        show(fmt)
        return
    from ..report import format as fm
    from ..report.fit import Column, fit

    if what == "devices":
        from .devices_list import render

        render(fmt)
        return

    if what == "models":
        from .. import models

        rows = models.catalogue()
        if fmt == "json":
            click.echo(json.dumps(rows, indent=1))
            return
        if fmt == "csv":
            import pandas as pd

            flat = [{**r, "modes": ",".join(r["modes"]),
                     "default_shape": ",".join(f"{k}={v}" for k, v in r["default_shape"].items())} for r in rows]
            click.echo(pd.DataFrame(flat).to_csv(index=False), nl=False)
            return
        for r in rows:
            r["_shape"] = " ".join(f"{'seq' if k == 'seq_len' else 'img'}{v}" for k, v in r["default_shape"].items())
            r["_active"] = fm.count(r["active_params"]) if r["active_params"] != r["params"] else ""
        cols = [
            Column("name", "model", str, priority=0, align="left"),
            Column("params", "params", fm.count, priority=0),
            Column("_active", "active", str, priority=1),
            Column("modes", "modes", lambda v: ",".join(v), priority=1, align="left"),
            Column("_shape", "shape", str, priority=2, align="left"),
            Column("description", "description", str, priority=3, align="left", shrink=True, min_width=20),
        ]
        con = console()
        print_lines(con, ["reference models (hwbench run: models = [\"family:size\"])"], style="bold")
        print_lines(con, fit(rows, cols, width()).lines)
        return
    from ..spec import SHIPPED, load_suite, shipped_suites

    rows = []
    for p in shipped_suites():
        s = load_suite(p)
        rows.append({"name": p.stem, "cases": len(s.cases), "description": s.spec.suite.description, "path": str(p)})
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    if fmt == "csv":
        import pandas as pd

        click.echo(pd.DataFrame(rows).to_csv(index=False), nl=False)
        return
    cols = [Column("name", "name", str, priority=0, align="left"), Column("cases", "cases", str, priority=0),
            Column("description", "description", str, priority=1, align="left", shrink=True, min_width=20)]
    con = console()
    print_lines(con, [clean(f"suites in {SHIPPED} (run one by name: hwbench run smoke)")], style="bold")
    print_lines(con, fit(rows, cols, width()).lines)



COMMANDS = (list_,)
