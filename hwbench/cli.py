"""The command line. User errors become one line on stderr and exit code 2."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

from .errors import UserError

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


class _Group(click.Group):
    """Maps UserError to a one-line message and exit code 2 for every command."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"hwbench: error: {e}", err=True)
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
        click.echo(f"hwbench: error: {e.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"hwbench: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("hwbench: interrupted", err=True)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)


# ----------------------------------------------------------------------------- run
@cli.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", default="results", show_default=True, type=click.Path(file_okay=False), help="Folder for the results file.")
@click.option("--filter", "filters", multiple=True, metavar="EXPR", help="Run only matching cases: a glob on case_id, or field=glob[,field=glob]. Repeatable (any matches).")
@click.option("--dry-run", is_flag=True, help="List the cases (and skips with reasons); run nothing.")
@click.option("--resume", "resume", type=click.Path(dir_okay=False), metavar="RESULTS", help="Continue an interrupted run in this results file.")
def run(suite: str, out_dir: str, filters: tuple[str, ...], dry_run: bool, resume: str | None) -> None:
    """Run a SUITE file and write one results file."""
    from . import runner

    if not dry_run:
        runner.prestart_workers()
    from . import env as envmod
    from .spec import load_suite

    s = load_suite(suite)
    planned = runner.plan(s, filters)
    con = _console()
    if dry_run:
        _print_plan(con, s, planned)
        return
    environment = envmod.fingerprint()
    if resume:
        record = runner.open_resume(resume, s, environment)
        out_path = Path(resume)
    else:
        record = None
        out_path = runner.default_out_path(s, out_dir, environment["hostname"])
    from .collectors import CollectorSet

    collectors = CollectorSet.for_suite(s.spec.settings)
    r = runner.Runner(s, out_path, reporter=_RichReporter(con), collectors=collectors)
    if record is None:
        record = r.new_record(environment)
    if collectors is not None:
        # idle power is worth measuring only where something will run
        idle = any(p.skip_reason is None for p in planned) and s.spec.settings.idle_baseline_s > 0
        if idle and "idle_baseline" not in record:
            con.print(f"measuring idle power for {s.spec.settings.idle_baseline_s:g} s ...")
        collectors.start(record, measure_idle=idle)
    try:
        record = r.run(planned, record)
    finally:
        if collectors is not None:
            collectors.stop()
    _print_summary(con, record, out_path)
    if record["status"] == "interrupted":
        con.print(f"[yellow]Interrupted.[/] Finished cases are saved. Resume with:\n  hwbench run {suite} --resume {out_path}")
        sys.exit(130)


def _print_plan(con, s, planned) -> None:
    from rich.table import Table

    t = Table(title=f"{s.spec.suite.name}: {len(planned)} cases", title_justify="left")
    t.add_column("case", no_wrap=True)
    t.add_column("plan")
    for p in planned:
        if p.skip_reason:
            what = f"[yellow]skip:[/] {p.skip_reason}"
        elif p.case.auto_batch:
            what = f"search the largest batch that fits on {p.device_name}, then run powers of two up to it"
        else:
            what = f"run on {p.device_name}"
        t.add_row(p.case.case_id, what)
    con.print(t)
    n_skip = sum(1 for p in planned if p.skip_reason)
    con.print(f"{len(planned) - n_skip} to run, {n_skip} skipped")


class _RichReporter:
    def __init__(self, con):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.con = con
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[case]}"), console=con, transient=False,
        )
        self.task = None

    def start(self, total: int, done: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("running", total=total, completed=done, case="")

    def grow(self, n: int) -> None:
        self.progress.update(self.task, total=self.progress.tasks[0].total + n)

    def case_started(self, case) -> None:
        what = f"{case.case_id}: searching the batch limit" if case.auto_batch else case.case_id
        self.progress.update(self.task, case=what)

    def case_done(self, result) -> None:
        if result is None:  # an auto batch search, replaced by its cases
            return
        if result["status"] not in ("ok", "skipped"):
            self.progress.console.print(f"[red]{result['status']}[/] {result['case_id']}: {result['reason'][:200]}")
        for f in result.get("flags", []):
            self.progress.console.print(f"[yellow]warning[/] {result['case_id']}: {f['flag']}: {f['detail']}")
        self.progress.advance(self.task)

    def message(self, text: str) -> None:
        self.progress.console.print(f"[yellow]{text}[/]")

    def stop(self) -> None:
        self.progress.update(self.task, case="")
        self.progress.stop()


def _print_summary(con, record, out_path) -> None:
    from . import runner
    from .results import record_rows
    from .report import summary_table

    import pandas as pd

    df = pd.DataFrame(record_rows(record, str(out_path)))
    if not df.empty:
        _print_df(con, summary_table(df), f"{record['suite']['name']} on {record['environment']['hostname']}")
        counts = df["status"].value_counts().to_dict()
        con.print("cases: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        flagged: dict[str, int] = {}
        for c in record["cases"]:
            for f in {f["flag"] for f in c.get("flags", [])}:
                flagged[f] = flagged.get(f, 0) + 1
        if flagged:
            con.print(
                "[yellow]warnings:[/] " + ", ".join(f"{k} in {v} case{'s' * (v > 1)}" for k, v in sorted(flagged.items()))
                + " (details per case in the results file)"
            )
    fc = runner.fixed_cost_summary(record)
    if fc:
        con.print(
            f"fixed cost per case (median, launch to first timed iteration): {fc['fixed_cost_s']:.3f} s "
            f"(worker start {fc['launch_s']:.3f} s, model setup {fc['setup_s']:.3f} s, warmup {fc['warmup_s']:.3f} s)"
        )
    con.print(f"results: {out_path}")


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    return str(v)


def _print_df(con, df, title: str) -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for i, c in enumerate(df.columns):
        t.add_column(str(c), justify="right" if df[c].dtype.kind in "fi" else "left", no_wrap=i == 0, overflow="fold")
    for row in df.itertuples(index=False):
        t.add_row(*(_fmt(v) for v in row))
    con.print(t)


# -------------------------------------------------------------------------- report
@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv"]), default="table", show_default=True)
def report(results: tuple[str, ...], fmt: str) -> None:
    """Print the per-case table from RESULTS files (or folders of them)."""
    from .report import summary_table
    from .results import load_results

    df = load_results(list(results))
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

        t = Table(title=f"suites in {SUITES_DIR}")
        for c in ("file", "cases", "description"):
            t.add_column(c)
        for p in sorted(SUITES_DIR.glob("*.toml")):
            s = load_suite(p)
            t.add_row(p.name, str(len(s.cases)), s.spec.suite.description)
        con.print(t)


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


if __name__ == "__main__":  # pragma: no cover
    main()
