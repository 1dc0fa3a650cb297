"""The per-case tables of ``hwbench run`` and ``hwbench report``.

One set of column specs serves every output: the terminal (columns chosen by priority
to fit the width, numbers for humans, :mod:`.fit`), markdown (every column with data,
numbers for humans, never truncated) and the machine-readable formats (CSV, JSON,
Parquet: raw numbers under their unit-carrying names, never truncated). Rows come from
:func:`hwbench.load_results` (or :func:`~hwbench.analysis.derive.to_frame` of a live
record), so a table can always be traced to its results files.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import pandas as pd

from . import format as fm
from .fit import Column, abbreviate_ids, cut, fit
from .sections.parallel import parallel_sections
from .text import clean, md
from .views import render_markdown, render_terminal

# Flags that describe the machine rather than the case: said once (before the run, and
# as the "~" mark on estimated energy), not counted per case.
MACHINE_FLAGS = ("energy_estimated",)

ESTIMATED_MARK = "~"


def _estimated(key: str, f: Callable[[Any], str]) -> Callable[[Any], str]:
    """A cell of an energy figure, marked when the energy is an estimate."""

    def cell(r) -> str:
        s = f(r.get(key))
        return f"{ESTIMATED_MARK}{s}" if s and r.get("energy_source") == "estimated" else s

    return cell


def _energy_column(key: str, header: str, f: Callable[[Any], str], priority: int) -> Column:
    """A column of an energy figure (J, W) whose cells are marked when estimated."""
    return Column(key, header, row=_estimated(key, f), priority=priority)


def _flags(r) -> str:
    fl = r.get("quality_flags")
    if not isinstance(fl, (list, tuple)):
        return ""
    return ",".join(f for f in fl if f not in MACHINE_FLAGS)


def _flops(r) -> str:
    return fm.flops(r.get("achieved_tflops"), r.get("device"))


def _flops_column(unit: str | None) -> Column:
    """Achieved FLOP/s: in GFLOP/s where every row ran on a CPU, TFLOP/s where every row
    ran on an accelerator (the unit in the header), else with the unit in each cell."""
    if unit in ("G", "T"):
        scale = 1e3 if unit == "G" else 1.0
        return Column("achieved_tflops", f"{unit}FLOP/s",
                      lambda v: "" if fm.missing(v) else fm.sig(float(v) * scale), priority=3)
    return Column("achieved_tflops", "FLOP/s", row=_flops, priority=3)


def flops_unit(df: pd.DataFrame) -> str | None:
    kinds = {str(d).split(":")[0] for d in df["device"].dropna()}
    return None if len(kinds) != 1 else ("G" if kinds == {"cpu"} else "T")


def _tokens(r) -> str:
    """tokens/s: generated tokens for a generate case (``tokens_per_s``), tokens through
    the model for infer / train of a sequence model (``processed_tokens_per_s``)."""
    v = r.get("tokens_per_s")
    return fm.rate(r.get("processed_tokens_per_s") if fm.missing(v) else v)


TOKENS_NOTE = "tokens/s: generated (generate); batch x seq_len / step (infer, train)"


def _reason(r) -> str:
    v = r.get("reason")
    return "" if fm.missing(v) or r.get("status") == "ok" else str(v)


# (DataFrame column, terminal header, formatter, priority; in the order shown). Priority
# 0 is always shown; the rest are added in ascending priority while they fit.
def headline_columns(wide: bool = False, flops: str | None = None, status: bool = True,
                     reason: bool = True) -> list[Column]:
    """The summary's columns; ``flops``: "G" / "T" / None (see :func:`_flops_column`);
    ``status``: show the status column (left out where every case is ok); ``reason``:
    a column of why a case is not ok (the terminal says it below the table instead,
    see :func:`status_notes`)."""
    cols = [
        Column("status", "status", fm.plain, priority=0, align="left"),
        Column("latency_ms_p50", "p50", fm.duration_ms, priority=0),
        Column("throughput_samples_per_s", "samples/s", fm.rate, priority=0),
        Column("tokens_per_s", "tokens/s", row=_tokens, priority=1),
        Column("ttft_ms_p50", "TTFT p50", fm.duration_ms, priority=3),
        Column("tpot_ms_p50", "TPOT p50", fm.duration_ms, priority=4),
        Column("latency_ms_p90", "p90", fm.duration_ms, priority=3),
        Column("latency_iqr_rel", "IQR/p50", fm.percent, priority=4),
        _flops_column(flops),
        Column("mfu", "MFU", fm.mfu, priority=5),
        _energy_column("energy_per_sample_j", "energy/sample", fm.energy_j, priority=2),
        _energy_column("energy_per_token_j", "energy/token", fm.energy_j, priority=4),
        _energy_column("power_w_mean", "power", fm.power_w, priority=6),
        Column("memory_peak_bytes", "mem peak", fm.nbytes, priority=6),
        Column("quality_flags", "flags", row=_flags, priority=5, align="left", shrink=True, min_width=8),
        Column("reason", "reason", row=_reason, priority=1, align="left", shrink=True, min_width=16),
    ]
    if not reason:
        cols.pop()
    if wide:
        cols[-2:-2] = [
            Column("latency_ms_p99", "p99", fm.duration_ms, priority=7),
            Column("latency_ms_min", "min", fm.duration_ms, priority=7),
            Column("latency_cv", "CV", fm.percent, priority=7),
            Column("iterations", "iters", fm.plain, priority=7),
            Column("first_iter_ms", "first iter", fm.duration_ms, priority=7),
            Column("compile_s", "compile", fm.duration_s, priority=7),
            Column("params", "params", fm.count, priority=7),
            Column("rel_l2_error", "rel L2 err", fm.column("rel_l2_error"), priority=7),
            _energy_column("energy_j", "energy", fm.energy_j, priority=7),
            Column("energy_source", "energy source", fm.plain, priority=7, align="left"),
            Column("cpu_util_pct_mean", "CPU util", fm.pct, priority=7),
            Column("proc_rss_bytes_max", "RSS max", fm.nbytes, priority=7),
            Column("gpu_util_pct_mean", "GPU util", fm.pct, priority=7),
        ]
    return cols if status else cols[1:]


def check_columns(df: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """``--columns`` names, checked against the frame's columns (a UserError names the
    unknown one and the closest known)."""
    from ..errors import UserError

    out = []
    for n in names:
        n = n.strip()
        if not n:
            continue
        if n not in df.columns:
            close = difflib.get_close_matches(n, list(df.columns), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see docs/reference/columns.md"
            raise UserError(f"--columns: no column {n!r}{hint}")
        out.append(n)
    return out


def user_columns(names: Sequence[str]) -> list[Column]:
    return [Column(n, n, fm.column(n), priority=0, align="left" if n in _TEXT else "right") for n in names]


_TEXT = {"results_file", "run_id", "suite", "run_status", "hostname", "device_name", "torch_version", "hwbench_version",
         "case_id", "model", "family", "size", "mode", "precision", "backend", "device", "variant", "status", "reason",
         "flops_counted_reason", "peak_source", "mfu_reason", "accuracy_model", "energy_source", "estimate_basis",
         "quality_flags", "flag_details"}


# --------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class Run:
    run_id: str
    suite: str
    created: Any
    status: str
    n_cases: int
    n_ok: int
    results_file: str
    nnodes: int = 1  # a multi-node run: the machines its parallel cases spanned

    @property
    def short_id(self) -> str:
        return self.run_id[:8]

    def describe(self, file: str = "path") -> str:
        """run id · suite · date · status · cases ok · file (``file``: "path" as given,
        "name" of the file, or "" to leave it out)."""
        from pathlib import Path

        when = "" if fm.missing(self.created) else pd.Timestamp(self.created).strftime("%Y-%m-%d %H:%M UTC")
        status = self.status if self.status == "complete" else f"{str(self.status).upper()} (incomplete run)"
        f = {"path": self.results_file, "name": Path(self.results_file).name}.get(file, "")
        nodes = f" · {self.nnodes} nodes" if self.nnodes > 1 else ""
        return clean(f"run {self.short_id} · {self.suite} · {when} · {status} · {self.n_ok}/{self.n_cases} ok"
                     + nodes + (f" · {f}" if f else ""))

    def fitted(self, width: int | None, indent: str = "  ") -> str:
        """:meth:`describe` within ``width``: the file's path, else its name, else none."""
        for file in ("path", "name", ""):
            line = indent + self.describe(file)
            if width is None or len(line) <= width:
                return line
        return cut(line, width)


def runs_of(df: pd.DataFrame) -> list[Run]:
    """The runs in ``df``, oldest first (by creation time)."""
    out = []
    for (rid, path), g in df.groupby(["run_id", "results_file"], sort=False, dropna=False):
        first = g.iloc[0]
        nn = first.get("nnodes")
        out.append(Run(str(rid), str(first["suite"]), first["created"], str(first["run_status"]), len(g),
                       int((g["status"] == "ok").sum()), str(path), int(nn) if not fm.missing(nn) else 1))
    return sorted(out, key=lambda r: (pd.Timestamp(r.created) if not fm.missing(r.created) else pd.Timestamp(0, tz="UTC"),
                                      r.run_id))


def machines(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``df`` split by machine (host name), in order of first appearance."""
    host = df["hostname"].astype("object").where(df["hostname"].notna(), "unknown host")
    hosts = list(dict.fromkeys(host))
    if len(hosts) == 1:  # the frame itself: a copy of a 100,000-row frame is hundreds of MB
        return [(str(hosts[0]), df)]
    return [(str(h), df[host == h]) for h in hosts]


def _machine_title(host: str, g: pd.DataFrame, width: int | None = None) -> str:
    devices = [str(d) for d in dict.fromkeys(g["device_name"].dropna())]
    title = clean(f"{host}" + (f" · {', '.join(devices)}" if devices else ""))
    return title if width is None else cut(title, width)


# ---------------------------------------------------------------------- terminal
@dataclass(frozen=True)
class Rendered:
    lines: list[str]  # title, table, footnotes
    hidden: list[str]  # columns left out for want of width


class _Columns:
    """The columns of frame ``g`` as Python values, each converted when first read."""

    def __init__(self, g: pd.DataFrame):
        self.g = g
        self.done: dict[str, list] = {}

    def __call__(self, key: str) -> list:
        vals = self.done.get(key)
        if vals is None:
            if key not in self.g.columns:
                raise KeyError(key)
            vals = self.done[key] = column_values(self.g[key])
        return vals


def column_values(s: pd.Series) -> list:
    """A column's values as ``DataFrame.to_dict("records")`` gives them: the Series'
    own iteration, and object or extension columns' values boxed as pandas boxes them."""
    from pandas.core.dtypes.cast import maybe_box_native

    vals = list(s)
    if s.dtype == object or isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
        vals = list(map(maybe_box_native, vals))
    return vals


class _Row(dict):
    """A row of ``to_dict("records")`` that reads a column only when asked for it (a
    table shows 15 of 200 columns: converting them all was most of a large report)."""

    __slots__ = ("_cols", "_i")

    def __missing__(self, key: str) -> Any:
        return self._cols(key)[self._i]

    def get(self, key: str, default: Any = None) -> Any:
        v = dict.get(self, key, _ABSENT)  # the row's own keys (_case, _run)
        if v is not _ABSENT:
            return v
        vals = self._cols.done.get(key)
        if vals is None:
            try:
                vals = self._cols(key)
            except KeyError:
                return default
        return vals[self._i]


_ABSENT = object()


def lazy_rows(g: pd.DataFrame) -> list[dict]:
    """``g.to_dict("records")``, each row's columns read on demand (:class:`_Row`)."""
    cols = _Columns(g)
    rows = []
    for i in range(len(g)):
        r = _Row()
        r._cols, r._i = cols, i
        rows.append(r)
    return rows


def _rows(g: pd.DataFrame, several_runs: bool, abbreviate: bool = True) -> tuple[list[dict], list[str]]:
    rows = lazy_rows(g)
    ids = [str(r["case_id"]) for r in rows]
    short, common = abbreviate_ids(ids) if abbreviate else (ids, [])
    for r, s in zip(rows, short):
        r["_case"] = s
        r["_run"] = str(r.get("run_id") or "")[:8]
    return rows, common


def _key_columns(several_runs: bool) -> list[Column]:
    """What names a row of the per-case table: the case (and its run, where the rows
    come from several runs; see :func:`_rows`)."""
    key = [Column("_case", "case", str, priority=0, align="left")]
    if several_runs:
        key.append(Column("_run", "run", str, priority=0, align="left"))
    return key


def render_group(g: pd.DataFrame, width: int | None, *, wide: bool = False, columns: Sequence[str] = (),
                 abbreviate: bool = True) -> tuple[list[str], list[str], list[str]]:
    """(table lines, columns hidden for width, parts common to every case id)."""
    several = g["run_id"].nunique() > 1
    rows, common = _rows(g, several, abbreviate)
    key = _key_columns(several)
    if columns:
        cols = key + user_columns(columns)
        w = None
    else:
        cols = key + headline_columns(wide, flops_unit(g), status=bool((g["status"] != "ok").any()), reason=wide)
        w = None if wide else width
    f = fit(rows, cols, w)
    return f.lines, f.hidden, common


def render_report(df: pd.DataFrame, width: int | None, *, wide: bool = False, columns: Sequence[str] = (),
                  title: str | None = None) -> list[str]:
    """Every machine in ``df``: a title (host, devices), its runs (id, suite, date,
    status, file), the parts common to every case id, the table, and footnotes."""
    out: list[str] = []
    all_hidden: list[str] = []
    split = machines(df)
    for host, g in split:
        if out:
            out.append("")
        runs = runs_of(g)
        out.append(title if title and len(split) == 1 else _machine_title(host, g, width))
        out += [r.fitted(width) for r in runs]
        lines, hidden, common = render_group(g, width, wide=wide, columns=columns)
        if common:
            out.append("  every case: " + clean(" · ".join(common)))
        out += lines
        if not wide:
            out += status_notes(g, width)
        all_hidden += [h for h in hidden if h not in all_hidden]
        out += footnotes(g)
    if all_hidden:
        out.append(hidden_note(all_hidden, width))
    if not columns:
        out += _parallel_lines(df, width)
    return out


def _parallel_lines(df: pd.DataFrame, width: int | None) -> list[str]:
    """The parallel scaling tables (``--view scaling``) after the per-case tables, where
    cases ran as a torchrun group."""
    sections = parallel_sections(df)
    return ["", *render_terminal(sections, width)] if sections else []


def hidden_note(hidden: Sequence[str], width: int | None) -> str:
    """One line naming the columns left out for width, and how to see them."""
    line = f"not shown for width: {', '.join(hidden)} (--wide, --columns)"
    return line if width is None else cut(line, width)


def footnotes(g: pd.DataFrame) -> list[str]:
    out = []
    if (g["energy_source"] == "estimated").any():
        out.append(f"{ESTIMATED_MARK} estimated energy (no energy counter on this machine): not a measurement")
    if g["tokens_per_s"].notna().any() and g["processed_tokens_per_s"].notna().any():
        out.append(TOKENS_NOTE)  # one column, two meanings: say which is which
    return out


def status_notes(g: pd.DataFrame, width: int | None, most: int = 8) -> list[str]:
    """Why cases are not ok, below the table: each failed / oom / timeout case on a
    line (``most`` of them), skipped cases grouped by reason with a count."""
    ids, _ = abbreviate_ids([str(x) for x in g["case_id"]])
    out: list[str] = []
    # two columns, not itertuples() over every column: a report of 100,000 cases
    rows = list(zip(g["status"], g["reason"]))
    bad = [(i, (status, reason)) for i, (status, reason) in enumerate(rows) if status not in ("ok", "skipped")]
    for i, (status, reason) in bad[:most]:
        line = clean(f"{status} {ids[i]}: {'' if fm.missing(reason) else reason}")
        out.append(line if width is None else cut(line, width))
    if len(bad) > most:
        out.append(f"... and {len(bad) - most} more not ok (hwbench report FILE --columns status,reason)")
    reasons: dict[str, int] = {}
    for status, reason in rows:
        if status == "skipped":
            key = "" if fm.missing(reason) else str(reason)
            reasons[key] = reasons.get(key, 0) + 1
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:3]:
        line = clean(f"skipped {n}: {reason}")
        out.append(line if width is None else cut(line, width))
    if len(reasons) > 3:
        out.append(f"skipped: {len(reasons) - 3} more reasons (hwbench report FILE --columns status,reason)")
    return out


# ---------------------------------------------------------------------- warnings
def flag_summary(df: pd.DataFrame, width: int, worst: int = 3) -> list[str]:
    """Per-case quality flags counted, the worst few named (noisy: by IQR/median and
    CV); machine-level flags (energy_estimated) are left to the run's notes. A
    handful of lines at most, each within ``width``."""
    counts: dict[str, list[int]] = {}
    for i, fl in enumerate(df["quality_flags"]):
        for f in fl if isinstance(fl, (list, tuple)) else ():
            if f not in MACHINE_FLAGS:
                counts.setdefault(f, []).append(i)
    if not counts:
        return []
    ids, _ = abbreviate_ids([str(x) for x in df["case_id"]])
    n = len(df)
    out = []
    for flag, idx in sorted(counts.items(), key=lambda kv: -len(kv[1])):
        what = f"warning: {flag} in {len(idx)} of {n} case{'s' * (n > 1)}"
        if flag == "noisy":
            sub = df.iloc[idx]
            score = sub[["latency_iqr_rel", "latency_cv"]].max(axis=1).to_numpy()
            order = [idx[k] for k in sorted(range(len(idx)), key=lambda k: -score[k])][:worst]
            out.append(what + "; worst:")
            w = max(len(ids[i]) for i in order)
            for i in order:
                r = df.iloc[i]
                out.append(cut(f"  {ids[i]:<{w}}  IQR/p50 {fm.percent(r['latency_iqr_rel'])}, CV {fm.percent(r['latency_cv'])}",
                               width))
        else:
            import textwrap

            i = idx[0]
            detail = _detail(df.iloc[i]["flag_details"], flag)
            out.append(cut(f"{what}, e.g. {ids[i]}:", width))
            wrapped = textwrap.wrap(clean(detail), max(20, width - 4), initial_indent="  ", subsequent_indent="  ")
            out += wrapped[:1] + ([cut(" ".join(wrapped[1:]).strip().join(["  ", ""]), width)] if len(wrapped) > 1 else [])
    return out


def _detail(details: Any, flag: str) -> str:
    if fm.missing(details):
        return ""
    for part in str(details).split("; "):
        if part.startswith(flag + ": "):
            return part[len(flag) + 2:]
    return ""


# ------------------------------------------------------------------- machine output
MACHINE_COLUMNS = ("results_file", "run_id", "created", "run_status", "hostname", "device_name", "suite", "case_id",
                   "status", "latency_ms_p50", "latency_ms_p90", "latency_iqr_rel", "throughput_samples_per_s",
                   "tokens_per_s", "processed_tokens_per_s", "ttft_ms_p50", "tpot_ms_p50", "achieved_tflops", "mfu",
                   "energy_per_sample_j", "energy_per_token_j", "power_w_mean", "energy_source", "memory_peak_bytes",
                   "quality_flags", "reason")


def summary_table(df: pd.DataFrame, *, wide: bool = False, columns: Sequence[str] = ()) -> pd.DataFrame:
    """Raw values for CSV / JSON / Parquet, never truncated: where each row came from,
    the case and its headline numbers under their unit-carrying names (``wide``: every
    column; ``columns``: the case id and those)."""
    if columns:
        keep = ["case_id", *[c for c in columns if c != "case_id"]]
    elif wide:
        keep = list(df.columns)
    else:
        keep = [c for c in MACHINE_COLUMNS if c in df.columns]
    return df[keep].copy()


def to_markdown(df: pd.DataFrame, *, wide: bool = False, columns: Sequence[str] = ()) -> str:
    """Markdown: a section per machine with its runs, then a table with full case ids,
    every column that has data, numbers for humans; never truncated."""
    out: list[str] = []
    for host, g in machines(df):
        out.append(f"### {md(_machine_title(host, g))}\n")
        for r in runs_of(g):
            out.append(f"- {md(r.describe())}")
        out.append("")
        several = g["run_id"].nunique() > 1
        rows, _ = _rows(g, several, abbreviate=False)
        cols = _key_columns(several) + (user_columns(columns) if columns else
                      headline_columns(wide, flops_unit(g), status=bool((g["status"] != "ok").any())))
        shown = [c for c in cols if c.priority == 0 or any(c.cell(r) for r in rows)]
        out.append("| " + " | ".join(md(c.header) for c in shown) + " |")
        out.append("|" + "|".join("---:" if c.align == "right" else ":---" for c in shown) + "|")
        for r in rows:
            out.append("| " + " | ".join(md(c.cell(r)) for c in shown) + " |")
        notes = footnotes(g)
        if notes:
            out += ["", *(md(n) for n in notes)]
        out.append("")
    if not columns:
        sections = parallel_sections(df)
        if sections:
            out.append(render_markdown(sections))
    return "\n".join(out).rstrip() + "\n"

