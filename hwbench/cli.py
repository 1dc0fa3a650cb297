"""The command line. User errors become one line on stderr and exit code 2."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

from .errors import UserError
from .report.text import clean, literal


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


class _Group(click.Group):
    """Maps UserError to a one-line message and exit code 2 for every command."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"hwbench: error: {clean(e)}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hwbench")
def cli() -> None:
    """hwbench: hardware-aware benchmarks for deep learning (speed, energy, cost)."""


def main(argv: list[str] | None = None) -> None:
    """The console script: usage errors are one line and exit code 2, like UserError."""
    try:
        rc = cli.main(args=argv, prog_name="hwbench", standalone_mode=False)
    except click.UsageError as e:
        hint = f" (see: hwbench {e.ctx.info_name if e.ctx and e.ctx.parent else ''} --help)".replace("  ", " ")
        click.echo(f"hwbench: error: {clean(e.format_message())}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"hwbench: error: {clean(e.format_message())}", err=True)
        sys.exit(e.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("hwbench: interrupted", err=True)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)


# ----------------------------------------------------------------------------- run
RUN_EPILOG = """\b
Exit codes:
  0    every case ran ok (or was skipped while others ran); also a resume
       with nothing left to do
  2    user error: the suite, a results file, an argument; a suite of which
       nothing can run on this machine; the results file cannot be written
  3    some case failed, ran out of memory or timed out
  130  interrupted by Ctrl-C (finished cases saved; resume with --resume)
  143  terminated by SIGTERM (likewise)
"""


@cli.command(epilog=RUN_EPILOG)
@click.argument("suite")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Folder for the results file.  [default: results]")
@click.option("--filter", "filters", multiple=True, metavar="EXPR", help="Run only matching cases: a glob on case_id, or field=glob[,field=glob]. Repeatable (any matches).")
@click.option("--dry-run", is_flag=True, help="List the cases (and skips with reasons); run nothing. With --resume: what is left.")
@click.option("--resume", "resume", type=click.Path(dir_okay=False), metavar="RESULTS", help="Continue an interrupted run in this results file.")
@click.option("--allow-env-change", is_flag=True, help="Resume even though torch / hwbench / Python / driver versions changed (recorded in the file).")
@click.option("--grace-s", default=10.0, show_default=True, type=click.FloatRange(min=0),
              help="After SIGTERM, how long the running case may go on before it is abandoned, s.")
def run(suite: str, out_dir: str | None, filters: tuple[str, ...], dry_run: bool, resume: str | None,
        allow_env_change: bool, grace_s: float) -> None:
    """Run a SUITE (a suite file, or the name of a shipped suite such as 'smoke')
    and write one results file."""
    import os

    from . import api

    if resume and out_dir is not None:
        raise click.UsageError("--out and --resume exclude each other: a resume writes the file it continues")
    con = _console()
    if dry_run:
        p = api.plan_run(suite, resume=resume, filters=filters)
        _print_plan(con, p)
        return
    reporter = _RichReporter(con)
    try:
        out = api.run_suite(suite, out_dir=out_dir or "results", resume=resume, filters=filters, reporter=reporter,
                            allow_env_change=allow_env_change, grace_s=grace_s,
                            fault=os.environ.get("HWBENCH_INJECT_FAULT"))
    finally:
        reporter.stop()  # the terminal is restored whatever happened
    nothing_done = out.exit_code == 0 and bool(out.message)
    if out.record is not None and out.record.cases and not nothing_done:
        _print_summary(con, out.record, out.path)
    if out.message:
        stream = _console(stderr=out.exit_code not in (0,))
        stream.print(literal(out.message))
    sys.exit(out.exit_code)


def _print_plan(con, p) -> None:
    from rich.table import Table

    from .api import skip_summary

    todo_ids = {x.case.case_id for x in p.todo}
    rows = [x for x in p.planned if x.case.case_id in todo_ids]
    title = f"{p.suite.spec.suite.name}: {len(rows)} cases" + (f" left of {len(p.planned)}" if p.record is not None else "")
    t = Table(title=literal(title), title_justify="left")
    t.add_column("case", no_wrap=True)
    t.add_column("plan")
    for x in rows:
        if x.skip_reason:
            continue
        if x.case.auto_batch:
            what = f"search the largest batch that fits on {x.device_name}, then run powers of two up to it"
        else:
            what = f"run on {x.device_name}"
        t.add_row(literal(x.case.case_id), literal(what))
    if t.row_count:
        con.print(t)
    n_skip = sum(1 for x in rows if x.skip_reason)
    if n_skip:
        con.print(literal(f"skipped: {skip_summary(rows)}"))
    con.print(f"{len(rows) - n_skip} to run, {n_skip} skipped")


class _RichReporter:
    def __init__(self, con):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.con = con
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[case]}", markup=False), console=con, transient=False,
        )
        self.task = None
        self._started = False

    def start(self, total: int, done: int) -> None:
        self.progress.start()
        self._started = True
        self.task = self.progress.add_task("running", total=total, completed=done, case="")

    def grow(self, n: int) -> None:
        self.progress.update(self.task, total=self.progress.tasks[0].total + n)

    def case_started(self, case) -> None:
        what = f"{case.case_id}: searching the batch limit" if case.auto_batch else case.case_id
        self.progress.update(self.task, case=clean(what))

    def case_done(self, result) -> None:
        if result is None:  # an auto batch search, replaced by its cases
            return
        if result.status not in ("ok", "skipped"):
            self.progress.console.print(literal(f"{result.status} {result.case_id}: {result.reason[:200]}"), style="red")
        for f in result.flags:
            self.progress.console.print(literal(f"warning {result.case_id}: {f.flag}: {f.detail}"), style="yellow")
        self.progress.advance(self.task)

    def message(self, text: str) -> None:
        (self.progress.console if self._started else self.con).print(literal(text), style="yellow")

    def stop(self) -> None:
        if self._started:
            self.progress.update(self.task, case="")
            self.progress.stop()
            self._started = False


def _print_summary(con, record, out_path) -> None:
    import pandas as pd

    from . import runner
    from .analysis.derive import record_rows
    from .report.table import summary_table

    df = pd.DataFrame(record_rows(record, str(out_path)))
    if not df.empty:
        _print_df(con, summary_table(df), f"{record.suite.name} on {record.environment.hostname}")
        counts = df["status"].value_counts().to_dict()
        con.print("cases: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        flagged: dict[str, int] = {}
        for fl in df["flags"]:
            for f in filter(None, str(fl).split(",")):
                flagged[f] = flagged.get(f, 0) + 1
        if flagged:
            con.print(literal(
                "warnings: " + ", ".join(f"{k} in {v} case{'s' * (v > 1)}" for k, v in sorted(flagged.items()))
                + " (details per case in the results file)"
            ), style="yellow")
    fc = runner.fixed_cost_summary(record)
    if fc:
        con.print(
            f"fixed cost per case (median, launch to first timed iteration): {fc['fixed_cost_s']:.3f} s "
            f"(worker start {fc['launch_s']:.3f} s, model setup {fc['setup_s']:.3f} s, warmup {fc['warmup_s']:.3f} s)"
        )
    con.print(literal(f"results: {out_path}"))


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    return str(v)


def _print_df(con, df, title: str) -> None:
    from rich.table import Table

    t = Table(title=literal(title), title_justify="left")
    for i, c in enumerate(df.columns):
        t.add_column(literal(c), justify="right" if df[c].dtype.kind in "fi" else "left", no_wrap=i == 0, overflow="fold")
    for row in df.itertuples(index=False):
        t.add_row(*(literal(_fmt(v)) for v in row))
    con.print(t)


# -------------------------------------------------------------------------- report
@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv"]), default="table", show_default=True)
def report(results: tuple[str, ...], fmt: str) -> None:
    """Print the per-case table from RESULTS files (or folders of them)."""
    from .analysis.derive import load_results
    from .report.table import summary_table

    warnings: list[str] = []
    df = load_results(list(results), warn=warnings.append)
    for w in warnings:
        click.echo(f"hwbench: warning: {clean(w)}", err=True)
    if df.empty:
        raise UserError(f"{', '.join(results)}: no cases in the results")
    if fmt == "csv":
        click.echo(summary_table(df, short=False).to_csv(index=False), nl=False)
    elif fmt == "markdown":
        click.echo(summary_table(df).to_markdown(index=False, floatfmt=".4g"))
    else:
        _print_df(_console(), summary_table(df), ", ".join(results))


# ---------------------------------------------------------------------------- list
@cli.command("list")
@click.argument("what", type=click.Choice(["models", "suites"]), default="models", metavar="[models|suites]")
def list_(what: str) -> None:
    """List reference models (family:size) or the shipped suites."""
    from rich.table import Table

    con = _console()
    if what == "models":
        from . import models

        t = Table(title="reference models")
        for c in ("model", "params", "modes", "default shape", "description"):
            t.add_column(c)
        for fam in models.REGISTRY.values():
            for size, cfg in fam.sizes.items():
                shape = fam.default_shape(cfg).label() or "-"
                t.add_row(f"{fam.name}:{size}", f"{fam.param_count(cfg) / 1e6:,.2f} M", ",".join(fam.modes), shape, fam.description)
        con.print(t)
    else:
        from .spec import load_suite

        from .spec import SHIPPED, shipped_suites

        t = Table(title=f"suites in {SHIPPED} (run one by name: hwbench run smoke)")
        for c in ("name", "cases", "description"):
            t.add_column(c)
        for p in shipped_suites():
            s = load_suite(p)
            t.add_row(p.stem, str(len(s.cases)), literal(s.spec.suite.description))
        con.print(t)


# -------------------------------------------------------------------------- schema
@cli.command()
def schema() -> None:
    """Print the JSON Schema of results files."""
    from .records import json_schema

    click.echo(json.dumps(json_schema(), indent=1))


# ----------------------------------------------------------------------------- env
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def env(as_json: bool) -> None:
    """Show this machine's environment fingerprint."""
    from . import env as envmod
    from .devices import present

    fp = envmod.fingerprint()
    if as_json:
        click.echo(json.dumps(fp, indent=1))
        return
    from rich.table import Table

    t = Table(title="environment", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    for k, v in fp.items():
        if k == "gpus":
            continue
        if k == "memory_total_bytes":
            v = f"{v / 2**30:.1f} GiB"
        t.add_row(k, _fmt(v))
    for g in fp["gpus"]:
        mem = f", {g['memory_total_bytes'] / 2**30:.0f} GiB" if "memory_total_bytes" in g else ""
        cc = f", compute capability {'.'.join(map(str, g['compute_capability']))}" if "compute_capability" in g else ""
        t.add_row(f"gpu {g['index']}", f"{g['name']}{mem}{cc}")
    t.add_row("devices", ", ".join(d.name for d in present()))
    _console().print(t)


def _register_command_modules() -> None:
    """Every module of hwbench/commands/ adds its ``COMMANDS`` (see that package)."""
    import importlib
    import pkgutil

    from . import commands

    for m in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{commands.__name__}.{m.name}")
        for command in getattr(mod, "COMMANDS", ()):
            cli.add_command(command)


_register_command_modules()


if __name__ == "__main__":  # pragma: no cover
    main()
