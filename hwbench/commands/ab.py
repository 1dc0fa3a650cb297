"""``hwbench ab SUITE``: compare two software environments in one job, pair by pair.

The sides run in :mod:`hwbench.ab` (a worker server per side, repeats in ABBA order);
the decision is :func:`hwbench.analysis.paired.decide` (pure); this module checks the
arguments, renders, and decides the exit code -- once, here.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import textwrap

import click

from ..options import FiniteFloat
from .regression import EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, WIDTH, _jsonable

EXIT_SIGINT = 130
EXIT_SIGTERM = 143

AB_EPILOG = """\b
Exit codes:
  0    no regression
  1    a case regressed, or ran ok on the base side and failed on the new
       one (its server dying included); with --fail-on: also those verdicts
  2    usage error: arguments, the suite, an interpreter that cannot run
       hwbench's side server; also a base side server that died (nothing
       after it could be compared)
  130  interrupted by Ctrl-C; 143 terminated by SIGTERM (files saved)
\b
Decision, per case, on the pairs (repeat k of base with repeat k of new):
log ratio of their median times; geometric-mean ratio with its 99 % CI
(Student t); one-sample t-test, Benjamini-Hochberg over the cases. Rules in
order: t-test (adj. p < alpha and |ratio - 1| >= threshold: regressed /
improved); ci99 (the 99 % CI wholly beyond +-threshold: regressed /
improved); t-test (significant but smaller: unchanged); ci99 (CI inside
+-threshold: unchanged); else inconclusive.
"""

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_env(values: tuple[str, ...], option: str) -> dict[str, str]:
    """``K=V`` items -> dict; UserError naming the option for anything else."""
    from ..errors import UserError

    out: dict[str, str] = {}
    for item in values:
        key, eq, val = item.partition("=")
        if not eq or not _KEY.match(key):
            raise UserError(f"{option} {item!r}: expected NAME=VALUE, NAME letters, digits and _ "
                            "(not starting with a digit)")
        out[key] = val
    return out


def check_python(path: str | None, option: str) -> str:
    """An interpreter path that exists and can be executed (default: this one)."""
    from ..errors import UserError

    if path is None:
        return sys.executable
    if not os.path.exists(path):
        raise UserError(f"{option} {path}: no such file")
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise UserError(f"{option} {path}: not an executable file (give the interpreter, e.g. venv/bin/python)")
    return path


@click.command(epilog=AB_EPILOG)
@click.argument("suite")
@click.option("--pairs", default=6, show_default=True, type=click.IntRange(min=2, max=1000),
              help="Repeats per side (each repeat of base paired with the same repeat of new).")
@click.option("--base-python", default=None, metavar="PATH", help="Interpreter of the base side (e.g. the base "
              "commit's virtualenv).  [default: this one]")
@click.option("--new-python", default=None, metavar="PATH", help="Interpreter of the new side.  [default: this one]")
@click.option("--base-env", multiple=True, metavar="K=V", help="Environment variable set for the base side. Repeatable.")
@click.option("--new-env", multiple=True, metavar="K=V", help="Environment variable set for the new side. Repeatable.")
@click.option("--out", "out_dir", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the two results files (one per side).")
@click.option("--filter", "filters", multiple=True, metavar="EXPR", help="Only matching cases (as hwbench run --filter).")
@click.option("--threshold", default=5.0, show_default=True, type=FiniteFloat(min=0, max=1000),
              help="Smallest change that counts as a regression or improvement, percent.")
@click.option("--alpha", default=0.05, show_default=True, type=FiniteFloat(min=1e-9, max=0.5),
              help="Significance level after the Benjamini-Hochberg correction.")
@click.option("--fail-on", "fail_on", multiple=True, type=click.Choice(["improved", "inconclusive", "missing"]),
              help="Also exit 1 on these verdicts (regressions always fail). Repeatable.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json", "csv"]), default="table", show_default=True)
def ab(suite: str, pairs: int, base_python: str | None, new_python: str | None, base_env: tuple[str, ...],
       new_env: tuple[str, ...], out_dir: str, filters: tuple[str, ...], threshold: float, alpha: float,
       fail_on: tuple[str, ...], fmt: str) -> None:
    """Run SUITE on two sides in one job -- another interpreter (--base-python /
    --new-python) and/or other environment variables (--base-env / --new-env) --
    alternating their repeats A B B A, and decide per case on the pairs. Writes one
    results file per side into --out. Exit 1 on a regression."""
    from .. import planning
    from ..ab import SideSpec
    from ..spec import load_suite
    from ..writable import output_folder

    specs = (SideSpec("base", check_python(base_python, "--base-python"), parse_env(base_env, "--base-env")),
             SideSpec("new", check_python(new_python, "--new-python"), parse_env(new_env, "--new-env")))
    s = load_suite(suite)
    planning.select(s, filters)  # a filter that matches nothing: one line before anything starts
    output_folder(out_dir, "--out")  # a file, read-only, no permission: one line before any run
    job, rows = _run(os.path.abspath(s.path), specs, pairs, out_dir, list(filters), threshold / 100, alpha)
    if job.interrupted:
        click.echo(f"hwbench: interrupted ({job.interrupted}); files so far: "
                   + ", ".join(job.paths.values()), err=True)
        sys.exit(EXIT_SIGTERM if job.interrupted == "SIGTERM" else EXIT_SIGINT)
    render = {"table": _table, "markdown": _markdown, "json": _json, "csv": _csv}[fmt]
    click.echo(render(job, rows, s.spec.suite.name, threshold / 100, alpha, specs), nl=fmt != "csv")
    if "base" in job.died:
        click.echo(f"hwbench: error: {job.died['base']}; the cases after it were not compared", err=True)
        sys.exit(EXIT_USAGE)
    failing = any(r["regression"] or r["verdict"] in fail_on for r in rows)
    sys.exit(EXIT_REGRESSION if failing else EXIT_OK)


def _run(suite_path, specs, pairs, out_dir, filters, threshold, alpha):
    """Run the job (SIGTERM stops it like Ctrl-C) and decide on what the files hold."""
    import signal

    from ..ab import run_ab

    def on_term(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        job = run_ab(suite_path, specs, pairs=pairs, out_dir=out_dir, filters=filters,
                     progress=lambda text: click.echo(f"hwbench ab: {text}", err=True))
    finally:
        signal.signal(signal.SIGTERM, old)
    return job, decide_job(job, threshold, alpha)


def decide_job(job, threshold: float, alpha: float) -> list[dict]:
    """paired.decide on the repeat medians the two results files hold (every number of
    the verdict is in the files), with each side's status as the job saw it."""
    from ..ab import repeat_medians
    from ..analysis.paired import CaseInput, decide
    from ..errors import UserError

    files = {}
    for name, path in job.paths.items():
        try:
            files[name] = repeat_medians(path)
        except UserError:
            files[name] = {}  # a side that died before its first save
    inputs = []
    for cid in job.cases:
        st = {n: job.statuses.get(n, {}).get(cid) for n in ("base", "new")}
        med = {n: files.get(n, {}).get(cid, (None, "", ()))[2] for n in ("base", "new")}
        inputs.append(CaseInput(cid, st["base"][0] if st["base"] else None, st["new"][0] if st["new"] else None,
                                med["base"], med["new"], st["base"][1] if st["base"] else "",
                                st["new"][1] if st["new"] else ""))
    return decide(inputs, threshold=threshold, alpha=alpha)


# ------------------------------------------------------------------ formatting
def _ratio(v) -> str:
    return "-" if v is None else f"{v:.3g}x"


def _ci(r) -> str:
    if r["ci_low"] is None:
        return "-"
    return f"[{r['ci_low']:.3g}, {r['ci_high']:.3g}]"


def _p(v) -> str:
    return "-" if v is None else f"{v:.2g}"


def _head(job, suite_name: str, specs) -> list[str]:
    from ..report.text import clean

    out = [clean(f"hwbench ab {suite_name}: {job.pairs} pairs (repeats per side), ABBA order, job {job.job_id}")]
    for spec in specs:
        what = spec.describe() + (f" ({job.versions[spec.name]})" if spec.name in job.versions else "")
        out += textwrap.wrap(clean(what), WIDTH, initial_indent=f"  {spec.name + ':':<6}", subsequent_indent=" " * 8,
                             break_on_hyphens=False)
        if spec.name in job.paths:
            out += textwrap.wrap(clean(job.paths[spec.name]), WIDTH, initial_indent=" " * 8,
                                 subsequent_indent=" " * 8, break_on_hyphens=False)
    return out


def _table(job, rows, suite_name, threshold, alpha, specs) -> str:
    from ..report.fit import abbreviate_ids
    from ..report.text import clean

    out = _head(job, suite_name, specs) + [""]
    short, common = abbreviate_ids([r["case_id"] for r in rows])
    if common:
        out.append(clean("every case: " + " · ".join(common)))
    out.append(f"{'verdict':<12} {'new/base':>8} {'99 % CI':<16} {'p adj':>7} {'rule':<6} case")
    for r, cid in zip(rows, short):
        line = (f"{r['verdict']:<12} {_ratio(r['ratio']):>8} {_ci(r):<16} {_p(r['p_adjusted']):>7} "
                f"{r['rule']:<6} {clean(cid)}")
        out += textwrap.wrap(line, WIDTH, subsequent_indent=" " * 54, break_on_hyphens=False)
    notes = [(cid, r["note"]) for r, cid in zip(rows, short) if r["note"]]
    if notes:
        out.append("")
        for cid, note in notes:
            out += textwrap.wrap(clean(f"{cid}: {note}"), WIDTH, subsequent_indent="    ", break_on_hyphens=False)
    out.append("")
    out += textwrap.wrap(_rule_text(threshold, alpha, rows), WIDTH, subsequent_indent="  ")
    out += textwrap.wrap(_summary(rows), WIDTH)
    return "\n".join(out)


def _rule_text(threshold: float, alpha: float, rows) -> str:
    m = sum(r["p_value"] is not None for r in rows)
    th = f"{threshold * 100:g} %"
    return (f"rule t-test: one-sample t-test on the per-pair log ratios (new / base of the repeat medians), "
            f"Benjamini-Hochberg over {m} case(s), adj. p < {alpha:g}, |ratio - 1| >= {th} (smaller: unchanged); "
            f"ci99: the 99 % CI of the geometric-mean ratio lies wholly beyond +-{th} (regressed / improved) "
            f"or within it (unchanged); status: a side did not run the case ok.")


def _summary(rows) -> str:
    from ..analysis.compare import VERDICTS

    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    bad = sum(r["regression"] for r in rows)
    text = f"{len(rows)} cases: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    return f"{text}. " + (f"REGRESSION: {bad} regressed or failed." if bad else "no regression.")


def _md(text) -> str:
    from ..report.text import clean

    return clean(str(text)).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _markdown(job, rows, suite_name, threshold, alpha, specs) -> str:
    lines = [f"### hwbench ab {_md(suite_name)}", "", f"**{_md(_summary(rows))}**", ""]
    for spec in specs:
        lines.append(f"- {spec.name}: `{_md(spec.describe())}` ({_md(job.versions.get(spec.name, ''))})")
    lines += ["", "| verdict | case | new / base | 99 % CI | p (adj.) | rule | note |", "|---|---|---:|---|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['verdict']} | `{_md(r['case_id'])}` | {_ratio(r['ratio'])} | {_ci(r)} | "
                     f"{_p(r['p_adjusted'])} | {r['rule']} | {_md(r['note'])} |")
    lines += ["", f"_{_md(_rule_text(threshold, alpha, rows))}_"]
    return "\n".join(lines)


def _json(job, rows, suite_name, threshold, alpha, specs) -> str:
    doc = {
        "suite": suite_name, "job_id": job.job_id, "pairs": job.pairs, "order": "ABBA",
        "sides": {s.name: {"python": s.python, "env": s.env, "results": job.paths.get(s.name),
                           "software": job.versions.get(s.name), "stopped": job.died.get(s.name)} for s in specs},
        "options": {"threshold": threshold, "alpha": alpha, "confidence": 0.99, "correction": "bh"},
        "rows": [{k: _jsonable(v) for k, v in r.items()} for r in rows],
        "summary": _summary(rows),
    }
    return json.dumps(doc, indent=1, default=str)


def _csv(job, rows, suite_name, threshold, alpha, specs) -> str:
    import csv
    import io

    buf = io.StringIO()
    cols = ["case_id", "verdict", "regression", "rule", "n_pairs", "ratio", "ci_low", "ci_high", "p_value",
            "p_adjusted", "status_base", "status_new", "note"]
    w = csv.DictWriter(buf, cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v)
                    for k, v in r.items()})
    return buf.getvalue()


COMMANDS = [ab]
