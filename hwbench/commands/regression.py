"""``hwbench compare`` and ``hwbench history``: regression tracking over results files.

The statistics live in :mod:`hwbench.analysis.compare` and :mod:`hwbench.analysis.history`
(pure functions; verdicts are data). This module reads the files, renders, and decides
the exit code -- once, here. Output is read in CI logs: the table fits 80 columns and
every number carries its unit.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap

import click

from ..options import FiniteFloat

WIDTH = 80

# Exit codes of `hwbench compare` (also in its --help and docs/regression.md).
EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_USAGE = 2
EXIT_NOT_COMPARABLE = 4

COMPARE_EPILOG = """\b
Exit codes:
  0  no regression
  1  at least one case regressed, or was ok in the baseline and failed now
     (with --fail-on: also those verdicts); a regression marked
     machine_changed still exits 1
  2  usage error: arguments, unreadable or invalid results files, nothing
     to compare (no case matches --case, a side has no cases, or no case
     ran in both)
  4  not comparable: different hardware (CPU model, GPU or device name);
     --allow-different-hardware compares anyway
\b
Verdicts (rule in the output): regressed / improved need a change of at
least the threshold AND adjusted p < alpha (rule test: Mann-Whitney U,
Benjamini-Hochberg); where the test cannot reach alpha (e.g. 3 vs 3
repeats), a 99 % CI wholly beyond the threshold (rule ci99); unchanged:
significant but small, or the 95 % CI inside the threshold (rule ci95);
inconclusive: the change could be within the threshold (the note says
why); new; missing; failed. A zero baseline compares absolute differences.
"""


def _read(paths: tuple[str, ...], what: str, held=None):
    """The runs in ``paths``, each run_id once (a copy of a run counts once, warned).
    With ``held`` (compare: :class:`hwbench.store.records.Held`), runs read through the
    store come without their cases, which ``held`` gives compare a case at a time."""
    from ..analysis.compare import case_count, unique_runs
    from ..errors import UserError
    from ..report.text import clean
    from ..results import read_many

    warnings: list[str] = []
    try:
        got = _from_store(paths, warnings.append, held)
        if got is None:
            got = read_many(list(paths), warnings.append)
    except UserError as e:
        raise UserError(f"{what}: {e}") from None
    got, dups = unique_runs(got, record=lambda pr: pr[1], label=lambda pr: str(pr[0]),
                            size=lambda pr: case_count(pr[1], held))
    for w in warnings + [f"{what}: {d}" for d in dups]:
        click.echo(f"hwbench: warning: {clean(w)}", err=True)
    return got


def _from_store(paths: tuple[str, ...], warn, held=None):
    """The runs of ``paths`` rebuilt from the store's cache when a folder is given (a
    folder read before costs no parse: :mod:`hwbench.store.records`), else None (files
    only, or multi-node parts: the files are read). With ``held``, the runs come without
    their cases (``held`` has them); else whole."""
    from pathlib import Path

    if not any(Path(p).is_dir() for p in paths):
        return None
    from ..store import Store
    from ..store import records as store_records

    if held is not None:
        entries = held.store(warn).entries(list(paths))
        return held.runs(entries) if store_records.usable(entries) else None
    store = Store(warn=warn)
    try:
        entries = store.entries(list(paths))
        return store_records.runs(store, entries) if store_records.usable(entries) else None
    finally:
        store.close()


@click.command(epilog=COMPARE_EPILOG)
@click.argument("baseline", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--threshold", default=5.0, show_default=True, type=FiniteFloat(min=0, max=1000),
              help="Smallest change that counts as a regression or improvement, percent (latency / throughput; "
                   "other metrics have their own default unless given as NAME:PERCENT).")
@click.option("--metric", "metrics", default="", metavar="NAME[:PCT],...",
              help="Also compare these metrics, e.g. energy_per_sample_j,memory_peak_bytes:2 (latency is always compared).")
@click.option("--alpha", default=0.05, show_default=True, type=FiniteFloat(min=1e-9, max=0.5),
              help="Significance level after the multiple-comparison correction (the false-discovery rate for bh).")
@click.option("--correction", type=click.Choice(["bh", "holm"]), default="bh", show_default=True,
              help="bh: Benjamini-Hochberg (false-discovery rate); holm: Holm (family-wise error rate).")
@click.option("--case", "case_glob", default=None, metavar="GLOB", help="Compare only cases whose case_id matches.")
@click.option("--fail-on", "fail_on", multiple=True, type=click.Choice(["improved", "inconclusive", "missing"]),
              help="Also exit 1 on these verdicts (regressions always fail). Repeatable.")
@click.option("--allow-different-hardware", is_flag=True, help="Compare runs from different CPUs / GPUs (exit 4 otherwise).")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json", "csv"]), default="table", show_default=True)
def compare(baseline: str, new: str, threshold: float, metrics: str, alpha: float, correction: str,
            case_glob: str | None, fail_on: tuple[str, ...], allow_different_hardware: bool, fmt: str) -> None:
    """Compare the NEW run(s) with the BASELINE run(s), case by case (files or folders;
    cases matched by case_id). Exit 1 on a regression."""
    from ..analysis import compare as cmp
    from ..store.records import Held

    opts = cmp.Options(metrics=cmp.parse_metrics(metrics, threshold / 100), alpha=alpha, correction=correction,
                       case_glob=case_glob)
    held = Held()  # folders: the runs from the store, their cases read one batch at a time
    try:
        base = _read((baseline,), "BASELINE", held)
        newr = _read((new,), "NEW", held)
        _compare(baseline, new, base, newr, opts, held, fail_on, allow_different_hardware, fmt)
    finally:
        held.close()


def _compare(baseline: str, new: str, base, newr, opts, held, fail_on: tuple[str, ...],
             allow_different_hardware: bool, fmt: str) -> None:
    """The comparison of the runs read (``held``: the cases of those from the store),
    rendered; exits with the command's exit code."""
    from ..analysis import compare as cmp
    from ..errors import UserError
    from ..report.text import clean

    case_glob = opts.case_glob
    for path, side in ((baseline, base), (new, newr)):
        if not any(cmp.case_count(r, held) for _, r in side):  # an interrupted run, say: a pass would be silent
            raise UserError(f"{path}: no cases in {'this run' if len(side) == 1 else 'these runs'}: nothing to compare")
    result = cmp.compare([r for _, r in base], [r for _, r in newr], opts, source=held)
    if not len(result.rows):
        raise UserError(f"{baseline}, {new}: nothing to compare: no case matches --case {case_glob!r}")
    names = [", ".join(sorted({r.suite.name for _, r in side})) for side in (base, newr)]
    if result.rows["verdict"].isin(["missing", "new"]).all():  # a pass here would be silent
        which = f" (suites {names[0]!r} and {names[1]!r})" if names[0] != names[1] else ""
        raise UserError(f"{baseline}, {new}: nothing to compare: no case ran in both{which}")
    if names[0] != names[1]:
        click.echo(clean(f"hwbench: warning: BASELINE and NEW ran different suites ({names[0]!r}, {names[1]!r}): "
                         "only the cases in both are compared"), err=True)
    if result.hardware and not allow_different_hardware:
        if fmt == "table":
            click.echo(_header(base, newr))
            click.echo(_env_text(result))
        click.echo("hwbench: not comparable (exit 4): different hardware: " + "; ".join(result.hardware)
                   + ". Pass --allow-different-hardware to compare anyway.", err=True)
        sys.exit(EXIT_NOT_COMPARABLE)
    render = {"table": _table, "markdown": _markdown, "json": _json, "csv": _csv}[fmt]
    click.echo(render(result, base, newr), nl=fmt != "csv")
    failing = result.rows["regression"] | result.rows["verdict"].isin(list(fail_on))
    sys.exit(EXIT_REGRESSION if failing.any() else EXIT_OK)


# ------------------------------------------------------------------ formatting
def _num(v) -> float | None:
    """A finite float, or None (numpy / pandas missing values included)."""
    from ..analysis.compare import _num as parse  # the one parser; imported late: pandas and scipy

    return parse(v)


def value(v, unit: str) -> str:
    """A number with its unit, 3 significant digits (bytes in KiB / MiB / GiB)."""
    f = _num(v)
    if f is None:
        return "-"
    if unit == "B":
        for u, s in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(f) >= s:
                return f"{f / s:.3g} {u}"
        return f"{f:.0f} B"
    return f"{f:.3g} {unit}".rstrip()


def pct(v, signed: bool = True) -> str:
    f = _num(v)
    if f is None:
        return "-"
    return f"{f * 100:+.1f} %" if signed else f"{f * 100:.1f} %"


def _change(row) -> str:
    """The change: a percentage, or an absolute difference with its unit (zero baseline)."""
    if row.get("effect") == "absolute":
        f = _num(row.get("change"))
        return "-" if f is None else ("+" if f >= 0 else "") + value(f, row.get("unit") or "")
    return pct(row.get("change"))


def _ci(row) -> str:
    lo, hi = _num(row.get("ci_low")), _num(row.get("ci_high"))
    if lo is None or hi is None:
        return ""
    if row.get("effect") == "absolute":
        return f"[{lo:+.3g}, {hi:+.3g}]"
    return f"[{lo * 100:+.1f}, {hi * 100:+.1f}]"


def _p(row) -> str:
    p = _num(row.get("p_adjusted"))
    return "" if p is None else f"p={p:.2g}"


def _short(metric: str) -> str:
    return "latency" if metric == "latency_ms_p50" else metric


def _label(rec_path) -> str:
    from ..report.text import clean

    p, rec = rec_path
    commit = rec.environment.hwbench_git_commit
    return clean(f"{p} ({rec.run_id}, {rec.created}" + (f", {commit[:10]}" if commit else "") + ")")


def _header(base, newr) -> str:
    lines = ["hwbench compare"]
    for name, side in (("baseline", base), ("new", newr)):
        for i, rp in enumerate(side):
            lines += textwrap.wrap(_label(rp), WIDTH, initial_indent=f"  {name + ':' if i == 0 else '':<10}",
                                   subsequent_indent=" " * 12, break_on_hyphens=False)
    return "\n".join(lines)


def _env_text(result) -> str:
    from ..report.format import missing
    from ..report.text import clean

    if not len(result.env):
        return "\nenvironments: no differences"
    lines = ["", "environment differences (the usual cause of a regression):"]
    for r in result.env.itertuples(index=False):  # a key one side lacks: "-" (pandas reads it NaN)
        text = f"{'-' if missing(r.baseline) else r.baseline} -> {'-' if missing(r.new) else r.new}"
        hw = "  [hardware]" if r.hardware else ""
        lines += textwrap.wrap(clean(f"{r.key}: {text}{hw}"), WIDTH, initial_indent="  ", subsequent_indent="      ",
                               break_on_hyphens=False)
    return "\n".join(lines)


def _side_load(c: dict) -> str:
    """One side's machine conditions (compare.conditions) in a line."""
    parts = []
    for key, what, fmt in (("background_cpu_pct", "background CPU", "{:.1f} %"), ("steal_pct", "steal", "{:.1f} %"),
                           ("idle_cpu_pct", "idle baseline", "{:.1f} %"), ("cpu_mhz", "CPU", "{:.0f} MHz"),
                           ("gpu_sm_mhz", "GPU SM", "{:.0f} MHz")):
        if c.get(key) is not None:
            parts.append(f"{what} {fmt.format(c[key])}")
    if c.get("throttle"):
        parts.append(f"throttled: {', '.join(c['throttle'])}")
    return ", ".join(parts) or "not recorded"


def _load_text(result) -> str:
    """Each side's machine conditions over its compared cases."""
    if not result.load:
        return ""
    lines = ["", "machine (background CPU: system busy minus the worker, % of all CPUs):"]
    for name in ("baseline", "new"):
        lines += textwrap.wrap(f"{name + ':':<10}{_side_load(result.load.get(name, {}))}", WIDTH, initial_indent="  ",
                               subsequent_indent=" " * 12)
    return "\n".join(lines)


def _detail(row) -> str:
    from ..report.text import clean

    parts = []
    if _num(row.get("baseline")) is not None:
        unit = row.get("unit") or ""
        parts.append(f"{_short(row['metric'])} {value(row['baseline'], unit)} -> {value(row['new'], unit)}")
        parts.append(f"{_change(row)} {_ci(row)}".strip())
        if _p(row):
            parts.append(_p(row))
        if row.get("samples"):
            parts.append(f"n={int(row['n_baseline'])}/{int(row['n_new'])} {row['samples']}s")
        if isinstance(row.get("rule"), str):
            parts.append(f"rule: {row['rule']}")
    note = row.get("note")
    if isinstance(note, str) and note:
        parts.append(note)
    return clean("  ".join(parts))


def _table(result, base, newr) -> str:
    from ..report.text import clean

    out = [_header(base, newr), _env_text(result) + _load_text(result), ""]
    for row in result.rows.to_dict("records"):
        head = f"{row['verdict']:<12} {clean(row['case_id'])}"
        if row["metric"] != "latency_ms_p50":
            head += f" [{_short(row['metric'])}]"
        if row.get("machine_changed") is True:
            head += "  [machine_changed]"
        out += textwrap.wrap(head, WIDTH, subsequent_indent=" " * 13, break_on_hyphens=False)
        detail = _detail(row)
        if detail:
            out += textwrap.wrap(detail, WIDTH, initial_indent=" " * 4, subsequent_indent=" " * 6,
                                 break_on_hyphens=False)
    out.append("")
    for n in result.notes:
        out += textwrap.wrap("note: " + n, WIDTH, subsequent_indent="      ")
    out.append(_summary(result))
    return "\n".join(out)


def _summary(result) -> str:
    counts = result.counts()
    total = result.rows["case_id"].nunique()
    text = f"{total} cases: " + ", ".join(f"{v} {k}" for k, v in counts.items())
    verdict = (f"REGRESSION: {result.regressions} regressed or failed" if result.regressions else "no regression")
    if result.machine_changed:
        verdict += (f" ({result.machine_changed} case(s) marked machine_changed: the machine's conditions differed "
                    "between the sides; rerun before blaming the change)")
    return "\n".join(textwrap.wrap(f"{text}. {verdict}.", WIDTH))


def _md(text) -> str:
    from ..report.text import clean

    return clean(str(text)).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _markdown(result, base, newr) -> str:
    from ..report.text import clean

    lines = ["### hwbench compare", ""]
    lines.append(f"baseline: `{clean(_label(base[0])).replace('`', '')}`" + (f" and {len(base) - 1} more" if len(base) > 1 else "") + "  ")
    lines.append(f"new: `{clean(_label(newr[0])).replace('`', '')}`" + (f" and {len(newr) - 1} more" if len(newr) > 1 else ""))
    lines.append("")
    lines.append(f"**{_md(_summary(result))}**")
    lines.append("")
    if result.load:
        lines.append("machine conditions (background CPU: system busy minus the worker, % of all CPUs): "
                     + "; ".join(f"{k}: {_md(_side_load(result.load.get(k, {})))}" for k in ("baseline", "new")))
        lines.append("")
    if len(result.env):
        lines += ["| environment | baseline | new |", "|---|---|---|"]
        for r in result.env.itertuples(index=False):
            lines.append(f"| {_md(r.key)}{' (hardware)' if r.hardware else ''} | {_md(r.baseline)} | {_md(r.new)} |")
        lines.append("")
    head = ["| verdict | case | metric | baseline | new | change | 95 % CI | p (adj.) | rule | note |",
            "|---|---|---|---:|---:|---:|---|---:|---|---|"]

    def md_row(row) -> str:
        unit = row.get("unit") or ""
        p = _num(row.get("p_adjusted"))
        return "| " + " | ".join([
            row["verdict"], f"`{_md(row['case_id'])}`", _short(row["metric"]),
            value(row.get("baseline"), unit) if _num(row.get("baseline")) is not None else "",
            value(row.get("new"), unit) if _num(row.get("new")) is not None else "",
            _change(row) if _num(row.get("change")) is not None else "",
            _ci(row), "" if p is None else f"{p:.2g}", row.get("rule") if isinstance(row.get("rule"), str) else "",
            _md(row.get("note") or ""),
        ]) + " |"

    rows = result.rows.to_dict("records")
    shown = [r for r in rows if r["verdict"] != "unchanged"]
    quiet = [r for r in rows if r["verdict"] == "unchanged"]
    if shown:
        lines += head + [md_row(r) for r in shown]
    if quiet:
        lines += ["", f"<details><summary>{len(quiet)} unchanged</summary>", ""] + head + [md_row(r) for r in quiet]
        lines += ["", "</details>"]
    lines.append("")
    lines += [f"_{_md(n)}_  " for n in result.notes]
    return "\n".join(lines)


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        return _jsonable(v.item())
    return v


def _json(result, base, newr) -> str:
    rows = [{k: _jsonable(v) for k, v in r.items()} for r in result.rows.to_dict("records")]
    doc = {
        "baseline": [{"path": str(p), "run_id": r.run_id, "created": r.created} for p, r in base],
        "new": [{"path": str(p), "run_id": r.run_id, "created": r.created} for p, r in newr],
        "environment": result.env.to_dict("records"),
        "hardware_differences": list(result.hardware),
        "options": {"alpha": result.options.alpha, "correction": result.options.correction,
                    "thresholds": {m.name: m.threshold for m in result.options.metrics}},
        "counts": result.counts(),
        "regressions": result.regressions,
        "machine_changed": result.machine_changed,
        "machine_conditions": result.load,
        "notes": list(result.notes),
        "rows": rows,
    }
    return json.dumps(doc, indent=1, default=str)


def _csv(result, base, newr) -> str:
    return result.rows.to_csv(index=False)


# ------------------------------------------------------------------ history
@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option("--case", "case_glob", default=None, metavar="GLOB", help="Only cases whose case_id matches.")
@click.option("--metric", default="latency_ms_p50", show_default=True,
              help="The per-run value tracked: latency_ms_p50 (median of the run) or a load_results column.")
@click.option("--threshold", default=5.0, show_default=True, type=FiniteFloat(min=0, max=1000),
              help="Smallest step reported as a change point, percent.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv", "json"]), default="table", show_default=True)
def history(results: tuple[str, ...], case_glob: str | None, metric: str, threshold: float, fmt: str) -> None:
    """Trend and change points of each case over many runs (RESULTS files or folders),
    ordered by time; each step names the first run after it and what changed in its
    environment."""
    from ..analysis import history as hist
    from ..errors import UserError

    h = _history_from_store(results, case_glob, metric, threshold / 100)
    if h is None:
        runs = _read(results, "RESULTS")
        h = hist.history(runs, case_glob=case_glob, metric=metric, threshold=threshold / 100)
    if not len(h.series):
        raise UserError(f"{', '.join(results)}: no ok cases" + (f" matching {case_glob!r}" if case_glob else ""))
    if fmt == "csv":
        click.echo(h.series.to_csv(index=False), nl=False)
    elif fmt == "json":
        doc = {"runs": h.runs.to_dict("records"), "trends": h.trends.to_dict("records"),
               "change_points": h.changes.to_dict("records"), "outliers": h.outliers.to_dict("records"),
               "method": h.method,
               "series": h.series.to_dict("records")}
        click.echo(json.dumps(doc, indent=1, default=lambda v: _jsonable(v) if hasattr(v, "item") else str(v)))
    elif fmt == "markdown":
        click.echo(_history_markdown(h))
    else:
        click.echo(_history_table(h))


def _history_from_store(results: tuple[str, ...], case_glob, metric: str, threshold: float):
    """The History through the store's cache when a folder is given (the thousandth
    nightly costs what the first did), else None (files only, multi-node parts, or a
    metric computed across a run's cases: the records are read)."""
    from pathlib import Path

    if not any(Path(p).is_dir() for p in results):
        return None
    from ..errors import UserError
    from ..report.text import clean
    from ..store import Store
    from ..store import history as store_history

    warnings: list[str] = []
    store = Store(warn=warnings.append)
    try:
        try:
            entries = store.entries(list(results))
        except UserError as e:
            raise UserError(f"RESULTS: {e}") from None
        if not store_history.usable(entries, metric):
            return None
        h = store_history.history(store, entries, case_glob=case_glob, metric=metric, threshold=threshold,
                                  warn=lambda d: warnings.append(f"RESULTS: {d}"))
    finally:
        store.close()
    for w in warnings:
        click.echo(f"hwbench: warning: {clean(w)}", err=True)
    return h


def _history_table(h) -> str:
    from ..report.text import clean

    out = [f"hwbench history: {_runs(len(h.runs))}, {len(h.trends)} cases ({h.metric})", ""]
    if len(h.runs) == 1:
        out[-1:] = ["one run: no trend or change point can be told from it (give two runs or more)", ""]
    out.append("runs (oldest first):")
    for r in h.runs.to_dict("records"):
        commit = f" {r['commit'][:10]}" if r.get("commit") else ""
        out += textwrap.wrap(clean(f"{r['index']:>3}  {r['created']}{commit}  {r['run_id']}  {r['hostname']}"),
                             WIDTH, initial_indent="  ", subsequent_indent=" " * 7)
    out.append("")
    cps = h.changes.groupby("case_id") if len(h.changes) else None
    odd = h.outliers.groupby("case_id") if len(h.outliers) else None
    for t in h.trends.to_dict("records"):
        out += textwrap.wrap(clean(t["case_id"]), WIDTH, subsequent_indent="  ", break_on_hyphens=False)
        unit = t["unit"]
        line = (f"    {t['spark']}  {value(t['first'], unit)} -> {value(t['last'], unit)} "
                f"({pct(t['change'])}) over {t['runs']} runs") if t["runs"] > 1 else (
            f"    {t['spark']}  {value(t['first'], unit)} (one run: no trend)")
        out.append(line)
        if cps is not None and t["case_id"] in cps.groups:
            for c in cps.get_group(t["case_id"]).to_dict("records"):
                text = (f"step {pct(c['step'])} at run {c['run_index']} ({c['run_id']}, {c['created']}): "
                        f"{value(c['before'], unit)} -> {value(c['after'], unit)}")
                if c["env_changes"]:
                    text += f"; changed: {c['env_changes']}"
                out += textwrap.wrap(clean(text), WIDTH, initial_indent="    ", subsequent_indent="      ",
                                     break_on_hyphens=False)
        if odd is not None and t["case_id"] in odd.groups:
            for o in odd.get_group(t["case_id"]).to_dict("records"):
                text = (f"outlier at run {o['run_index']} ({o['run_id']}): {value(o['value'], unit)}, "
                        f"{pct(o['change'])} from its neighbours (one run: not a step)")
                out += textwrap.wrap(clean(text), WIDTH, initial_indent="    ", subsequent_indent="      ",
                                     break_on_hyphens=False)
    out.append("")
    out += textwrap.wrap(f"change points: {h.method}", WIDTH, subsequent_indent="  ")
    return "\n".join(out)


def _runs(n: int) -> str:
    return "1 run" if n == 1 else f"{n} runs"


def _history_markdown(h) -> str:
    lines = [f"### hwbench history: {_runs(len(h.runs))}, {len(h.trends)} cases ({h.metric})", "",
             "| case | trend | first | last | change | change points |", "|---|---|---:|---:|---:|---|"]
    by_case: dict[str, list[str]] = {}
    for c in h.changes.to_dict("records"):
        what = f"{pct(c['step'])} at run {c['run_index']} (`{_md(c['run_id'])}`)"
        if c["env_changes"]:
            what += f": {_md(c['env_changes'])}"
        by_case.setdefault(c["case_id"], []).append(what)
    for o in h.outliers.to_dict("records"):
        by_case.setdefault(o["case_id"], []).append(f"outlier {pct(o['change'])} at run {o['run_index']} "
                                                    f"(`{_md(o['run_id'])}`): one run, not a step")
    for t in h.trends.to_dict("records"):
        lines.append(f"| `{_md(t['case_id'])}` | {t['spark']} | {value(t['first'], t['unit'])} | "
                     f"{value(t['last'], t['unit'])} | {pct(t['change']) if t['runs'] > 1 else 'one run'} | "
                     f"{'<br>'.join(by_case.get(t['case_id'], []))} |")
    lines += ["", f"_{_md(h.method)}_"]
    return "\n".join(lines)


COMMANDS = [compare, history]
