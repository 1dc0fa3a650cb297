"""The command line. User errors become one line on stderr and exit code 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import UserError
from .options import MAX_DURATION_S, FiniteFloat
from .report.sections import VIEW_MODULES
from .report.text import clean, literal


def _width(stderr: bool = False) -> int:
    """Render width: the terminal's; for a pipe, $COLUMNS when set, else 120 (see
    hwbench.report.fit.output_width)."""
    from .report.fit import output_width

    return output_width(sys.stderr if stderr else sys.stdout)


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, width=_width(stderr), soft_wrap=False)


def _print_lines(con, lines, style: str | None = None) -> None:
    """Lines already fitted to the width: printed as they are (no markup, no wrapping)."""
    for line in lines:
        con.print(literal(line), style=style, overflow="ignore", crop=False, no_wrap=True)


class _Group(click.Group):
    """Maps UserError to a one-line message and exit code 2 for every command."""

    def invoke(self, ctx):
        import errno

        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"hwbench: error: {clean(e)}", err=True)
            ctx.exit(2)
        except OSError as e:
            # a path argument longer than the filesystem allows fails in the first stat()
            # of whatever reads it; always the user's path, never a bug of ours
            if e.errno != errno.ENAMETOOLONG:
                raise
            name = str(e.filename or "")
            click.echo(f"hwbench: error: {clean(name[:60] + '...' if len(name) > 60 else name)}: "
                       f"file name too long", err=True)
            ctx.exit(2)


@click.group(cls=_Group, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hwbench")
@click.pass_context
def cli(ctx) -> None:
    """hwbench: hardware-aware benchmarks for deep learning (speed and energy)."""
    if ctx.invoked_subcommand is None:
        # pip's convention: no command prints the help once and exits 0
        click.echo(ctx.get_help())
        ctx.exit(0)


def _drop_bad_terminal_size() -> None:
    """$COLUMNS / $LINES that are not plain ASCII digits ('²' passes str.isdigit and
    fails int(), in rich as elsewhere) are ignored, as an unset one is."""
    import os

    for name in ("COLUMNS", "LINES"):
        v = os.environ.get(name)
        if v is not None and not (v.isascii() and v.isdigit()):
            del os.environ[name]


def main(argv: list[str] | None = None) -> None:
    """The console script: usage errors are one line and exit code 2, like UserError."""
    _drop_bad_terminal_size()
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


def _split_columns(value: str | None) -> list[str]:
    return [c.strip() for c in (value or "").split(",") if c.strip()]


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
  A node of a multi-node run exits 130 / 143 also when another node stopped
  that way (143 when it failed or node 0's store vanished).
"""


@cli.command(epilog=RUN_EPILOG)
@click.argument("suite")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Folder for the results file.  [default: results]")
@click.option("--filter", "filters", multiple=True, metavar="EXPR", help="Run only matching cases: a glob on case_id, or field=glob[,field=glob]. Repeatable (any matches).")
@click.option("--dry-run", is_flag=True, help="List the cases (and skips grouped by reason) and estimate the run time; run nothing. With --resume: what is left.")
@click.option("--resume", "resume", type=click.Path(dir_okay=False), metavar="RESULTS", help="Continue an interrupted run in this results file.")
@click.option("--allow-env-change", is_flag=True, help="Resume even though torch / hwbench / Python / driver versions changed (recorded in the file).")
@click.option("--grace-s", default=10.0, show_default=True, type=FiniteFloat(min=0, max=MAX_DURATION_S),
              help="After SIGTERM, how long the running case may go on before it is abandoned, s (at most 7 days).")
@click.option("-v", "--verbose", is_flag=True, help="Print every case's numbers and quality flags as it finishes.")
@click.option("--wide", is_flag=True, help="Summary with every column, however wide.")
@click.option("--columns", "columns", metavar="A,B,...", help="Summary with these load_results columns (after the case).")
@click.option("--rdzv-endpoint", default=None, metavar="HOST:PORT",
              help="Multi-node run: node 0's address and a free port, the same on every node.")
@click.option("--nnodes", type=click.IntRange(min=1), default=None,
              help="Multi-node run: the number of machines.  [default with --rdzv-endpoint: $SLURM_NNODES]")
@click.option("--node-rank", type=click.IntRange(min=0), default=None,
              help="Multi-node run: this machine's rank, 0..nnodes-1; node 0 hosts the rendezvous.  "
                   "[default with --rdzv-endpoint: $SLURM_NODEID]")
@click.option("--rdzv-id", default=None, metavar="JOB",
              help="Multi-node run: an id the nodes of this run share.  [default with --rdzv-endpoint: $SLURM_JOB_ID]")
def run(suite: str, out_dir: str | None, filters: tuple[str, ...], dry_run: bool, resume: str | None,
        allow_env_change: bool, grace_s: float, verbose: bool, wide: bool, columns: str | None,
        nnodes: int | None, node_rank: int | None, rdzv_endpoint: str | None, rdzv_id: str | None) -> None:
    """Run a SUITE (a suite file, or the name of a shipped suite such as 'smoke')
    and write one results file. With --rdzv-endpoint (and --nnodes, --node-rank,
    --rdzv-id, which default to Slurm's variables) this machine is one node of a
    multi-node run: it runs the suite's parallel cases, each a torchrun group across
    the nodes, and writes its part; readers join the parts."""
    import os

    from . import api

    if resume and out_dir is not None:
        raise click.UsageError("--out and --resume exclude each other: a resume writes the file it continues")
    nodes = _nodes(nnodes, node_rank, rdzv_endpoint, rdzv_id)
    con = _console()
    if dry_run:
        from .report.plan import render_plan

        p = api.plan_run(suite, resume=resume, filters=filters, nodes=nodes)
        _print_lines(con, render_plan(p, _width()))
        return
    reporter = _Reporter(con, verbose=verbose, settings=_settings_of(suite))
    try:
        out = api.run_suite(suite, out_dir=out_dir or "results", resume=resume, filters=filters, reporter=reporter,
                            allow_env_change=allow_env_change, grace_s=grace_s,
                            fault=os.environ.get("HWBENCH_INJECT_FAULT"), nodes=nodes)
    finally:
        reporter.stop()  # the terminal is restored whatever happened
    nothing_done = out.exit_code == 0 and bool(out.message)
    if out.record is not None and out.record.cases and not nothing_done:
        _print_summary(con, out.record, out.path, wide=wide, columns=_split_columns(columns))
    if out.message:
        stream = _console(stderr=out.exit_code not in (0,))
        stream.print(literal(out.message))
    sys.exit(out.exit_code)


def _nodes(nnodes, node_rank, endpoint, job_id):
    """The multi-node options as a Nodes, or None for a one-machine run. Slurm's
    variables fill in what --rdzv-endpoint leaves out (only then: a plain `hwbench run`
    under srun stays a one-machine run)."""
    import os

    if endpoint is None:
        given = [n for n, v in (("--nnodes", nnodes), ("--node-rank", node_rank), ("--rdzv-id", job_id)) if v is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)}: a multi-node run also needs --rdzv-endpoint HOST:PORT")
        return None

    def env_int(name):
        v = os.environ.get(name, "")
        return int(v) if v.isascii() and v.isdigit() else None

    nnodes = nnodes if nnodes is not None else env_int("SLURM_NNODES")
    node_rank = node_rank if node_rank is not None else env_int("SLURM_NODEID")
    job_id = job_id if job_id is not None else os.environ.get("SLURM_JOB_ID")
    missing = [n for n, v in (("--nnodes", nnodes), ("--node-rank", node_rank), ("--rdzv-id", job_id)) if v is None]
    if missing:
        raise click.UsageError(f"--rdzv-endpoint: also give {', '.join(missing)} (outside Slurm there are no defaults)")
    from .records import NodeRole

    top = next(m.le for m in NodeRole.model_fields["nnodes"].metadata if hasattr(m, "le"))  # what a part records
    if nnodes > top:
        raise click.UsageError(f"--nnodes: at most {top} nodes, got {nnodes}")
    from .parallel.nodes import Nodes

    return Nodes(nnodes=nnodes, node_rank=node_rank, endpoint=endpoint, job_id=str(job_id))


def _settings_of(suite: str):
    """The suite's settings, for the ETA and -v (None where it cannot be read: run_suite
    then reports the error)."""
    try:
        from .spec import load_suite

        return load_suite(suite).spec.settings
    except Exception:  # noqa: BLE001 - run_suite reports it properly
        return None


class _Reporter:
    """The progress display (runner.Reporter): cases done / total, the current case,
    elapsed time and an ETA, on one line of a terminal. Output that is not a terminal
    (CI logs, pipes) gets a plain progress line at most every 30 s instead. Failed cases
    are always said; with ``verbose`` every case's numbers and flags too."""

    PIPE_EVERY_S = 30.0

    def __init__(self, con, verbose: bool = False, settings=None):
        import time

        self.con = con
        self.verbose = verbose
        self.settings = settings
        self.total = 0
        self.done = 0
        self.done_here = 0  # cases finished by this process (not those a resume kept)
        self.current = ""
        self.t0 = time.monotonic()
        self.first_case_t: float | None = None
        self.last_line = time.monotonic()
        self.progress = None
        self.task = None
        self._started = False

    # -- estimates
    def eta_s(self) -> float | None:
        import time

        left = max(0, self.total - self.done)
        if self.done_here and self.first_case_t is not None:
            return left * (time.monotonic() - self.first_case_t) / self.done_here
        if self.settings is not None:
            from .report.plan import estimate_case_s

            return left * estimate_case_s(self.settings)
        return None

    def status_text(self) -> str:
        import time

        from .report.plan import clock

        eta = self.eta_s()
        return (f"{self.done}/{self.total}, {clock(time.monotonic() - self.t0)} elapsed"
                + (f", ETA ~{clock(eta)}" if eta is not None else ""))

    # -- runner.Reporter
    def start(self, total: int, done: int) -> None:
        self.total, self.done = total, done
        self._started = True
        if self.con.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn
            from rich.table import Column as RichColumn

            outer = self

            class _Status(TextColumn):
                def render(self, task):  # noqa: ARG002
                    from rich.text import Text

                    return Text(outer.status_text())

            self.progress = Progress(
                BarColumn(bar_width=20), _Status(""),
                TextColumn("{task.fields[case]}", markup=False,
                           table_column=RichColumn(no_wrap=True, overflow="ellipsis", ratio=1)),
                console=self.con, transient=True, expand=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("running", total=total, completed=done, case="")

    def grow(self, n: int) -> None:
        self.total += n
        if self.progress is not None:
            self.progress.update(self.task, total=self.total)

    def case_started(self, case) -> None:
        import time

        if self.first_case_t is None:
            self.first_case_t = time.monotonic()
        what = f"{case.case_id}: searching the batch limit" if case.auto_batch else case.case_id
        self.current = clean(what)
        if self.progress is not None:
            self.progress.update(self.task, case=self.current)

    def _print(self, text, style: str | None = None) -> None:
        con = self.progress.console if self.progress is not None else self.con
        con.print(literal(text) if isinstance(text, str) else text, style=style)

    def case_done(self, result) -> None:
        import time

        if result is None:  # an auto batch search, replaced by its cases
            return
        self.done += 1
        self.done_here += 1
        if result.status not in ("ok", "skipped"):
            self._print(f"{result.status} {result.case_id}: {result.reason[:300]}", style="red")
        if self.verbose:
            for line in self._details(result):
                self._print(line, style="yellow" if line.startswith("    ") else None)
        if self.progress is not None:
            self.progress.advance(self.task)
        elif time.monotonic() - self.last_line >= self.PIPE_EVERY_S and self.done < self.total:
            self.last_line = time.monotonic()
            from .report.fit import cut

            self._print(cut(clean(f"[{self.status_text()}] {result.case_id}"), self.con.width, middle=True))

    def _details(self, result) -> list[str]:
        """-v: the case's headline numbers and every flag with its detail."""
        from .analysis.stats import latency_stats_ms, noise_flag
        from .report import format as fm

        head = f"{result.status:<7} {result.case_id}"
        flags = [(f.flag, f.detail) for f in result.flags]
        m = result.measurement
        if m is not None:
            st = latency_stats_ms(m.raw_times_s)
            p50 = st.get("latency_ms_p50")
            if p50:
                bs = result.case.batch_size
                head += f"  p50 {fm.duration_ms(p50)}  {fm.rate(bs / (p50 / 1e3))} samples/s"
                head += f"  IQR/p50 {fm.percent(st['latency_iqr_rel'])}"
            threshold = getattr(self.settings, "noise_threshold", 0.1) if self.settings is not None else 0.1
            noisy = noise_flag(st, threshold)
            if noisy:
                flags.append(("noisy", noisy))
        if result.energy is not None:
            est = "~" if result.energy.energy_source == "estimated" else ""
            head += f"  energy {est}{fm.energy_j(result.energy.energy_j)} ({result.energy.energy_source})"
        return [head, *(f"    {f}: {d}" for f, d in flags)]

    def message(self, text: str) -> None:
        self._print(f"note: {text}" if self._started or not text.endswith("...") else text, style="yellow")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.update(self.task, case="")
            self.progress.stop()
            self.progress = None
        self._started = False


def _print_summary(con, record, out_path, *, wide: bool = False, columns: list[str] = ()) -> None:
    from . import runner
    from .analysis.derive import record_rows, to_frame
    from .report import format as fm
    from .report.fit import cut
    from .report.table import check_columns, flag_summary, footnotes, hidden_note, render_group, status_notes

    width = con.width
    df = to_frame(record_rows(record, str(out_path)))
    if not df.empty:
        cols = check_columns(df, columns) if columns else []
        counts = df["status"].value_counts().to_dict()
        devices = [str(d) for d in dict.fromkeys(df["device_name"].dropna())]
        con.print()
        title = (f"{record.suite.name} on {record.environment.hostname}"
                 + (f" · {', '.join(devices)}" if devices else ""))
        tally = "cases: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        title = clean(f"{title} · {tally}") if len(title) + len(tally) + 3 <= width else clean(title)
        _print_lines(con, [cut(title, width)], style="bold")
        if tally not in title:
            _print_lines(con, [tally])
        lines, hidden, common = render_group(df, width, wide=wide, columns=cols)
        if common:
            _print_lines(con, ["every case: " + clean(" · ".join(common))])
        _print_lines(con, lines)
        if not wide:
            _print_lines(con, status_notes(df, width), style="red")
        _print_lines(con, footnotes(df))
        if hidden:
            _print_lines(con, [hidden_note(hidden, width)])
        _print_lines(con, flag_summary(df, width), style="yellow")
    fc = runner.fixed_cost_summary(record)
    if fc:
        _print_lines(con, [
            f"fixed cost per case (median, launch to first timed iteration): {fm.duration_s(fc['fixed_cost_s'])}",
            f"  worker start {fm.duration_s(fc['launch_s'])}, model setup {fm.duration_s(fc['setup_s'])}, "
            f"warmup {fm.duration_s(fc['warmup_s'])}",
        ])
    _print_lines(con, [clean(f"results: {out_path}")])


# -------------------------------------------------------------------------- report
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


@cli.command()
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
@click.option("--html", "html_out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the offline HTML report (figures, tables, embedded CSV) to FILE instead.")
def report(results: tuple[str, ...], fmt: str, output: str | None, wide: bool, columns: str | None,
           view: str | None, html_out: str | None) -> None:
    """Print the per-case table from RESULTS files (or folders of them), grouped by
    machine, with the run each row came from; or an analysis (--view), or the HTML
    report (--html FILE)."""
    from .analysis.derive import load_results
    from .report.table import check_columns, render_report, summary_table, to_markdown

    _check_results_files(results)
    if html_out and (view or output or columns or wide):
        raise click.UsageError("--html writes the whole report: it does not go with --view, --output, --columns or --wide")
    if view and (columns or wide):
        raise click.UsageError("--view shows its own columns: it does not go with --columns or --wide")
    if view and fmt == "parquet":
        raise click.UsageError("--view: use --format table, markdown, csv or json")
    if fmt == "parquet" and not output and not html_out:
        raise click.UsageError("--format parquet needs --output FILE")
    from .writable import output_file, write_error

    for option, path in (("--html", html_out), ("--output", output)):
        if path:
            output_file(path, option)
    warnings: list[str] = []
    if html_out:
        from .report.html import write_html

        try:
            n, figures = write_html(list(results), html_out, warn=warnings.append)
        except OSError as e:
            raise write_error("--html", html_out, e) from None
        for w in warnings:
            click.echo(f"hwbench: warning: {clean(w)}", err=True)
        click.echo(f"wrote {clean(html_out)} ({n} cases, {figures} figures)", err=True)
        return
    df = load_results(list(results), warn=warnings.append)
    for w in warnings:
        click.echo(f"hwbench: warning: {clean(w)}", err=True)
    if df.empty:
        raise UserError(f"{', '.join(results)}: no cases in the results")
    cols = check_columns(df, _split_columns(columns))
    if view:
        from .report import views

        sections = views.view_sections(df, view)
        if fmt == "table":
            text = "\n".join(views.render_terminal(sections, None if output else _width())) + "\n"
        elif fmt == "markdown":
            text = views.render_markdown(sections)
        elif fmt == "csv":
            text = views.raw_frame(sections).to_csv(index=False)
        else:
            text = views.raw_frame(sections).to_json(orient="records", date_format="iso", indent=1) + "\n"
    elif fmt == "table":
        lines = render_report(df, None if output else _width(), wide=wide, columns=cols)
        text = "\n".join(lines) + "\n"
    elif fmt == "markdown":
        text = to_markdown(df, wide=wide, columns=cols)
    elif fmt == "csv":
        out = summary_table(df, wide=wide, columns=cols)
        if "quality_flags" in out:
            out["quality_flags"] = out["quality_flags"].map(lambda v: ",".join(v) if isinstance(v, list) else "")
        text = out.to_csv(index=False)
    elif fmt == "json":
        text = summary_table(df, wide=wide, columns=cols).to_json(orient="records", date_format="iso", indent=1) + "\n"
    else:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserError("--format parquet needs pyarrow: pip install pyarrow") from None
        try:
            summary_table(df, wide=True, columns=cols).to_parquet(output, index=False)
        except OSError as e:
            raise write_error("--output", output, e) from None
        click.echo(f"wrote {len(df)} rows to {clean(output)}", err=True)
        return
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise write_error("--output", output, e) from None
        click.echo(f"wrote {len(df)} rows to {clean(output)}", err=True)
    elif fmt == "table":
        _print_lines(_console(), text.splitlines())
    else:
        click.echo(text, nl=False)


# ---------------------------------------------------------------------------- list
@cli.command("list")
@click.argument("what", type=click.Choice(["models", "suites"]), default="models", metavar="[models|suites]")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
def list_(what: str, fmt: str) -> None:
    """List reference models (family:size) or the shipped suites."""
    from .report import format as fm
    from .report.fit import Column, fit

    if what == "models":
        from . import models

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
        con = _console()
        _print_lines(con, ["reference models (hwbench run: models = [\"family:size\"])"], style="bold")
        _print_lines(con, fit(rows, cols, _width()).lines)
        return
    from .spec import SHIPPED, load_suite, shipped_suites

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
    con = _console()
    _print_lines(con, [clean(f"suites in {SHIPPED} (run one by name: hwbench run smoke)")], style="bold")
    _print_lines(con, fit(rows, cols, _width()).lines)


# -------------------------------------------------------------------------- schema
@cli.command()
def schema() -> None:
    """Print the JSON Schema of results files."""
    from .records import json_schema

    click.echo(json.dumps(json_schema(), indent=1))


# ----------------------------------------------------------------------------- env
# CPU flags that decide the CPU peak (SIMD width, FMA) or matmul speed of a dtype.
_CPU_FLAGS_SHOWN = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16",
                    "amx_int8", "amx_tile", "asimd", "sve", "sve2", "bf16", "i8mm")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def env(as_json: bool) -> None:
    """Show this machine's environment fingerprint."""
    from . import env as envmod
    from .devices import present
    from .report import format as fm
    from .report.fit import cut

    fp = envmod.fingerprint()
    if as_json:
        click.echo(json.dumps(fp, indent=1))
        return
    rows: list[tuple[str, str]] = []
    for k, v in fp.items():
        if k in ("gpus", "cpu_freq_max_source"):
            continue
        if k == "memory_total_bytes":
            v = fm.nbytes(v)
        elif k == "cpu_freq_max_mhz":
            # the clock the CPU peak (and so MFU) is computed from
            src = fp.get("cpu_freq_max_source")
            v = (f"{fm.mhz(v)} from {src} (the CPU peak for MFU uses it)" if not fm.missing(v) else
                 "unknown here (e.g. a VM): CPU MFU stays empty")
        elif k == "cpu_flags":
            v = list(v or [])
            shown = [f for f in _CPU_FLAGS_SHOWN if f in v]
            v = ", ".join(v) if len(v) <= 8 else f"{len(v)} flags, among them {', '.join(shown) or 'no SIMD extension'}"
        else:
            v = fm.plain(v) if not fm.missing(v) else "-"
        rows.append((k, str(v)))
    for g in fp["gpus"]:
        mem = f", {fm.nbytes(g['memory_total_bytes'])}" if "memory_total_bytes" in g else ""
        cc = f", compute capability {'.'.join(map(str, g['compute_capability']))}" if "compute_capability" in g else ""
        rows.append((f"gpu {g['index']}", f"{g['name']}{mem}{cc}"))
    rows.append(("devices", ", ".join(d.name for d in present())))
    width = _width()
    kw = max(len(k) for k, _ in rows)
    con = _console()
    _print_lines(con, ["environment"], style="bold")
    _print_lines(con, [cut(clean(f"{k:<{kw}}  {v}"), width) for k, v in rows])


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
