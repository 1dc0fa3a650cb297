"""``hwbench report``: the per-case table, an analysis view, or the HTML report from
results files."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from ..report.sections import PAGE_MODULES, VIEW_MODULES
from ..report.text import clean
from .output import console, print_lines, split_columns, width


def _check_results_files(paths: tuple[str, ...]) -> None:
    """A named file that is not JSON (a suite file given by mistake) is 'not a results
    file', not a 'truncated' one."""
    for p in map(Path, paths):
        if not p.is_file():
            continue
        try:
            with open(p, "rb") as f:
                head = f.read(4096).lstrip()
        except OSError:
            continue
        if head and not head.startswith(b"{"):
            hint = f" (a suite file: run it with 'hwbench run {p}')" if p.suffix == ".toml" else ""
            raise UserError(f"{p}: not a results file{hint}")


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv", "json", "parquet"]), default="table",
              show_default=True, help="table fits the terminal; the others are never truncated (csv, json, parquet: "
              "raw numbers, units in the column names).")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False), help="Write to this file (parquet needs it).")
@click.option("--wide", is_flag=True, help="Every column (table: however wide; csv/json/parquet: all load_results columns).")
@click.option("--columns", "columns", metavar="A,B,...", help="These load_results columns, after the case id.")
@click.option("--view", type=click.Choice(VIEW_MODULES), default=None,
              help="An analysis instead of the per-case table: speed-up vs fp32 eager with the accuracy cost, batch, "
              "model-size and parallel (world-size) scaling, or Pareto fronts (table or markdown; csv/json: its raw "
              "frame).")
@click.option("--section", type=click.Choice(PAGE_MODULES), default=None,
              help="The tables of one section of the HTML report instead of the per-case table (table or markdown; "
              "csv/json: its first table's raw frame).")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the offline HTML report (figures, tables, embedded CSV) to FILE instead.")
def report(results: tuple[str, ...], fmt: str, output: str | None, wide: bool, columns: str | None,
           view: str | None, section: str | None, html_out: str | None) -> None:
    """Print the per-case table from RESULTS files (or folders of them), grouped by
    machine, with the run each row came from; or an analysis (--view), a section of the
    HTML report as text (--section), or the HTML report (--html FILE)."""
    from ..analysis.derive import load_results_and_records
    from ..report.table import check_columns
    from ..writable import output_file, write_error

    _check_results_files(results)
    _check_options(fmt, output, wide, columns, view, html_out, section)
    for option, path in (("--html", html_out), ("--output", output)):
        if path:
            output_file(path, option)
    if html_out:
        _write_html(results, html_out)
        return
    warnings: list[str] = []
    if any(Path(p).is_dir() for p in results) and not section:
        # folders grow night by night: read through the store's cache (a page section
        # also draws from the records, so it reads the files)
        from ..store import load_cases

        df, records = load_cases(list(results), warn=warnings.append), []
    elif not section:
        # files: read as streams, a case at a time (the table and views need the frame only)
        from ..analysis.frame import load_results

        df, records = load_results(list(results), warnings.append), []
    else:
        df, records = load_results_and_records(list(results), warnings.append)
    for w in warnings:
        click.echo(f"hwbench: warning: {clean(w)}", err=True)
    if df.empty:
        raise UserError(f"{', '.join(results)}: no cases in the results")
    cols = check_columns(df, split_columns(columns))
    tables = _tables(df, records, view, section) if view or section else None
    text = _render(df, fmt, output, wide, cols, tables)
    if text is None:  # parquet: written already
        return
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise write_error("--output", output, e) from None
        click.echo(f"wrote {len(df)} rows to {clean(output)}", err=True)
    elif fmt == "table":
        print_lines(console(), text.splitlines())
    else:
        click.echo(text, nl=False)


def _check_options(fmt: str, output, wide: bool, columns, view, html_out, section=None) -> None:
    """Options that do not go together: a usage error naming them."""
    if view and section:
        raise click.UsageError("--view and --section: give one")
    if html_out and (view or section or output or columns or wide):
        raise click.UsageError("--html writes the whole report: it does not go with --view, --output, --columns or --wide"
                               if not section else "--html writes the whole report: it does not go with --section")
    which = "--view" if view else "--section"
    if (view or section) and (columns or wide):
        raise click.UsageError(f"{which} shows its own columns: it does not go with --columns or --wide")
    if (view or section) and fmt == "parquet":
        raise click.UsageError(f"{which}: use --format table, markdown, csv or json")
    if fmt == "parquet" and not output and not html_out:
        raise click.UsageError("--format parquet needs --output FILE")


def _write_html(results: tuple[str, ...], html_out: str) -> None:
    from ..report.html import write_html
    from ..writable import write_error

    warnings: list[str] = []
    try:
        n, figures = write_html(list(results), html_out, warn=warnings.append)
    except OSError as e:
        raise write_error("--html", html_out, e) from None
    for w in warnings:
        click.echo(f"hwbench: warning: {clean(w)}", err=True)
    click.echo(f"wrote {clean(html_out)} ({n} cases, {figures} figures)", err=True)


def _tables(df, records, view: str | None, section: str | None) -> list:
    """The tables of ``view`` (a frame's analysis) or of page ``section`` (drawn from
    the records too), as (title, frame, columns)."""
    from ..report import sections as sec
    from ..report import views
    from ..report.table import machines

    if view:
        return views.view_sections(df, view)
    return views.section_tables(section, sec.Report(df, records, [h for h, _ in machines(df)]))


def _render(df, fmt: str, output, wide: bool, cols: list[str], sections: list | None) -> str | None:
    """The report as text in ``fmt`` (table: fitted to the terminal unless ``output``):
    ``sections``' tables where given (a view or page section), else the per-case table;
    parquet is written to ``output`` here and gives None."""
    from ..report.table import render_report, summary_table, to_markdown
    from ..writable import write_error

    if sections is not None:
        from ..report import views

        if fmt == "table":
            return "\n".join(views.render_terminal(sections, None if output else width())) + "\n"
        if fmt == "markdown":
            return views.render_markdown(sections)
        if fmt == "csv":
            return views.raw_frame(sections).to_csv(index=False)
        return views.raw_frame(sections).to_json(orient="records", date_format="iso", indent=1) + "\n"
    if fmt == "table":
        return "\n".join(render_report(df, None if output else width(), wide=wide, columns=cols)) + "\n"
    if fmt == "markdown":
        return to_markdown(df, wide=wide, columns=cols)
    if fmt == "csv":
        out = summary_table(df, wide=wide, columns=cols)
        if "quality_flags" in out:
            out["quality_flags"] = out["quality_flags"].map(lambda v: ",".join(v) if isinstance(v, list) else "")
        return out.to_csv(index=False)
    if fmt == "json":
        return summary_table(df, wide=wide, columns=cols).to_json(orient="records", date_format="iso", indent=1) + "\n"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UserError("--format parquet needs pyarrow: pip install pyarrow") from None
    try:
        summary_table(df, wide=True, columns=cols).to_parquet(output, index=False)
    except OSError as e:
        raise write_error("--output", output, e) from None
    click.echo(f"wrote {len(df)} rows to {clean(output)}", err=True)
    return None


COMMANDS = (report,)
