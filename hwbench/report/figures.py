"""The HTML report's figures: matplotlib drawn as inline SVG (text as text, no
JavaScript, nothing to fetch), each from the frame shown in the table beside it, at
one width so their text reads at one size. Text from results files reaches a figure
only through :func:`~hwbench.report.escape.svg_text`."""

from __future__ import annotations

import io
import math
import re
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..analysis import tradeoffs as tr
from . import format as fm
from .escape import esc, svg_text


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


def series_label(r, runs: bool = False) -> str:
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
    labels = sorted({series_label(r, runs) for r in sc.to_dict("records")})
    color = {lab: _COLORS[i % len(_COLORS)] for i, lab in enumerate(labels)}
    for ax, mode in zip(axes, modes):
        g = sc[sc["mode"] == mode]
        for _, curve in g.groupby(tr._key(g, [c for c in tr.SCALING_GROUP if c in g]), sort=False):
            lab = series_label(curve.iloc[0].to_dict(), runs)
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

