"""Report sections: one module per section, each registering what it adds.

A section module holds the analysis frames it shows and how they are drawn:

* a **view** (``hwbench report --view NAME``): a function of the per-case frame that
  returns its tables as :data:`Table` (title, frame, (column, header) pairs), drawn by
  :mod:`hwbench.report.views` in the terminal or as markdown (its first frame is the
  view's CSV / JSON). Registered with ``@VIEWS.register(name="NAME")``.
* a **page section** of the HTML report: a function that adds its heading, notes and
  figure-and-table pairs to a :class:`~hwbench.report.page.Page` from a
  :class:`Report`. Registered with ``@PAGE.register(name="NAME")``; the page draws
  them in the order of :data:`PAGE_MODULES`. Its tables, drawn through
  :meth:`~hwbench.report.page.Page.frame`, are kept as :data:`Table` too, so the
  terminal and markdown renderers draw any page section (``hwbench report
  --section NAME``, :func:`hwbench.report.views.section_tables`); figures are the
  HTML page's alone.

Adding a view is one new module here plus its name in :data:`VIEW_MODULES` (the
``--view`` choices are those names; each module registers the view of its own name);
adding a page section, one new module plus its name in :data:`PAGE_MODULES` (the
``--section`` choices).
Cells are formatted by :func:`hwbench.report.format.column`, the one formatter per
column of every output.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ...registry import Registry

# --view NAME: the module of this package that registers view NAME, in --help order
VIEW_MODULES = ("tradeoffs", "serving", "scaling", "pareto", "io")
# the HTML report's sections, in page order
PAGE_MODULES = ("machines", "headline", "tradeoffs", "size_scaling", "parallel", "serving", "feeding", "models",
                "not_ok")

# A table of a view: (title, frame, [(column, header)])
Table = tuple[Any, Any, list[tuple[str, str]]]

VIEWS: Registry[Callable[[Any], list[Table]]] = Registry("report view")
PAGE: Registry[Callable[..., None]] = Registry("report section")


def _load(modules: Sequence[str]) -> None:
    for m in modules:
        importlib.import_module(f"{__name__}.{m}")


def view(name: str) -> Callable[[Any], list[Table]]:
    """The view called ``name`` (its module imported on first use)."""
    _load(VIEW_MODULES)
    return VIEWS.get(name)


def page_sections() -> list[Callable[..., None]]:
    """The HTML report's section functions, in page order."""
    _load(PAGE_MODULES)
    return [PAGE.get(m) for m in PAGE_MODULES]


@dataclass(frozen=True)
class Report:
    """What every page section draws from: the per-case frame of
    :func:`hwbench.analysis.derive.load_results`, its (path, RunRecord) pairs, and the
    facts several sections share."""

    df: Any
    records: Sequence[tuple[Any, Any]]
    hosts: list[str]
    series_cases: Sequence[str] | None = None

    @property
    def ok(self):
        return self.df[self.df["status"] == "ok"]

    @property
    def several_runs(self) -> bool:
        return self.df["run_id"].nunique() > 1

    @property
    def run_col(self) -> list[tuple[str, str]]:
        """The run column of a table, where the report holds several runs."""
        return [("run_id", "run")] * self.several_runs


def run_column(df) -> list[tuple[str, str]]:
    """The (column, header) of the run, where ``df`` holds several runs."""
    return [("run_id", "run")] if df["run_id"].nunique() > 1 else []


def runs_said(df) -> str:
    """Where ``df`` holds several runs, the end of a title saying that each analysis
    keeps to one run; empty for one run."""
    n = df["run_id"].nunique()
    return f"; each of the {n} runs on its own (runs are never pooled)" if n > 1 else ""
