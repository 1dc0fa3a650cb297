"""HTML section "Headline": per machine, every case's headline numbers (the columns of
the terminal's per-case table)."""

from __future__ import annotations

from ..escape import esc
from ..page import Page
from ..table import flops_unit, headline_columns, machines
from . import PAGE, Report


@PAGE.register(name="headline")
def headline_section(page: Page, rep: Report) -> None:
    page.section("Headline", key="headline")
    for host, g in machines(rep.df):
        cols = headline_columns(False, flops_unit(g), status=True, reason=False)
        rows = g.to_dict("records")
        runs = g["run_id"].nunique() > 1  # the same case in several runs: say which run each row is
        body = "".join("<tr>" + f'<td class="t">{esc(r["case_id"])}</td>' +
                       (f'<td class="t">{esc(str(r["run_id"])[:8])}</td>' if runs else "") +
                       "".join(f'<td class="{"t" if c.align == "left" else "n"}">{esc(c.cell(r))}</td>' for c in cols)
                       + "</tr>" for r in rows)
        head = '<th class="t">case</th>' + ('<th class="t">run</th>' if runs else "") + "".join(
            f'<th class="{"t" if c.align == "left" else "n"}">{esc(c.header)}</th>' for c in cols)
        page.frames.append((f"Headline / {host}", g, [("case_id", "case"), *[("run_id", "run")] * runs,
                                                       *[(c.key, c.header) for c in cols]]))
        page.add(f"<h3>{esc(host)}</h3>")
        page.add(f'<div class="tbl"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')
    page.add('<p class="note">p50 / p90: per-iteration latency; samples/s = batch (a parallel case: the '
             "group's) / median latency; tokens/s: generated tokens for generate, batch × seq_len / median latency "
             "for infer and train; ~ marks estimated energy.</p>")
