"""Terminal and markdown rendering of report views (``hwbench report --view``): the
same analysis frames as the HTML report (:mod:`hwbench.analysis.tradeoffs`,
:mod:`hwbench.analysis.scaling`), for pull-request comments and CI logs. Each view is a
module of :mod:`hwbench.report.sections` that registers its tables; any view's tables
are drawn here:

* ``tradeoffs``: speed-up of each precision / backend / variant against fp32 eager,
  with the energy ratio and the accuracy cost (output deviation), summarised and per case;
* ``scaling``: throughput against batch size with the knee, per curve, model-size
  power-law fits and, where cases ran as a torchrun group, the parallel scaling curves
  (group throughput against world size) and the parameter server against allreduce side
  by side (the default report shows these two too);
* ``pareto``: per model, the cases on the front of throughput (max) and energy per
  sample (min), and of those two plus the output deviation (min).
"""

from __future__ import annotations

import textwrap
from typing import Sequence

import pandas as pd

from . import format as fm
from .fit import Column, fit
from .page import Page
from .sections import PAGE, PAGE_MODULES, Report, Table, page_sections, view
from .text import clean, md


def view_sections(df: pd.DataFrame, name: str) -> list[Table]:
    """The tables of view ``name`` (see the module docstring), as raw frames with the
    columns to show and their headers; an unknown name is a UserError."""
    return view(name)(df)


def section_tables(name: str, rep: Report) -> list[Table]:
    """The tables page section ``name`` draws from ``rep``, as the terminal and markdown
    renderers draw them; a section that draws no table gives one empty table titled by
    its heading (printed as "(none)"). An unknown name is a UserError."""
    draw = dict(zip(PAGE_MODULES, page_sections()))
    if name not in draw:
        PAGE.get(name)  # the UserError naming the allowed and the closest
    page = Page()
    draw[name](page, rep)
    if page.frames:
        return page.frames
    return [(page.heading() or f"{name}: nothing to show in these results", pd.DataFrame(), [])]


def _columns(cols: Sequence[tuple[str, str]], df: pd.DataFrame) -> list[Column]:
    text = {c for c, _ in cols if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])}
    lead = 3 if cols and cols[0][0] == "run_id" else 2  # the run column comes on top of the first two
    # a per-case speed-up is the number the table is for: shown, the baseline's id cut
    # before the case's (it differs from the case only in precision / backend / variant)
    must = {"speedup"} if "baseline_case_id" in {c for c, _ in cols} else set()
    return [Column(c, h, fm.column(c), priority=0 if i < lead or c in must else 1 + i, align="left" if c in text else "right",
                   shrink=c in ("baseline_case_id", "workload") or (c == "case_id" and not must), min_width=20)
            for i, (c, h) in enumerate(cols)]


def render_terminal(sections: list[Table], width: int | None) -> list[str]:
    """Each section: its title (wrapped at ``width``), then its table fitted to it."""
    out: list[str] = []
    for title, df, cols in sections:
        if out:
            out.append("")
        out += _wrap(clean(title), width)
        cols = [(c, h) for c, h in cols if c in df]
        if df.empty:
            out.append("  (none)")
            continue
        f = fit(df.to_dict("records"), _columns(cols, df), width)
        out += [clean(line) for line in f.lines]
        if f.hidden:
            note = f"not shown for width: {', '.join(f.hidden)} (--format markdown shows every column)"
            out += _wrap(clean(note), width)
    return out


def _wrap(text: str, width: int | None) -> list[str]:
    """A title or note in lines of at most ``width`` cells (None: one line)."""
    if not width:
        return [text]
    return textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False) or [""]


def render_markdown(sections: list[Table]) -> str:
    out: list[str] = []
    for title, df, cols in sections:
        out.append(f"### {md(title)}\n")
        cols = [(c, h) for c, h in cols if c in df]
        if df.empty:
            out += ["(none)", ""]
            continue
        spec = _columns(cols, df)
        out.append("| " + " | ".join(md(c.header) for c in spec) + " |")
        out.append("|" + "|".join("---:" if c.align == "right" else ":---" for c in spec) + "|")
        for r in df.to_dict("records"):
            out.append("| " + " | ".join(md(c.cell(r)) for c in spec) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def raw_frame(sections: list[Table]) -> pd.DataFrame:
    """CSV / JSON of a view: the first (main) section's frame with raw numbers."""
    _, df, _ = sections[0]
    return df

