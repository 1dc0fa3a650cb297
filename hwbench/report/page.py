"""The HTML page: its template (head with the Content-Security-Policy, contents line,
CSS), the :class:`Page` that sections add their headings, notes and figure-and-table
pairs to, and the HTML table every section draws (cells formatted by
:func:`~hwbench.report.format.column`, escaped by :mod:`.escape`). A page also keeps
every table drawn through :meth:`Page.frame` as a frame with its title and columns
(:attr:`Page.frames`): what the terminal and markdown renderers draw of a section."""

from __future__ import annotations

import base64
import html
import re
from typing import Sequence

import pandas as pd

from . import format as fm
from .escape import esc, slug

CSV_NAME = "hwbench-cases.csv"
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'none'; base-uri 'none'; form-action 'none'"


def _csv_uri(df: pd.DataFrame) -> str:
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].map(lambda v: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
    data = out.to_csv(index=False).encode("utf-8")
    return "data:text/csv;charset=utf-8;base64," + base64.b64encode(data).decode("ascii")


def cases_csv(df: pd.DataFrame) -> str:
    """The per-case frame as the CSV the page embeds (quality flags joined by commas)."""
    out = df.copy()
    out["quality_flags"] = out["quality_flags"].map(lambda v: ",".join(v) if isinstance(v, (list, tuple)) else "")
    return out.to_csv(index=False)


def html_table(df: pd.DataFrame, columns: Sequence[tuple[str, str]] | None = None, *, csv_name: str | None = None,
               caption: str = "", cls: str = "") -> str:
    """``df`` as an HTML table with human-formatted, escaped cells; ``columns``:
    (column, header) pairs (default: every column, named as in the frame); a link to
    the raw frame as CSV when ``csv_name`` is given."""
    cols = list(columns) if columns is not None else [(c, c) for c in df.columns]
    cols = [(c, h) for c, h in cols if c in df.columns]
    fmts = [fm.column(c) for c, _ in cols]  # one formatter per column, as the terminal's
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c, _ in cols]
    head = "".join(f'<th class="{"n" if n else "t"}">{esc(h)}</th>' for (_, h), n in zip(cols, numeric))
    body = []
    for r in df.itertuples(index=False):
        rd = dict(zip(df.columns, r))
        cells = "".join(f'<td class="{"n" if n else "t"}">{esc(f(rd[c]))}</td>' for (c, _), f, n in zip(cols, fmts, numeric))
        body.append(f"<tr>{cells}</tr>")
    link = ""
    if csv_name:
        link = (f'<a class="csv" download="{esc(csv_name)}" href="{_csv_uri(df[[c for c, _ in cols]])}">'
                f"CSV ({len(df)} rows)</a>")
    cap = f"<caption>{caption} {link}</caption>" if caption or link else ""
    return (f'<div class="tbl {cls}"><table>{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2430;background:#fff}
main{max-width:1280px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #dde3ea;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}p.note,figcaption,.muted{color:#5b6675;font-size:12.5px}
nav{background:#f5f7fa;border:1px solid #dde3ea;border-radius:6px;padding:8px 12px;font-size:13px}
nav a{margin-right:12px;white-space:nowrap}
.pair{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start;margin:8px 0 16px}
.pair>figure{flex:1 1 460px;max-width:640px;margin:0;min-width:0}.pair>.tbl{flex:1 1 480px}
figure svg{width:100%;height:auto;display:block}
.tbl{overflow:auto;max-height:460px;border:1px solid #e3e8ee;border-radius:4px;min-width:0}
table{border-collapse:collapse;font-size:12px;width:100%}
caption{text-align:left;padding:4px 6px;font-size:12px;color:#5b6675;caption-side:top}
th,td{padding:3px 7px;border-bottom:1px solid #eef1f4;vertical-align:top}
th{background:#f5f7fa;position:sticky;top:0;text-align:left;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.t{white-space:nowrap}.wrap td.t{white-space:normal;overflow-wrap:anywhere}
a.csv{margin-left:8px;font-size:11.5px}
.flag{display:inline-block;background:#fff4d6;border:1px solid #f0d48a;border-radius:3px;padding:0 5px;margin:1px;font-size:12px}
.bad{background:#fde8e8;border-color:#f5b5b5}
details{margin:6px 0 12px}summary{cursor:pointer;color:#2557a7}
"""


class Page:
    """The page being built: its parts, contents (id, title, level), ids in use and
    number of figures."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.toc: list[tuple[str, str, int]] = []
        self.ids: set[str] = set()
        self.figures = 0
        # every table drawn, as (title, frame, [(column, header)]): the section as text
        self.frames: list[tuple[str, pd.DataFrame, list[tuple[str, str]]]] = []
        self._headings: dict[int, str] = {}
        self._last: tuple[str, bool] | None = None  # the last frame's HTML, and whether it was titled

    def section(self, title: str, level: int = 2, key: str | None = None) -> None:
        self._headings = {k: v for k, v in self._headings.items() if k < level} | {level: title}
        i = slug(key or title, self.ids)
        self.toc.append((i, title, level))
        self.parts.append(f'<h{level} id="{i}">{esc(title)}</h{level}>')

    def add(self, s: str) -> None:
        self.parts.append(s)

    def tables(self, title: str, tables: Sequence[tuple[str, pd.DataFrame, list[tuple[str, str]]]], key: str) -> None:
        """A section of a view's tables (:data:`hwbench.report.sections.Table`, as the
        terminal and markdown draw them): its heading, then each table with its title
        as caption and its CSV."""
        self.section(title, key=key)
        for i, (caption, df, cols) in enumerate(tables):
            self.add(self.frame(df, cols, title=caption, caption=esc(caption),
                                csv_name=f"{slug(key, set())}-{i + 1}.csv"))

    def heading(self) -> str:
        """The headings the page is under (section, then sub-section)."""
        return " / ".join(self._headings[k] for k in sorted(self._headings))

    def frame(self, df: pd.DataFrame, columns: Sequence[tuple[str, str]] | None = None, *, title: str = "",
              **kwargs) -> str:
        """:func:`html_table` of ``df``, the table also kept in :attr:`frames` for the
        text renderers. Its title: ``title``, else the headings with the table's caption
        (or, for a figure's table, the figure's caption: see :meth:`pair`)."""
        cols = list(columns) if columns is not None else [(c, c) for c in df.columns]
        self.frames.append((title or ": ".join(x for x in (self.heading(), _text(kwargs.get("caption", ""))) if x),
                            df, cols))
        out = html_table(df, cols, **kwargs)
        self._last = (out, bool(title))
        return out

    def pair(self, svg: str, caption: str, table: str) -> None:
        if self._last is not None and self._last == (table, False):  # its table's title: the figure's caption
            t, df, cols = self.frames[-1]
            self.frames[-1] = (f"{self.heading()}: {_text(caption)}", df, cols)
        self.figures += 1
        self.parts.append(f'<div class="pair"><figure>{svg}<figcaption>{caption}</figcaption></figure>{table}</div>')


def _text(markup: str) -> str:
    """A caption's HTML as plain text."""
    return html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"<sup>(.*?)</sup>", r"^\1", markup))).strip()


def document(title: str, page: Page, files: Sequence[str], version: str) -> str:
    """The whole HTML document of ``page``: head, contents line, the sections' parts and
    the line saying how to regenerate it from ``files``."""
    toc = "".join(f'<a href="#{i}">{esc(t)}</a>' if lvl == 2 else "" for i, t, lvl in page.toc)
    models = " ".join(f'<a href="#{i}">{esc(t)}</a>' for i, t, lvl in page.toc if lvl == 3)
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="hwbench {esc(version)}">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>"
            f"<h1>{esc(title)}</h1><nav>{toc}<br><span class=\"muted\">models:</span> {models}</nav>"
            + "\n".join(page.parts) +
            f'<p class="note" data-figures="{page.figures}">{page.figures} figures. Regenerate with '
            f"<code>hwbench report {esc(' '.join(files))} --html FILE</code>.</p>"
            "</main></body></html>\n")
