"""``hwbench run``: run a suite (one machine, or one node of a multi-node run), show its
progress (:mod:`hwbench.progress`) and a summary of the results."""

from __future__ import annotations

import statistics
import sys

import click

from ..options import MAX_DURATION_S, FiniteFloat
from ..report.text import clean, literal
from .output import console, print_lines, split_columns, width

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


@click.command(epilog=RUN_EPILOG)
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

    from .. import api
    from ..progress import TerminalReporter

    if resume and out_dir is not None:
        raise click.UsageError("--out and --resume exclude each other: a resume writes the file it continues")
    nodes = _nodes(nnodes, node_rank, rdzv_endpoint, rdzv_id)
    con = console()
    if dry_run:
        from ..report.plan import render_plan

        p = api.plan_run(suite, resume=resume, filters=filters, nodes=nodes)
        print_lines(con, render_plan(p, width()))
        return
    reporter = TerminalReporter(con, verbose=verbose, settings=_settings_of(suite))
    try:
        out = api.run_suite(suite, out_dir=out_dir or "results", resume=resume, filters=filters, reporter=reporter,
                            allow_env_change=allow_env_change, grace_s=grace_s,
                            fault=os.environ.get("HWBENCH_INJECT_FAULT"), nodes=nodes)
    finally:
        reporter.stop()  # the terminal is restored whatever happened
    nothing_done = out.exit_code == 0 and bool(out.message)
    if out.record is not None and out.record.cases and not nothing_done:
        print_summary(con, out.record, out.path, wide=wide, columns=split_columns(columns))
    if out.message:
        stream = console(stderr=out.exit_code not in (0,))
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
    from ..records import NodeRole

    top = next(m.le for m in NodeRole.model_fields["nnodes"].metadata if hasattr(m, "le"))  # what a part records
    if nnodes > top:
        raise click.UsageError(f"--nnodes: at most {top} nodes, got {nnodes}")
    from ..parallel.nodes import Nodes

    return Nodes(nnodes=nnodes, node_rank=node_rank, endpoint=endpoint, job_id=str(job_id))


def _settings_of(suite: str):
    """The suite's settings, for the ETA and -v (None where it cannot be read: run_suite
    then reports the error)."""
    try:
        from ..spec import load_suite

        return load_suite(suite).spec.settings
    except Exception:  # noqa: BLE001 - run_suite reports it properly
        return None


def print_summary(con, record, out_path, *, wide: bool = False, columns: list[str] = ()) -> None:
    from ..analysis.derive import record_rows, to_frame
    from ..report import format as fm
    from ..report.fit import cut
    from ..report.table import check_columns, flag_summary, footnotes, hidden_note, render_group, status_notes

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
        print_lines(con, [cut(title, width)], style="bold")
        if tally not in title:
            print_lines(con, [tally])
        lines, hidden, common = render_group(df, width, wide=wide, columns=cols)
        if common:
            print_lines(con, ["every case: " + clean(" · ".join(common))])
        print_lines(con, lines)
        if not wide:
            print_lines(con, status_notes(df, width), style="red")
        print_lines(con, footnotes(df))
        if hidden:
            print_lines(con, [hidden_note(hidden, width)])
        print_lines(con, flag_summary(df, width), style="yellow")
    fc = fixed_cost_summary(record)
    if fc:
        print_lines(con, [
            f"fixed cost per case (median, launch to first timed iteration): {fm.duration_s(fc['fixed_cost_s'])}",
            f"  worker start {fm.duration_s(fc['launch_s'])}, model setup {fm.duration_s(fc['setup_s'])}, "
            f"warmup {fm.duration_s(fc['warmup_s'])}",
        ])
    print_lines(con, [clean(f"results: {out_path}")])



def fixed_cost_summary(record) -> dict[str, float] | None:
    """Median per-case overheads over ok cases, in seconds."""
    t = [c.timing for c in record.cases if c.status == "ok" and c.timing.fixed_cost_s is not None]
    if not t:
        return None
    return {k: statistics.median(getattr(x, k) for x in t) for k in ("fixed_cost_s", "launch_s", "setup_s", "warmup_s")}


COMMANDS = (run,)
