"""One self-contained HTML report: opens from ``file://`` on an air-gapped machine and can
be mailed.

The page (:mod:`.page`: template, CSS, tables) holds the registered sections of
:mod:`.sections` in their order (:data:`~hwbench.report.sections.PAGE_MODULES`); figures
(:mod:`.figures`) are drawn by matplotlib as inline SVG: no JavaScript, no fonts or
images to fetch, text that stays selectable and sharp when zoomed or printed (plotly's
interactivity would cost about 3 MB of inline JavaScript per file). The page carries a
Content-Security-Policy that forbids scripts and any fetch, so even a string that
escaped escaping could not run or phone home.

Every figure is drawn from the DataFrame shown in the table beside it (readable without
the picture), every table has its CSV, and the whole per-case frame of
:func:`hwbench.load_results` is embedded as CSV (a ``data:`` link, ``id="data-csv"``).

Safety: every string that comes from a results file (host names, suite and model names,
failure reasons, flag details) is escaped at the renderer, in one place
(:mod:`.escape`); only whitelisted characters of it reach a figure.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from ..analysis.derive import load_results_and_records
from ..errors import UserError
from ..results import write_text_atomic
from .escape import esc
from .page import CSV_NAME, Page, cases_csv, document
from .sections import Report, page_sections
from .table import machines


def render_html(df: pd.DataFrame, records: Sequence[tuple[Path, Any]], *, title: str | None = None,
                series_cases: Sequence[str] | None = None) -> str:
    """The report as one HTML document (a str). ``df``: :func:`hwbench.load_results` of
    ``records`` ((path, RunRecord) pairs, as :func:`hwbench.results.read_many` gives);
    ``series_cases``: case ids whose collector time series to draw (default: per model
    the ok case with the most samples)."""
    from ..version import __version__

    page = Page()
    rep = Report(df, records, [h for h, _ in machines(df)], series_cases)
    title = title or f"hwbench report: {', '.join(rep.hosts)}"
    files = list(dict.fromkeys(str(p) for p, _ in records))
    _header(page, df, files, __version__)
    for section in page_sections():
        section(page, rep)
    return document(title, page, files, __version__)


def _header(page: Page, df: pd.DataFrame, files: list[str], version: str) -> None:
    """Where the numbers come from, the embedded CSV, and whether energy is estimated."""
    ok = df[df["status"] == "ok"]
    page.add(f'<p class="note">{len(df)} cases ({len(ok)} ok) from {len(files)} results file'
             f'{"s" * (len(files) != 1)}: {", ".join(f"<code>{esc(f)}</code>" for f in files)}. '
             f'Built by hwbench {esc(version)}; every number below is derived from those files. '
             f'<a id="data-csv" download="{CSV_NAME}" href="data:text/csv;charset=utf-8;base64,'
             f'{base64.b64encode(cases_csv(df).encode()).decode("ascii")}">Download every case (CSV, '
             f"{len(df.columns)} columns)</a></p>")
    if (ok["energy_source"] == "estimated").any():
        page.add('<p class="note"><span class="flag">~ estimated energy</span> Some energy figures are estimates '
                 "(no energy counter on that machine), not measurements; they are marked in the tables.</p>")


def write_html(paths, out: str | Path, warn: Callable[[str], None] | None = None, **kwargs) -> tuple[int, int]:
    """Write the report of results ``paths`` to ``out`` (atomically); returns (cases,
    figures)."""
    df, records = load_results_and_records(paths, warn)
    if df.empty:
        raise UserError(f"{', '.join(map(str, paths))}: no cases in the results")
    text = render_html(df, records, **kwargs)
    write_text_atomic(out, text)
    return len(df), text.count('<figure>')
