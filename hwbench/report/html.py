"""One self-contained HTML report: opens from ``file://`` on an air-gapped machine and can
be mailed.

Figures are drawn by matplotlib as inline SVG: no JavaScript, no fonts or images to
fetch, text that stays selectable and sharp when zoomed or printed (plotly's
interactivity would cost about 3 MB of inline JavaScript per file). The page carries a
Content-Security-Policy that forbids scripts and any fetch, so even a string that
escaped escaping could not run or phone home.

Every figure is drawn from the DataFrame shown in the table beside it (readable without
the picture), every table has its CSV, and the whole per-case frame of
:func:`hwbench.load_results` is embedded as CSV (a ``data:`` link, ``id="data-csv"``).

Safety: every string that comes from a results file (host names, suite and model names,
failure reasons, flag details) is HTML-escaped here, at the renderer, and only
whitelisted characters of it reach a figure (:func:`svg_text`): matplotlib would
otherwise read ``$...$`` as mathtext.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..analysis import tradeoffs as tr
from . import format as fm
from .fit import abbreviate_ids
from .table import formatter_for, headline_columns, flops_unit, runs_of, machines, MACHINE_FLAGS

CSV_NAME = "hwbench-cases.csv"
MAX_SERIES = 12  # time-series figures at most (one chosen case per model)
MAX_SAMPLE_ROWS = 60  # rows of a time series shown in its table (the CSV has all)
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'none'; base-uri 'none'; form-action 'none'"


# ----------------------------------------------------------------------- text
def esc(v: Any) -> str:
    """Any value as HTML text, escaped for element content and quoted attributes alike."""
    return html.escape("" if fm.missing(v) else str(v), quote=True)


_SVG_SAFE = re.compile(r"[^A-Za-z0-9 _:./+=,()#%\-]")


def svg_text(v: Any, limit: int = 60) -> str:
    """Text from a results file as it may appear in a figure: whitelisted characters only
    (no ``$`` for mathtext, no markup), at most ``limit`` of them."""
    s = _SVG_SAFE.sub("", "" if fm.missing(v) else str(v))
    return s if len(s) <= limit else s[: limit - 1] + "~"


def slug(v: Any, used: set[str]) -> str:
    """An element id from ``v``: lower-case letters, digits and dashes, unique in ``used``."""
    base = re.sub(r"[^a-z0-9]+", "-", str(v).lower()).strip("-")[:40] or "x"
    s, n = base, 2
    while s in used:
        s, n = f"{base}-{n}", n + 1
    used.add(s)
    return s


def _csv_uri(df: pd.DataFrame) -> str:
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].map(lambda v: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
    data = out.to_csv(index=False).encode("utf-8")
    return "data:text/csv;charset=utf-8;base64," + base64.b64encode(data).decode("ascii")


def cases_csv(df: pd.DataFrame) -> str:
    """The per-case frame as the CSV the page embeds (quality flags joined by commas)."""
    out = df.copy()
    out["quality_flags"] = out["quality_flags"].map(lambda v: ",".join(v) if isinstance(v, (list, tuple)) else "")
    return out.to_csv(index=False)


def html_table(df: pd.DataFrame, columns: Sequence[tuple[str, str]] | None = None, *, csv_name: str | None = None,
               caption: str = "", cls: str = "") -> str:
    """``df`` as an HTML table with human-formatted, escaped cells; ``columns``:
    (column, header) pairs (default: every column, named as in the frame); a link to
    the raw frame as CSV when ``csv_name`` is given."""
    cols = list(columns) if columns is not None else [(c, c) for c in df.columns]
    cols = [(c, h) for c, h in cols if c in df.columns]
    fmts = [formatter_for(c) for c, _ in cols]  # one formatter per column, as the terminal's
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c, _ in cols]
    head = "".join(f'<th class="{"n" if n else "t"}">{esc(h)}</th>' for (_, h), n in zip(cols, numeric))
    body = []
    for r in df.itertuples(index=False):
        rd = dict(zip(df.columns, r))
        cells = "".join(f'<td class="{"n" if n else "t"}">{esc(f(rd[c]))}</td>' for (c, _), f, n in zip(cols, fmts, numeric))
        body.append(f"<tr>{cells}</tr>")
    link = ""
    if csv_name:
        link = (f'<a class="csv" download="{esc(csv_name)}" href="{_csv_uri(df[[c for c, _ in cols]])}">'
                f"CSV ({len(df)} rows)</a>")
    cap = f"<caption>{caption} {link}</caption>" if caption or link else ""
    return (f'<div class="tbl {cls}"><table>{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


# -------------------------------------------------------------------- figures
def _figure(w: float, h: float, rows: int = 1, cols: int = 1, sharex: bool = False):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout="constrained")
    axes = fig.subplots(rows, cols, sharex=sharex, squeeze=False)
    return fig, [a for row in axes for a in row]


FIG_W = 6.4  # inches: every figure is drawn at one width, so its text reads at one size on the page


def _log_axis(ax, which: str, fmt: Callable[[float], str]) -> None:
    """``ax``'s x or y axis (``which``) in log scale, labelled at 1, 2 and 5 per decade in
    human units (``fmt``); linear with a few round ticks where the data span less than
    a factor of 4 (a log axis would label it with overlapping or no ticks). Call it
    after plotting."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = axis.get_data_interval()
    narrow = np.isfinite([lo, hi]).all() and lo > 0 and hi / lo < 4
    (ax.set_xscale if which == "x" else ax.set_yscale)("linear" if narrow else "log")
    axis.set_major_locator(MaxNLocator(nbins=4) if narrow else LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))


def _fixed_log_axis(ax, which: str, fmt: Callable[[float], str]) -> None:
    """A log axis (a power law is a straight line) ticked at the data points only."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    pts = sorted({float(v) for line in ax.get_lines() if line.get_linestyle() == "None"
                  for v in (line.get_xdata() if which == "x" else line.get_ydata())})
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(FixedLocator(pts))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))


def to_svg(fig, label: str) -> str:
    """A matplotlib figure as inline SVG (text as text, no XML prolog), labelled for
    screen readers with ``label`` (escaped)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "hwbench", "path.simplify": True}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches=None)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    # the RDF metadata block names Dublin Core namespaces by URL: nothing a reader needs
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)
    # matplotlib repeats each label in a comment: drop them (size, and no second copy of any text)
    svg = re.sub(r"\s*<!--.*?-->", "", svg, flags=re.S)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{esc(label)}" ', 1)


_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]


def _series_label(r, runs: bool = False) -> str:
    """A curve's legend: precision, backend, variant, strategy and world size; with
    ``runs``, the run's short id too (a report of several runs draws each on its own)."""
    parts = [r.get("precision"), r.get("backend")]
    if not fm.missing(r.get("variant")) and r.get("variant") != "none":
        parts.append(r.get("variant"))
    if not fm.missing(r.get("parallelism")) and r.get("parallelism") != "none":  # a torchrun group: its own curve
        parts.append(f"{r.get('parallelism')}{r.get('world_size')}")
    if runs:
        parts.append(f"run {str(r.get('run_id'))[:8]}")
    return svg_text(" ".join(str(p) for p in parts if not fm.missing(p)))


def fig_batch_scaling(sc: pd.DataFrame, title: str) -> str:
    modes = list(dict.fromkeys(sc["mode"]))
    runs = sc["run_id"].nunique() > 1 if "run_id" in sc else False
    fig, axes = _figure(FIG_W, 3.0, 1, len(modes))
    labels = sorted({_series_label(r, runs) for r in sc.to_dict("records")})
    color = {lab: _COLORS[i % len(_COLORS)] for i, lab in enumerate(labels)}
    for ax, mode in zip(axes, modes):
        g = sc[sc["mode"] == mode]
        for _, curve in g.groupby(tr._key(g, [c for c in tr.SCALING_GROUP if c in g]), sort=False):
            lab = _series_label(curve.iloc[0].to_dict(), runs)
            ax.plot(curve["batch_size"].astype(float), curve["throughput_samples_per_s"], "o-", color=color[lab],
                    label=lab, ms=4)
            k = curve[curve["at_knee"]]
            if len(k):
                ax.plot(k["batch_size"].astype(float), k["throughput_samples_per_s"], "o", ms=11, mfc="none",
                        color=color[lab])
        ax.set_xscale("log", base=2)
        _log_axis(ax, "y", lambda v: fm.si(v))
        bs = sorted({int(b) for b in g["batch_size"]})
        ax.set_xticks(bs, [str(b) for b in bs])
        ax.minorticks_off()
        ax.set_title(svg_text(mode), fontsize=9)
        ax.set_xlabel("batch size")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("throughput (samples/s)")
    handles, labs = axes[0].get_legend_handles_labels()
    uniq = dict(zip(labs, handles))
    if uniq:
        axes[-1].legend(uniq.values(), uniq.keys(), fontsize=7, loc="best")
    return to_svg(fig, f"{title}: throughput against batch size")


def fig_latency(names: list[str], times_ms: list[np.ndarray], title: str) -> str:
    fig, (ax,) = _figure(FIG_W, 0.3 * len(names) + 1.0)
    ax.boxplot(times_ms, orientation="horizontal", whis=(1, 99), showfliers=False, widths=0.6,
               medianprops={"color": "#d62728"})
    ax.set_yticks(range(1, len(names) + 1), [svg_text(n, 48) for n in names], fontsize=7)
    _log_axis(ax, "x", fm.duration_ms)
    ax.invert_yaxis()
    ax.set_xlabel("latency per iteration")
    ax.grid(True, axis="x", alpha=0.3)
    return to_svg(fig, f"{title}: latency distributions")


def fig_pareto(d: pd.DataFrame, names: dict[Any, str], title: str, estimated: bool) -> str:
    fig, (ax,) = _figure(FIG_W, 3.4)
    on = d["on_front_2d"]
    ax.scatter(d.loc[~on, "energy_per_sample_j"], d.loc[~on, "throughput_samples_per_s"], s=18, color="#9aa5b1",
               label="dominated")
    f = d[on].sort_values("energy_per_sample_j")
    ax.plot(f["energy_per_sample_j"], f["throughput_samples_per_s"], "o-", color="#d62728", ms=5, label="Pareto front")
    for i, r in f.iterrows():
        ax.annotate(svg_text(names.get(i, ""), 30), (r["energy_per_sample_j"], r["throughput_samples_per_s"]),
                    fontsize=6, xytext=(4, 3), textcoords="offset points")
    _log_axis(ax, "x", fm.energy_j)
    _log_axis(ax, "y", lambda v: fm.si(v))
    ax.set_xlabel("energy per sample" + (" (estimated)" if estimated else ""))
    ax.set_ylabel("throughput (samples/s)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return to_svg(fig, f"{title}: throughput against energy per sample, Pareto front")


# (panel title, unit label, column test, scale)
_PANELS = [
    ("utilisation", "%", lambda c: "_pct" in c, 1.0),
    ("memory", "GiB", lambda c: c.endswith("_bytes") and "pcie" not in c, 2.0**-30),
    ("power", "W", lambda c: c.endswith("_w") or "power_w" in c, 1.0),
    ("clock", "MHz", lambda c: c.endswith("_mhz"), 1.0),
    ("temperature", "°C", lambda c: c.endswith("_c"), 1.0),
]


def series_columns(s: pd.DataFrame) -> list[tuple[str, str, float, list[str]]]:
    """The panels a time series fills: (title, unit, scale, columns), counters left out."""
    cols = [c for c in s.columns if c not in ("sampler", "t_s") and "counter" not in c and s[c].notna().any()]
    out = []
    for title, unit, test, scale in _PANELS:
        mine = [c for c in cols if test(c)]
        if mine:
            out.append((title, unit, scale, mine))
    return out


def fig_series(s: pd.DataFrame, window_s: float | None, title: str) -> str:
    panels = series_columns(s)
    fig, axes = _figure(FIG_W, 1.35 * len(panels) + 0.7, len(panels), 1, sharex=True)
    for ax, (name, unit, scale, cols) in zip(axes, panels):
        for i, c in enumerate(cols):
            v = s[["t_s", c]].dropna()
            ax.plot(v["t_s"], v[c] * scale, ".-", ms=3, lw=1, color=_COLORS[i % len(_COLORS)], label=svg_text(c))
        if window_s:
            ax.axvspan(0, window_s, color="#f2c94c", alpha=0.18, lw=0)
        ax.set_ylabel(f"{name} ({unit})", fontsize=7)
        ax.legend(fontsize=6, loc="upper right")
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("time from the start of the timed window (s)")
    return to_svg(fig, f"{title}: collector time series")


def fig_speedup(summary: pd.DataFrame) -> str:
    runs = summary["run_id"].nunique() > 1 if "run_id" in summary else False
    labels = [svg_text((f"run {str(r['run_id'])[:8]} " if runs else "") + f"{r['mode']} {r['precision']} {r['backend']}"
                       + ("" if r.get("variant") in (None, "none") else f" {r['variant']}"), 50)
              for r in summary.to_dict("records")]
    fig, (ax,) = _figure(FIG_W, 0.32 * len(labels) + 1.1)
    y = np.arange(len(labels))
    ax.barh(y, summary["speedup_geomean"], color=["#2ca02c" if v >= 1 else "#d62728" for v in summary["speedup_geomean"]])
    lo = summary["speedup_geomean"] - summary["speedup_min"]
    hi = summary["speedup_max"] - summary["speedup_geomean"]
    ax.errorbar(summary["speedup_geomean"], y, xerr=[lo.clip(lower=0), hi.clip(lower=0)], fmt="none", color="#333",
                lw=0.8, capsize=2)
    ax.axvline(1.0, color="#333", lw=0.8)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    _log_axis(ax, "x", lambda v: f"{fm.sig(v)}×")
    ax.set_xlabel("speed-up vs fp32 eager (geometric mean; bars: min-max over cases)")
    ax.grid(True, axis="x", alpha=0.3)
    return to_svg(fig, "speed-up against fp32 eager per precision and backend")


def fig_size_scaling(fits: pd.DataFrame) -> str:
    metrics = list(dict.fromkeys(fits["metric"]))
    fig, axes = _figure(FIG_W, 3.2, 1, len(metrics))
    runs = fits["run_id"].nunique() > 1 if "run_id" in fits else False
    workloads = list(dict.fromkeys(_fit_label(r, runs) for r in fits.to_dict("records")))
    color = {w: _COLORS[i % len(_COLORS)] for i, w in enumerate(workloads)}
    for ax, m in zip(axes, metrics):
        for r in fits[fits["metric"] == m].to_dict("records"):
            x = np.array([float(p) for p in r["params"].split(",")])
            y = np.array([float(v) for v in r["values"].split(",")])
            c = color[_fit_label(r, runs)]
            ax.plot(x, y, "o", color=c, label=_fit_label(r, runs))
            xs = np.geomspace(x.min(), x.max(), 20)
            ax.plot(xs, r["coefficient"] * xs ** r["exponent"], "-", color=c, lw=1)
            mid = math.sqrt(x.min() * x.max())
            ax.annotate(f"k = {r['exponent']:.2f}", (mid, r["coefficient"] * mid ** r["exponent"]), fontsize=7,
                        color=c, xytext=(4, 4), textcoords="offset points")
        _fixed_log_axis(ax, "x", fm.count)
        _fixed_log_axis(ax, "y", _SIZE_FMT.get(m, fm.plain))
        ax.set_xlabel("parameters")
        ax.set_title(_SIZE_TITLE.get(m, svg_text(m)), fontsize=8)
        ax.grid(True, alpha=0.3)
    handles, labs = axes[0].get_legend_handles_labels()
    fig.legend(handles, labs, fontsize=7, loc="outside lower center", ncols=min(3, len(labs)) or 1)
    return to_svg(fig, "model-size scaling with fitted power laws")


_SIZE_TITLE = {"throughput_samples_per_s": "throughput (samples/s)", "energy_per_sample_j": "energy per sample",
               "memory_peak_bytes": "device memory peak", "host_rss_peak_bytes": "worker RSS peak"}
_SIZE_FMT = {"throughput_samples_per_s": lambda v: fm.si(v), "energy_per_sample_j": fm.energy_j,
             "memory_peak_bytes": fm.nbytes, "host_rss_peak_bytes": fm.nbytes}


# one colour per parallel strategy, the same in every figure
_STRATEGY_COLORS = {"ddp": "#1f77b4", "ps": "#d62728", "fsdp": "#2ca02c", "tp": "#ff7f0e", "pp": "#9467bd"}


def _strategy_color(s: str, i: int) -> str:
    return _STRATEGY_COLORS.get(s, _COLORS[(i + 5) % len(_COLORS)])


def _world_size_axis(ax, sizes: Sequence[int]) -> None:
    """x: world size on a log2 axis, ticked at the sizes that ran."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(sizes), [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("world size (ranks)")
    ax.grid(True, alpha=0.3)


def fig_parallel_scaling(curves: pd.DataFrame, title: str) -> str:
    """The group's throughput against world size, one line per strategy, each with its
    ideal (N x throughput at world size 1, dotted), and the scaling efficiency; drawn
    from a :func:`hwbench.analysis.scaling.parallel_scaling` frame of one workload."""
    from matplotlib.lines import Line2D

    fig, (ax, eff) = _figure(FIG_W, 3.0, 1, 2)
    sizes = sorted({int(n) for n in curves["world_size"]})
    for i, (s, g) in enumerate(curves.groupby("parallelism", sort=True)):
        c = _strategy_color(str(s), i)
        x = g["world_size"].astype(float)
        ax.plot(x, g["throughput_samples_per_s"], "o-", color=c, ms=4, label=svg_text(s))
        ideal = g[g["ideal_throughput_samples_per_s"].notna()]
        if len(ideal) >= 2:
            ax.plot(ideal["world_size"].astype(float), ideal["ideal_throughput_samples_per_s"], ":", color=c, lw=1.2)
        eff.plot(x, g["scaling_efficiency"] * 100, "o-", color=c, ms=4, label=svg_text(s))
    _world_size_axis(ax, sizes)
    _log_axis(ax, "y", lambda v: fm.si(v))
    ax.set_ylabel("group throughput (samples/s)")
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], ls=":", color="#333", lw=1.2))
    labels.append("ideal: N x 1 rank")
    ax.legend(handles, labels, fontsize=7, loc="best")
    _world_size_axis(eff, sizes)
    eff.axhline(100, color="#333", lw=0.8, ls=":")
    top = float(np.nanmax(curves["scaling_efficiency"].to_numpy(dtype=float), initial=1.0)) * 100
    eff.set_ylim(0, max(105.0, top * 1.05))
    eff.set_ylabel("scaling efficiency (%)")
    return to_svg(fig, f"parallel scaling of {title}: group throughput and scaling efficiency against world size")


def fig_ps_vs_allreduce(cmp: pd.DataFrame, title: str) -> str:
    """The parameter server against allreduce at each world size: the group's throughput
    and the collective bytes per step, bars side by side; drawn from a
    :func:`hwbench.analysis.scaling.ps_vs_allreduce` frame of one workload."""
    from ..analysis import scaling as sc

    strategies = [s for s in sc.DATA_PARALLEL if cmp[f"throughput_samples_per_s_{s}"].notna().any()]
    fig, (thr, comm) = _figure(FIG_W, 2.8, 1, 2)
    x = np.arange(len(cmp))
    w = 0.8 / max(1, len(strategies))
    for i, s in enumerate(strategies):
        off = (i - (len(strategies) - 1) / 2) * w
        c = _strategy_color(s, i)
        thr.bar(x + off, cmp[f"throughput_samples_per_s_{s}"].astype(float), w, color=c, label=s)
        comm.bar(x + off, cmp[f"comm_bytes_per_step_{s}"].astype(float) / 2**20, w, color=c, label=s)
    for ax, label in ((thr, "group throughput (samples/s)"), (comm, "collective MiB per step")):
        ax.set_xticks(x, [str(int(n)) for n in cmp["world_size"]])
        ax.set_xlabel("world size (ranks)")
        ax.set_ylabel(label)
        ax.grid(True, axis="y", alpha=0.3)
    thr.yaxis.set_major_formatter(_si_formatter())
    thr.legend(fontsize=7, loc="best")
    return to_svg(fig, f"{title}: parameter server against allreduce, throughput and bytes per step")


def _si_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: fm.si(v))


def _fit_label(r: dict, runs: bool = False) -> str:
    v = r.get("variant")
    return svg_text((f"run {str(r.get('run_id'))[:8]} " if runs else "")
                    + f"{r['family']} {r['mode']} bs{r['batch_size']} {r['precision']} {r['backend']}"
                    + ("" if fm.missing(v) or v == "none" else f" {v}"), 60)


# ----------------------------------------------------------------- the page
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2430;background:#fff}
main{max-width:1280px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #dde3ea;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}p.note,figcaption,.muted{color:#5b6675;font-size:12.5px}
nav{background:#f5f7fa;border:1px solid #dde3ea;border-radius:6px;padding:8px 12px;font-size:13px}
nav a{margin-right:12px;white-space:nowrap}
.pair{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start;margin:8px 0 16px}
.pair>figure{flex:1 1 460px;max-width:640px;margin:0;min-width:0}.pair>.tbl{flex:1 1 480px}
figure svg{width:100%;height:auto;display:block}
.tbl{overflow:auto;max-height:460px;border:1px solid #e3e8ee;border-radius:4px;min-width:0}
table{border-collapse:collapse;font-size:12px;width:100%}
caption{text-align:left;padding:4px 6px;font-size:12px;color:#5b6675;caption-side:top}
th,td{padding:3px 7px;border-bottom:1px solid #eef1f4;vertical-align:top}
th{background:#f5f7fa;position:sticky;top:0;text-align:left;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.t{white-space:nowrap}.wrap td.t{white-space:normal;overflow-wrap:anywhere}
a.csv{margin-left:8px;font-size:11.5px}
.flag{display:inline-block;background:#fff4d6;border:1px solid #f0d48a;border-radius:3px;padding:0 5px;margin:1px;font-size:12px}
.bad{background:#fde8e8;border-color:#f5b5b5}
details{margin:6px 0 12px}summary{cursor:pointer;color:#2557a7}
"""


def _env_rows(records: Sequence[tuple[Path, Any]]) -> pd.DataFrame:
    """One row per segment of every run: the environment that measured its cases."""
    rows = []
    for path, rec in records:
        # a joined multi-node run: every node's segments (node 0's are also rec.segments)
        segs = [(f" node {n.node_rank}", seg) for n in rec.nodes for seg in n.segments] or \
            [("", seg) for seg in rec.segments]
        for node, seg in segs:
            e = seg.environment
            col = seg.collectors
            idle = seg.idle_baseline
            rows.append({
                "hostname": e.hostname, "run_id": rec.run_id, "segment": f"{seg.index}{node}",
                "cpu_model": e.cpu_model, "cpu_cores": f"{e.cpu_cores_physical or ''} physical / {e.cpu_cores_logical or ''} logical",
                "cpu_freq_max": f"{fm.mhz(e.cpu_freq_max_mhz)} ({e.cpu_freq_max_source})" if e.cpu_freq_max_mhz
                else "unknown (MFU needs it)",
                "cpu_governor": " / ".join(x for x in (e.cpu_governor, {True: "boost on", False: "boost off"}
                                                         .get(e.cpu_boost)) if x) or "not exposed",
                "memory_total": fm.nbytes(e.memory_total_bytes),
                "gpus": "; ".join(f"{g.name} ({fm.nbytes(g.memory_total_bytes)})" for g in e.gpus),
                "driver": " / ".join(v for v in (e.driver_version, e.cuda_driver_version) if v),
                "os": e.os, "python_version": e.python_version, "torch_version": e.torch_version,
                "hwbench_version": e.hwbench_version, "git_commit": (e.hwbench_git_commit or "")[:12],
                "collectors": ", ".join(col.active) if col else "",
                "collectors_unavailable": "; ".join(f"{k}: {v}" for k, v in col.unavailable.items()) if col else "",
                "idle_power_w": ", ".join(f"{k} {fm.power_w(v)} ({idle.energy_source.get(k, '')})"
                                          for k, v in idle.power_w.items()) if idle else "",
                "idle_flags": ", ".join(f.flag for f in idle.flags) if idle else "",
                "env_changes": "; ".join(seg.env_changes),
                "machine_profile": seg.machine_profile.profile_id if seg.machine_profile else "",
            })
    return pd.DataFrame(rows)


def _flag_html(df: pd.DataFrame) -> str:
    """Every quality flag with its count and one example's reason."""
    counts: dict[str, list[int]] = {}
    for i, fl in enumerate(df["quality_flags"]):
        for f in fl if isinstance(fl, (list, tuple)) else ():
            counts.setdefault(f, []).append(i)
    if not counts:
        return '<p class="note">No quality flags.</p>'
    items = []
    for f, idx in sorted(counts.items(), key=lambda kv: -len(kv[1])):
        r = df.iloc[idx[0]]
        detail = ""
        for part in str(r["flag_details"] if not fm.missing(r["flag_details"]) else "").split("; "):
            if part.startswith(f + ": "):
                detail = part[len(f) + 2:]
                break
        what = "machine-level" if f in MACHINE_FLAGS else "per case"
        items.append(f'<li><span class="flag">{esc(f)}</span> in {len(idx)} of {len(df)} cases ({what}); '
                     f'e.g. <code>{esc(r["case_id"])}</code>: {esc(detail)}</li>')
    return "<ul>" + "".join(items) + "</ul>"


def _raw_times(records) -> dict[tuple[str, str], np.ndarray]:
    out = {}
    for _, rec in records:
        for c in rec.cases:
            if c.measurement is not None and c.measurement.raw_times_s:
                out[(rec.run_id, c.case_id)] = np.array([t for rep in c.measurement.raw_times_s for t in rep]) * 1e3
    return out


def _n_samples(records) -> dict[tuple[str, str], int]:
    out = {}
    for _, rec in records:
        for c in rec.cases:
            out[(rec.run_id, c.case_id)] = max((len((s.samples or {}).get("t_s", [])) for s in c.collectors.values()),
                                               default=0)
    return out


class _Page:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.toc: list[tuple[str, str, int]] = []
        self.ids: set[str] = set()
        self.figures = 0

    def section(self, title: str, level: int = 2, key: str | None = None) -> None:
        i = slug(key or title, self.ids)
        self.toc.append((i, title, level))
        self.parts.append(f'<h{level} id="{i}">{esc(title)}</h{level}>')

    def add(self, s: str) -> None:
        self.parts.append(s)

    def pair(self, svg: str, caption: str, table: str) -> None:
        self.figures += 1
        self.parts.append(f'<div class="pair"><figure>{svg}<figcaption>{caption}</figcaption></figure>{table}</div>')


# (column, header) of the parallel scaling tables; columns without a value are left out
_CURVE_TABLE = [("parallelism", "strategy"), ("world_size", "ranks"), ("throughput_samples_per_s", "samples/s"),
                ("ideal_throughput_samples_per_s", "ideal samples/s"), ("scaling_efficiency", "efficiency"),
                ("processed_tokens_per_s", "tokens/s"), ("comm_fraction", "comm share"),
                ("comm_bytes_per_step", "comm bytes/step"), ("comm_s_per_step", "comm time/step"),
                ("throughput_samples_per_s_per_rank", "samples/s per rank"), ("global_batch_size", "global batch"),
                ("rank_memory_peak_bytes_max", "rank memory peak")]
_CMP_TABLE = [("world_size", "ranks"), ("throughput_samples_per_s_ddp", "ddp samples/s"),
              ("throughput_samples_per_s_ps", "ps samples/s"), ("throughput_ratio_ps_over_ddp", "ps / ddp"),
              ("comm_bytes_per_step_ddp", "ddp comm/step"), ("comm_bytes_per_step_ps", "ps comm/step"),
              ("comm_bytes_ratio_ps_over_ddp", "comm ps / ddp"), ("scaling_efficiency_ddp", "ddp efficiency"),
              ("scaling_efficiency_ps", "ps efficiency"), ("throughput_samples_per_s_fsdp", "fsdp samples/s"),
              ("comm_bytes_per_step_fsdp", "fsdp comm/step"), ("scaling_efficiency_fsdp", "fsdp efficiency")]


def _parallel_section(page: "_Page", df: pd.DataFrame, several_hosts: bool) -> None:
    """"Parallel scaling": per workload that ran as a torchrun group, the group's
    throughput and efficiency against world size per strategy, and the parameter server
    against allreduce side by side. Nothing where no case ran as a group."""
    from ..analysis import scaling as sc

    curves = sc.parallel_scaling(df)
    if curves.empty:
        return
    page.section("Parallel scaling", key="parallel-scaling")
    page.add('<p class="note">Cases that ran as a torchrun group: the group\'s throughput against world size '
             "(log<sub>2</sub>), with the ideal linear scaling from world size 1 dotted; scaling efficiency = "
             "throughput(N) / (N × throughput(1)); comm share = time in collectives per step (it may overlap "
             "compute: an upper bound); comm bytes: what the busiest rank's collectives carried per step.</p>")
    cmp = sc.ps_vs_allreduce(curves)
    group = [c for c in sc.WORKLOAD if c in curves]
    cmp_key = tr._key(cmp, group)
    workloads = list(curves.groupby(tr._key(curves, group), sort=False))
    for i, (key, g) in enumerate(workloads):
        r = g.iloc[0]
        name = sc.workload_id(str(r["case_id"]), r["parallelism"], r["world_size"]) + \
            (f" on {r['hostname']}" if several_hosts else "") + \
            (f" run {str(r['run_id'])[:8]}" if curves["run_id"].nunique() > 1 else "")
        # a world-size-1 baseline from another run (this run has none): the table names it
        other = g["scaling_baseline_run_id"].notna() & (g["scaling_baseline_run_id"] != g["run_id"])
        table = [(c, h) for c, h in _CURVE_TABLE if g[c].notna().any()]
        if other.any():
            table.insert(table.index(("scaling_efficiency", "efficiency")) + 1,
                         ("scaling_baseline_run_id", "baseline run"))
        suffix = f"-{i + 1}" if len(workloads) > 1 else ""
        # a heading, not a page.section: the contents line lists models under level 3
        page.add(f'<h3 id="{slug("parallel-" + name, page.ids)}">{esc(name)}</h3>')
        page.add(f'<p class="note">{esc(r["scaling"])} scaling'
                 + {"weak": " (batch per rank fixed)", "strong": " (global batch fixed)"}.get(str(r["scaling"]), "")
                 + "</p>")
        page.pair(fig_parallel_scaling(g, svg_text(name)),
                  "Group throughput against world size per strategy (log-log); dotted: the ideal, N × the "
                  "throughput at world size 1. Right: scaling efficiency.",
                  html_table(g, table, csv_name=f"parallel-scaling{suffix}.csv"))
        mine = cmp[[k == key for k in cmp_key]]
        if len(mine):
            page.pair(fig_ps_vs_allreduce(mine, svg_text(name)),
                      "Parameter server (ps: rank 0 gathers the gradients and sends the parameters back) against "
                      "allreduce data parallelism (ddp) at each world size: the group's throughput and the "
                      "collective bytes per step of the busiest rank. ps / ddp &gt; 1: the parameter server is faster.",
                      html_table(mine, [(c, h) for c, h in _CMP_TABLE if mine[c].notna().any()],
                                 csv_name=f"ps-vs-allreduce{suffix}.csv"))
    _comm_table(page, df)


_COMM_TABLE = [("run_id", "run"), ("workload", "workload"), ("parallelism", "strategy"), ("world_size", "ranks"),
               ("comm", "comm"), ("latency_ms_p50", "step"), ("step_speedup_vs_none", "speed-up vs none"),
               ("param_rel_l2_vs_none", "param deviation vs none"), ("comm_bytes_per_step", "comm bytes/step"),
               ("comm_compression_ratio", "compression"), ("comm_exposed_ms", "exposed comm/step"),
               ("comm_exposed_ms_none", "none's exposed"), ("comm_busy_ms", "busy comm/step")]


def _comm_table(page: "_Page", df: pd.DataFrame) -> None:
    """Gradient compression (``comm``) against none, one table; nothing without it."""
    from ..analysis import scaling as sc

    cmp = sc.comm_vs_none(df)
    if cmp.empty:
        return
    cmp = cmp.assign(workload=[sc.workload_id(str(c), p, n, m) for c, p, n, m in
                               zip(cmp["case_id"], cmp["parallelism"], cmp["world_size"], cmp["comm"])])
    cols = [(c, h) for c, h in _COMM_TABLE if c != "run_id" or cmp["run_id"].nunique() > 1]
    page.add(f'<h3 id="{slug("parallel-comm", page.ids)}">Gradient compression (comm) against none</h3>')
    page.add('<p class="note">Per strategy and world size: the median step and its speed-up over '
             "<code>comm = \"none\"</code>, the parameters' relative L2 deviation from the same steps run "
             "uncompressed (the accuracy cost), the bytes each rank's collectives carried per step, the "
             "compression (none's bytes / these), and communication time per step not overlapped by compute "
             "(exposed) next to all of it (busy, an upper bound).</p>")
    page.add(html_table(cmp, [(c, h) for c, h in cols if cmp[c].notna().any()], csv_name="comm-vs-none.csv"))


def render_html(df: pd.DataFrame, records: Sequence[tuple[Path, Any]], *, title: str | None = None,
                series_cases: Sequence[str] | None = None) -> str:
    """The report as one HTML document (a str). ``df``: :func:`hwbench.load_results` of
    ``records`` ((path, RunRecord) pairs, as :func:`hwbench.results.read_many` gives);
    ``series_cases``: case ids whose collector time series to draw (default: per model
    the ok case with the most samples)."""
    from .. import __version__
    from ..analysis.derive import load_samples

    page = _Page()
    hosts = [h for h, _ in machines(df)]
    title = title or f"hwbench report: {', '.join(hosts)}"
    files = list(dict.fromkeys(str(p) for p, _ in records))
    ok = df[df["status"] == "ok"]

    # ---- header
    page.add(f'<p class="note">{len(df)} cases ({len(ok)} ok) from {len(files)} results file'
             f'{"s" * (len(files) != 1)}: {", ".join(f"<code>{esc(f)}</code>" for f in files)}. '
             f'Built by hwbench {esc(__version__)}; every number below is derived from those files. '
             f'<a id="data-csv" download="{CSV_NAME}" href="data:text/csv;charset=utf-8;base64,'
             f'{base64.b64encode(cases_csv(df).encode()).decode("ascii")}">Download every case (CSV, '
             f"{len(df.columns)} columns)</a></p>")
    estimated = (ok["energy_source"] == "estimated").any()
    if estimated:
        page.add('<p class="note"><span class="flag">~ estimated energy</span> Some energy figures are estimates '
                 "(no energy counter on that machine), not measurements; they are marked in the tables.</p>")

    # ---- machines
    page.section("Machines and environments", key="machines")
    page.add(html_table(tr.machine_summary(df), csv_name="machines.csv", cls="wrap"))
    env = _env_rows(records)
    if len(env):
        page.add(html_table(env.T.reset_index().set_axis(["field", *[f"run {str(r)[:8]} seg {s}" for r, s in
                                                                      zip(env["run_id"], env["segment"])]], axis=1),
                            caption="Environment of each run segment", cls="wrap"))
    runs = pd.DataFrame([{"run": r.short_id, "suite": r.suite, "created": r.created, "status": r.status,
                          "cases ok": f"{r.n_ok}/{r.n_cases}", "results file": r.results_file} for r in runs_of(df)])
    page.add(html_table(runs, caption="Runs"))
    page.add("<h3>Quality flags</h3>" + _flag_html(df))

    # ---- headline
    page.section("Headline", key="headline")
    for host, g in machines(df):
        cols = headline_columns(False, flops_unit(g), status=True, reason=False)
        rows = g.to_dict("records")
        runs = g["run_id"].nunique() > 1  # the same case in several runs: say which run each row is
        body = "".join("<tr>" + f'<td class="t">{esc(r["case_id"])}</td>' +
                       (f'<td class="t">{esc(str(r["run_id"])[:8])}</td>' if runs else "") +
                       "".join(f'<td class="{"t" if c.align == "left" else "n"}">{esc(c.cell(r))}</td>' for c in cols)
                       + "</tr>" for r in rows)
        head = '<th class="t">case</th>' + ('<th class="t">run</th>' if runs else "") + "".join(
            f'<th class="{"t" if c.align == "left" else "n"}">{esc(c.header)}</th>' for c in cols)
        page.add(f"<h3>{esc(host)}</h3>")
        page.add(f'<div class="tbl"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')
    page.add('<p class="note">p50 / p90: per-iteration latency; samples/s = batch (a parallel case: the '
             "group's) / median latency; tokens/s: generated tokens for generate, batch × seq_len / median latency "
             "for infer and train; ~ marks estimated energy.</p>")

    # ---- trade-offs
    page.section("Precision and backend trade-offs", key="tradeoffs")
    sp = tr.speedup_table(df)
    summ = tr.speedup_summary(sp)
    others = summ[~tr.is_baseline(summ)]
    several_runs = df["run_id"].nunique() > 1
    run_col = [("run_id", "run")] * several_runs
    if several_runs:
        page.add(f'<p class="note">These {df["run_id"].nunique()} runs are analysed each on its own: every speed-up, '
                 "batch curve, size fit, Pareto front and scaling curve below keeps to one run (its baseline is in "
                 "the same run); the <b>run</b> column and legends name it (see Runs above).</p>")
    if len(others):
        page.pair(fig_speedup(others), "Speed-up of each precision / backend / variant against fp32 eager of the "
                  "same run, model, mode, batch and shape (throughput ratio; geometric mean over cases), with the "
                  "worst output deviation from fp32 eager beside it in the table.",
                  html_table(others, run_col + [("hostname", "host")] * (len(hosts) > 1) + [
                                      ("mode", "mode"), ("precision", "precision"),
                                      ("backend", "backend"), ("variant", "variant"), ("n_cases", "cases"),
                                      ("speedup_geomean", "speed-up"), ("speedup_min", "min"), ("speedup_max", "max"),
                                      ("energy_ratio_geomean", "energy/sample ratio"),
                                      ("rel_l2_error_max", "worst rel L2 error")], csv_name="speedup-summary.csv"))
        page.add("<details><summary>Every case against its baseline</summary>" + html_table(
            sp[sp["case_id"] != sp["baseline_case_id"]],
            [*run_col, ("case_id", "case"), ("baseline_case_id", "baseline"),
             ("throughput_samples_per_s", "samples/s"),
             ("baseline_throughput_samples_per_s", "baseline samples/s"), ("speedup", "speed-up"),
             ("energy_ratio", "energy/sample ratio"), ("rel_l2_error", "rel L2 error"),
             ("max_abs_error", "max abs error")], csv_name="speedup.csv") + "</details>")
    else:
        page.add('<p class="note">No case has an fp32 eager baseline of the same workload to compare with.</p>')

    # ---- model-size scaling
    page.section("Model-size scaling", key="size-scaling")
    fits = tr.size_scaling(df)
    if len(fits):
        page.pair(fig_size_scaling(fits), "Metric against parameter count across the sizes of a family, log-log, "
                  "with the fitted power law y = c·N<sup>k</sup> (least squares on the logs; two sizes fit exactly).",
                  html_table(fits, [*run_col, ("metric", "metric"), ("exponent", "exponent k"), ("r2", "R²"),
                                    ("family", "family"), ("sizes", "sizes"), ("mode", "mode"), ("batch_size", "batch"),
                                    ("precision", "precision"), ("backend", "backend"), ("variant", "variant"),
                                    ("n_points", "points")], csv_name="size-scaling.csv"))
    else:
        page.add('<p class="note">No family was run in two or more sizes under the same settings.</p>')

    # ---- parallel scaling (only where cases ran as a torchrun group)
    _parallel_section(page, df, several_hosts=len(hosts) > 1)

    # ---- per model
    page.section("Per model", key="models")
    raw = _raw_times(records)
    nsamp = _n_samples(records)
    paths = {rec.run_id: p for p, rec in records}
    scaling = tr.batch_scaling(df)
    chosen = set(series_cases or ())
    series_left = MAX_SERIES
    for model in dict.fromkeys(ok["model"].dropna()):
        m = ok[ok["model"] == model]
        page.section(f"{model}", level=3, key=f"model-{model}")
        short, common = abbreviate_ids([str(c) for c in m["case_id"]])
        if several_runs:  # the same case in two runs: name the run
            short = [f"{n} run {str(r)[:8]}" for n, r in zip(short, m["run_id"])]
        names = dict(zip(m.index, short))
        if common:
            page.add(f'<p class="note">Every case below: {esc(" · ".join(common))}</p>')
        # throughput vs batch size
        sc = scaling[scaling["model"] == model]
        sc = sc.assign(config=[_series_label(r, several_runs) for r in sc.to_dict("records")])
        if len(sc) and (sc["n_points"] >= 2).any():
            page.pair(fig_batch_scaling(sc, str(model)),
                      "Throughput against batch size per precision / backend (log-log); a ring marks the knee, "
                      "where a larger batch stops gaining 10 % per doubling.",
                      html_table(sc, [("mode", "mode"), ("config", "precision, backend"), ("batch_size", "batch"),
                                      ("throughput_samples_per_s", "samples/s"), ("latency_ms_p50", "p50"),
                                      ("gain_per_doubling", "gain/doubling"), ("scaling_efficiency", "efficiency"),
                                      ("knee_batch_size", "knee")], csv_name=f"batch-scaling-{svg_text(model)}.csv"))
        # latency distributions
        keys = [(r["run_id"], r["case_id"]) for r in m.to_dict("records")]
        have = [(i, raw[k]) for i, k in zip(m.index, keys) if k in raw and len(raw[k])]
        if have:
            lat = m.loc[[i for i, _ in have]].assign(case=[names[i] for i, _ in have])
            page.pair(fig_latency([names[i] for i, _ in have], [t for _, t in have], str(model)),
                      "Per-iteration latency from the raw times in the results file (log scale): box = quartiles, "
                      "red line = median, whiskers = 1st-99th percentile; points beyond are not drawn.",
                      html_table(lat, [("case", "case"), ("iterations", "iterations"), ("latency_ms_min", "min"),
                                       ("latency_ms_p50", "p50"), ("latency_ms_p90", "p90"), ("latency_ms_p99", "p99"),
                                       ("latency_iqr_rel", "IQR/p50"), ("latency_cv", "CV")],
                                 csv_name=f"latency-{svg_text(model)}.csv"))
        # Pareto: one front per run
        def run_suffix(run_id) -> str:
            return "-" + svg_text(str(run_id)[:8]) if several_runs else ""

        pd_ = tr.pareto_fronts(m)
        pd_["case"] = [names[i] for i in pd_.index]
        for run_id, front in pd_.groupby("run_id", sort=False, dropna=False):
            if front[["throughput_samples_per_s", "energy_per_sample_j"]].notna().all(axis=1).sum() < 2:
                continue
            est = bool((front["energy_source"] == "estimated").any())
            of_run = f" of run {str(run_id)[:8]}" if several_runs else ""
            page.pair(fig_pareto(front, names, str(model) + of_run, est),
                      f"Throughput against energy per sample{of_run}; the red line joins the cases no other case "
                      "beats on both. The table adds the 3-metric front with the output deviation from fp32 eager."
                      + (" Energy here is <b>estimated</b>, not measured." if est else ""),
                      html_table(front.sort_values("throughput_samples_per_s", ascending=False),
                                 [("case", "case"), ("throughput_samples_per_s", "samples/s"),
                                  ("energy_per_sample_j", "energy/sample"), ("rel_l2_error", "rel L2 error"),
                                  ("on_front_2d", "front (2)"), ("on_front_3d", "front (3)")],
                                 csv_name=f"pareto-{svg_text(model)}{run_suffix(run_id)}.csv"))
        # MFU and roofline
        roof = [("case", "case"), ("achieved_tflops", "achieved"), ("peak_tflops", "peak"), ("mfu", "MFU"),
                ("mfu_achievable", "MFU (measured peak)"), ("arithmetic_intensity", "FLOP/byte"),
                ("roofline_bound_tflops", "roof"), ("roofline_fraction", "of roof"), ("roofline_limit", "limit")]
        roof = [(c, h) for c, h in roof if c == "case" or m[c].notna().any()]
        if len(roof) > 1:
            why = [str(x) for x in dict.fromkeys(m["mfu_reason"].dropna())] + \
                  [str(x) for x in dict.fromkeys(m["roofline_reason"].dropna())]
            note = "".join(f'<p class="note">Not shown: {esc(w)}</p>' for w in why[:2])
            page.add("<details><summary>FLOP/s, MFU and roofline</summary>"
                     + html_table(pd_, roof, csv_name=f"mfu-{svg_text(model)}.csv") + note + "</details>")
        # time series
        if series_left > 0:
            if chosen:
                pick = [k for k in keys if k[1] in chosen]
            else:
                best = max(keys, key=lambda k: nsamp.get(k, 0))
                pick = [best] if nsamp.get(best, 0) >= 2 else []
            for run_id, case_id in pick[:series_left]:
                s = load_samples(paths[run_id], case_id)
                if len(s) < 2 or not series_columns(s):
                    continue
                series_left -= 1
                row = m[(m["run_id"] == run_id) & (m["case_id"] == case_id)].iloc[0]
                window = row["energy_window_s"] if not fm.missing(row["energy_window_s"]) else row["measured_s"]
                shown = [c for c in s.columns if c in ("sampler", "t_s") or
                         any(c in cols for *_, cols in series_columns(s))]
                page.pair(fig_series(s, None if fm.missing(window) else float(window), str(case_id)),
                          f"Collector samples of <code>{esc(case_id)}</code> (the case of this model with the most "
                          f"samples); the shaded band is the timed window.",
                          html_table(s[shown].head(MAX_SAMPLE_ROWS), [(c, c) for c in shown],
                                     caption=(f"first {MAX_SAMPLE_ROWS} of {len(s)} samples" if len(s) > MAX_SAMPLE_ROWS
                                              else ""), csv_name=f"samples-{svg_text(model)}.csv"))

    # ---- not ok
    page.section("Failed and skipped cases", key="not-ok")
    bad = tr.not_ok_cases(df)
    if len(bad):
        page.add(html_table(bad, [("hostname", "host"), ("case_id", "case"), ("status", "status"),
                                  ("reason", "reason")], csv_name="not-ok.csv", cls="bad wrap"))
    else:
        page.add('<p class="note">None: every case ran ok.</p>')

    toc = "".join(f'<a href="#{i}">{esc(t)}</a>' if lvl == 2 else "" for i, t, lvl in page.toc)
    models = " ".join(f'<a href="#{i}">{esc(t)}</a>' for i, t, lvl in page.toc if lvl == 3)
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="hwbench {esc(__version__)}">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>"
            f"<h1>{esc(title)}</h1><nav>{toc}<br><span class=\"muted\">models:</span> {models}</nav>"
            + "\n".join(page.parts) +
            f'<p class="note" data-figures="{page.figures}">{page.figures} figures. Regenerate with '
            f"<code>hwbench report {esc(' '.join(files))} --html FILE</code>.</p>"
            "</main></body></html>\n")


def load(paths, warn: Callable[[str], None] | None = None):
    """(DataFrame, [(path, RunRecord)]) of results files or folders, read once."""
    from ..analysis.derive import record_rows, scaling_efficiency, to_frame
    from ..results import read_many

    records = read_many(paths, warn)
    rows = [row for p, rec in records for row in record_rows(rec, str(Path(p)))]
    scaling_efficiency(rows)  # across files too, as load_results does
    return to_frame(rows), records


def write_html(paths, out: str | Path, warn: Callable[[str], None] | None = None, **kwargs) -> tuple[int, int]:
    """Write the report of results ``paths`` to ``out`` (atomically); returns (cases,
    figures)."""
    import os
    import tempfile

    from ..errors import UserError

    df, records = load(paths, warn)
    if df.empty:
        raise UserError(f"{', '.join(map(str, paths))}: no cases in the results")
    text = render_html(df, records, **kwargs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    return len(df), text.count('<figure>')
