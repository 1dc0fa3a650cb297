"""``hwbench query``: SQL (DuckDB) over results files and folders, through the store's
Parquet cache (:mod:`hwbench.store`; docs/store.md)."""

from __future__ import annotations

import os
from pathlib import Path

import click

WIDTH = 80  # the table's width: read in CI logs and terminals alike

QUERY_EPILOG = """\b
Tables (join on results_file, run_id, case_id, segment):
  runs      one row per results file (run)
  segments  one row per start or resume, with its environment
  cases     the columns of `hwbench report --format csv --wide`
  samples   raw timed values (s): case_id, repeat, iteration, time_s
  series    collector readings: case_id, sampler, reading, t_s, metric,
            value
\b
Example:
  hwbench query "select device_name, median(latency_ms_p50) from cases
    where model = 'mlp:small' group by all" results/
"""


@click.command(epilog=QUERY_EPILOG)
@click.argument("sql")
@click.argument("results", nargs=-1, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table",
              show_default=True, help="table fits 80 columns (or the terminal); csv, json and parquet hold "
              "every column and row, raw numbers.")
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the result to FILE (parquet needs it).")
@click.option("--cache", "cache", type=click.Path(file_okay=False), metavar="DIR",
              help="The store's cache folder [default: $HWBENCH_CACHE, else $XDG_CACHE_HOME/hwbench/store].")
def query(sql: str, results: tuple[str, ...], fmt: str, out: str | None, cache: str | None) -> None:
    """Run SQL over the tables of RESULTS files or folders (default: ./results).
    Each file is parsed once; later queries read the cache."""
    import duckdb

    from ..errors import UserError
    from ..report.text import clean
    from ..store import Store, connect
    from ..writable import output_file

    if fmt == "parquet" and not out:
        raise click.UsageError("--format parquet needs --out FILE")
    if out:
        output_file(out, "--out")
    if not results:
        if not Path("results").is_dir():
            raise UserError("RESULTS: give results files or folders (there is no ./results folder)")
        results = ("results",)
    warnings: list[str] = []
    store = Store(cache, warn=warnings.append)
    try:
        con = connect(store, store.entries(list(results)))
        for w in warnings:
            click.echo(f"hwbench: warning: {clean(w)}", err=True)
        try:
            rel = con.sql(sql)
            df = rel.df() if rel is not None else None
        except duckdb.Error as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"query: {first}") from None
        if df is None:
            return
        _emit(con, df, fmt, out)
    finally:
        store.close()


def _emit(con, df, fmt: str, out: str | None) -> None:
    """The result in ``fmt``, to ``out`` (whole or not at all) or stdout."""
    from ..report.text import clean
    from ..results import write_text_atomic
    from ..writable import write_error

    if fmt == "parquet":
        tmp = Path(out).with_name(f".{Path(out).name}.{os.getpid()}.tmp")
        try:
            con.register("result", df)
            con.execute(f"COPY result TO '{str(tmp).replace(chr(39), chr(39) * 2)}' (FORMAT parquet)")
            os.replace(tmp, out)
        except OSError as e:
            raise write_error("--out", out, e) from None
        finally:
            tmp.unlink(missing_ok=True)
        click.echo(f"wrote {len(df)} rows to {clean(out)}", err=True)
        return
    if fmt == "csv":
        text = df.to_csv(index=False)
    elif fmt == "json":
        text = df.to_json(orient="records", date_format="iso", indent=1) + "\n"
    else:
        text = "\n".join(table(df, WIDTH)) + "\n"
    if out:
        try:
            write_text_atomic(out, text)
        except OSError as e:
            raise write_error("--out", out, e) from None
        click.echo(f"wrote {len(df)} rows to {clean(out)}", err=True)
    else:
        click.echo(text, nl=False)


def table(df, width: int = 80, max_cell: int = 32) -> list[str]:
    """``df`` as text lines no wider than ``width``: each column formatted by
    :func:`hwbench.report.format.column` (units from the name), cells cut at
    ``max_cell`` characters, columns that do not fit left out with a note."""
    from ..report.format import column, plain
    from ..report.text import clean

    def cut(s: str) -> str:
        s = clean(s)
        return s if len(s) <= max_cell else s[: max_cell - 1] + "…"

    def fmt(f, v) -> str:
        try:
            return f(v)
        except (TypeError, ValueError):  # a column whose name suggests a unit it does not hold
            return plain(v)

    cols, used, left = [], 0, []
    for name in df.columns:
        f = column(str(name)) if _numeric(df[name]) or str(name) in ("created", "quality_flags") else plain
        cells = [cut(fmt(f, v)) for v in df[name].tolist()]
        w = max([len(cut(str(name))), *map(len, cells)])
        if used + w + (2 if cols else 0) > width and cols:
            left.append(str(name))
            continue
        if left:
            left.append(str(name))
            continue
        cols.append((cut(str(name)), cells, w, _numeric(df[name])))
        used += w + (2 if len(cols) > 1 else 0)
    lines = ["  ".join(h.rjust(w) if num else h.ljust(w) for h, _, w, num in cols).rstrip()]
    for i in range(len(df)):
        lines.append("  ".join(c[i].rjust(w) if num else c[i].ljust(w) for _, c, w, num in cols).rstrip())
    lines.append(f"({len(df)} row{'s' if len(df) != 1 else ''})")
    if left:
        import textwrap

        names = ", ".join(left[:6]) + (f" and {len(left) - 6} more" if len(left) > 6 else "")
        lines += textwrap.wrap(f"not shown: {names} (select fewer columns, or --format csv)", width)
    return lines


def _numeric(s) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


COMMANDS = (query,)
