"""``hwbench procure``: cost per result, TCO, energy and carbon per case; a ranking of
machines over a workload mix; what training a model of a given size would take.

The numbers come from :mod:`hwbench.analysis.cost` (pure functions; formulas in its
docstring and docs/procurement.md); this module reads the files,
renders (terminal text that fits 80 columns, markdown, CSV) and maps user errors to
one line with exit code 2. An HTML procurement report belongs to the report machinery
(not built yet).
"""

from __future__ import annotations

import textwrap

import click

from ..options import FiniteFloat
from ..analysis.numbers import is_number
from ..report import format as fm
from ..report.format import grams, hours, kwh, usd

WIDTH = 80
# --train bounds: far beyond any training run, and small enough that FLOPs, hours and
# dollars stay finite floats (6 x params x tokens at 1e16 x 1e18 is 6e34 FLOPs)
MAX_TOKENS = 1e18
MAX_PARAMS = 1e16
MAX_DEVICES = 10**8
MARK = "~"  # before a figure derived from an estimated energy

EPILOG = """\b
Price file (TOML): [defaults] electricity_usd_per_kwh, pue, carbon_g_per_kwh,
lifetime_years, utilization; one [[machine]] per device: match (glob on the
recorded device name), price_usd (owning) or usd_per_hour (renting), source,
date. --prices catalog uses the shipped catalogue (every figure an assumption).
\b
Output: per-case costs; with several machines or --mix, the ranking; with
--train, the training projection. --format csv writes one table: the
projection with --train, else the ranking with --mix, else the per-case costs.
\b
Exit codes: 0 ok; 2 a file or argument is wrong, or a case ran on a device
without a price (--skip-unpriced leaves those cases out).
"""


def _list_regions(ctx, param, value) -> None:
    """--list-regions: every region code of codecarbon's data, then exit."""
    if not value or ctx.resilient_parsing:
        return
    from ..carbon import list_regions
    from ..errors import UserError

    try:
        lines = list_regions()
    except UserError as e:
        click.echo(f"hwbench: error: {e}", err=True)
        ctx.exit(2)
    click.echo("\n".join(lines))
    ctx.exit(0)


@click.command(epilog=EPILOG)
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option("--prices", "prices_path", required=True, metavar="FILE|catalog",
              help="Price file (TOML), or 'catalog' for the shipped catalogue of list prices and on-demand rates.")
@click.option("--basis", type=click.Choice(["any", "own", "rent"]), default="any", show_default=True,
              help="Use only the owning (price_usd) or renting (usd_per_hour) machine lines.")
@click.option("--mix", "mix_path", type=click.Path(dir_okay=False), metavar="MIX.toml",
              help="Workload mix for the ranking: [weights] glob on the case id = weight.")
@click.option("--rank-by", type=click.Choice(["perf_per_usd", "throughput", "perf_per_w", "cost"]),
              default="perf_per_usd", show_default=True, help="Order of the ranking.")
@click.option("--train", "train_model", metavar="MODEL", help="Project training MODEL (family:size, or family with --params).")
@click.option("--tokens", type=FiniteFloat(min=1, max=MAX_TOKENS), metavar="D",
              help="Training tokens for --train, e.g. 300e9 (at most 1e18).")
@click.option("--devices", type=click.IntRange(min=1, max=MAX_DEVICES), default=1, show_default=True,
              help="Devices for --train (at most 1e8).")
@click.option("--params", type=FiniteFloat(min=1, max=MAX_PARAMS), metavar="N",
              help="Parameters of the model to train (default: MODEL's; at most 1e16).")
@click.option("--scaling-efficiency", type=FiniteFloat(min=0.01, max=1), metavar="E",
              help="Fraction of linear speed-up kept on --devices devices, 0.01 to 1 (default 1.0, an assumption).")
@click.option("--skip-unpriced", is_flag=True, help="Leave out cases on devices without a price instead of failing.")
@click.option("--region", metavar="CODE",
              help="Grid carbon intensity of this region (FRA, USA, USA-CA, ...) from codecarbon's data "
                   "(hwbench[carbon]); the price file's carbon_g_per_kwh wins where it gives one.")
@click.option("--list-regions", is_flag=True, is_eager=True, expose_value=False, callback=_list_regions,
              help="List the --region codes with their intensity and year, and exit.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv"]), default="table", show_default=True)
def procure(results: tuple[str, ...], prices_path: str, basis: str, mix_path: str | None, rank_by: str,
            train_model: str | None, tokens: float | None, devices: int, params: float | None,
            scaling_efficiency: float | None, skip_unpriced: bool, region: str | None, fmt: str) -> None:
    """Cost, energy and carbon per result from RESULTS files (or folders), a ranking of
    machines, and what training a model would take. Formulas: docs/procurement.md."""
    from ..analysis import cost
    from ..analysis.derive import load_results
    from ..errors import UserError
    from ..prices import load_mix, load_prices
    from ..report.text import clean

    if train_model is None and (tokens is not None or params is not None or scaling_efficiency is not None):
        raise UserError("--tokens, --params and --scaling-efficiency go with --train MODEL")
    if train_model is not None and tokens is None:
        raise UserError("--train needs --tokens D (training tokens, e.g. 300e9)")
    prices = load_prices(prices_path)
    grid = kept = None
    if region is not None:
        from .. import carbon

        grid = carbon.lookup(region)
        prices, kept = carbon.apply(prices, grid)
    mix = load_mix(mix_path) if mix_path else None
    warnings: list[str] = []
    df = load_results(list(results), warn=warnings.append)
    if df.empty:
        raise UserError(f"{', '.join(results)}: no cases in the results")
    frame, skipped = cost.price_cases(df, prices, basis=basis, skip_unpriced=skip_unpriced)
    for d in skipped:
        warnings.append(f"{prices.path}: no price for device {d!r}: its cases are left out (--skip-unpriced)")
    for w in warnings:
        click.echo(f"hwbench: warning: {clean(w)}", err=True)
    if cost.ran(frame).empty:
        raise UserError(f"{', '.join(results)}: no case ran ok on a priced device")

    machines = list(dict.fromkeys(frame["machine"]))
    ranking = notes = None
    if train_model is None and (mix is not None or len(machines) > 1):
        ranking, notes = cost.rank_machines(frame, mix, rank_by)
        for n in notes:
            click.echo(f"hwbench: warning: {clean(n)}", err=True)
    training = assumptions = None
    if train_model is not None:
        training, assumptions = cost.project_training(frame, train_model, tokens, devices, params, scaling_efficiency)

    if fmt == "csv":
        table = training if training is not None else ranking if mix is not None else cost.ran(frame)
        click.echo(_csv(table), nl=False)
        return
    out: list[str] = []
    if training is not None:
        out += _training(training, assumptions, train_model, fmt)
    else:
        out += _cases(cost.ran(frame), fmt)
        out += _at_slo(cost.ran(frame), fmt)
        if ranking is not None:
            out += _ranking(ranking, mix, rank_by, fmt)
    out += _footer(prices, frame, fmt)
    if grid is not None:
        out += _wrap(fmt, f"Carbon intensity: {grid.describe()}"
                     + (f"; the price file's own carbon_g_per_kwh kept for {', '.join(kept)}" if kept else ""))
    click.echo(clean("\n".join(out), newlines=True))


COMMANDS = [procure]


# ------------------------------------------------------------------ numbers for humans


def _sig(x: float) -> str:
    """3 significant digits, no exponent; thousands with separators."""
    return fm.sig(x, grouping=True)


def ratio(x) -> str:
    return "" if not is_number(x) else f"{float(x):.3f}"


def pct(x) -> str:
    return "" if not is_number(x) else f"{float(x) * 100:.3g} %"


def _mfu(x) -> str:
    """MFU as pct(); above 1 marked, never a plain figure (hwbench.analysis.mfu)."""
    return pct(x) + (" >peak" if is_number(x) and float(x) > 1 else "")


def per(unit: str):
    return lambda x: "" if not is_number(x) else f"{_sig(float(x))} {unit}"


def _mark(r: dict, col: str, text: str) -> str:
    est = str(r.get("estimated_columns") or "").split(",")
    return f"{MARK}{text}" if text and col in est else text


# ------------------------------------------------------------------ rendering
def _text_table(headers: list[str], rows: list[list[str]], width: int = WIDTH, shrink: int = 0) -> list[str]:
    """Plain columns two spaces apart, numbers right-aligned; column ``shrink`` (text)
    is cut in the middle so that every line fits ``width``."""
    cols = list(zip(headers, *rows)) if rows else [(h,) for h in headers]
    widths = [max(len(c) for c in col) for col in cols]
    over = sum(widths) + 2 * (len(widths) - 1) - width
    if over > 0:
        widths[shrink] = max(8, widths[shrink] - over)

    def cut(s: str, w: int) -> str:
        if len(s) <= w:
            return s
        keep = w - 1
        return s[: (keep + 1) // 2] + "…" + s[len(s) - keep // 2:]

    def line(cells: list[str]) -> str:
        parts = []
        for i, (c, w) in enumerate(zip(cells, widths)):
            c = cut(c, w)
            parts.append(c.ljust(w) if i == shrink else c.rjust(w))
        return "  ".join(parts).rstrip()

    return [line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]


def _table(fmt: str, headers: list[str], rows: list[list[str]], shrink: int = 0) -> list[str]:
    if fmt == "markdown":
        from tabulate import tabulate

        esc = [[c.replace("|", "\\|") for c in r] for r in rows]
        return [tabulate(esc, headers=headers, tablefmt="github", disable_numparse=True), ""]
    return _text_table(headers, rows, shrink=shrink) + [""]


def _heading(fmt: str, text: str) -> list[str]:
    if fmt == "markdown":
        return [f"## {text}", ""]
    return textwrap.wrap(text, WIDTH) or [""]


def _wrap(fmt: str, text: str) -> list[str]:
    if fmt == "markdown":
        return [f"- {text}"]
    return textwrap.wrap(text, WIDTH, subsequent_indent="  ")


def _cases(ran, fmt: str) -> list[str]:
    out: list[str] = []
    for machine, g in ran.groupby("machine", sort=False):
        first = g.iloc[0].to_dict()
        basis = first["price_basis"]
        how = (f"owned, ${_sig(float(first['price_usd']))} over {float(first['lifetime_years']):g} years at "
               f"{pct(first['utilization'])} utilisation: {_range(g, 'usd_per_hour', usd)}/h" if basis == "own"
               else f"rented at {usd(float(first['usd_per_hour']) / int(first['devices']))}/h per device")
        out += _heading(fmt, f"{machine}: {how} ({first['price_ref']})")
        rows = g.to_dict("records")
        names, common = _short_ids([r["workload"] for r in rows]) if fmt != "markdown" else \
            ([r["workload"] for r in rows], [])
        if common:
            out += _wrap(fmt, f"every case: {', '.join(common)}")
        if fmt != "markdown":
            out.append("")
        gen = g["mode"].eq("generate").any()
        if fmt == "markdown":
            headers = ["case", "devices", "USD/h", "USD/1M samples"] + (["USD/1M tokens"] if gen else []) + \
                ["energy/1M samples", "CO2e/1M samples", "samples/USD", "samples/J", "TCO"] + \
                (["break-even utilisation"] if basis == "own" else [])
            body = [[r["workload"], str(int(r["devices"])), _mark(r, "usd_per_hour", usd(r["usd_per_hour"])),
                     _mark(r, "cost_usd_per_1m_samples", usd(r["cost_usd_per_1m_samples"]))]
                    + ([_mark(r, "cost_usd_per_1m_tokens", usd(r["cost_usd_per_1m_tokens"]))] if gen else [])
                    + [_mark(r, "energy_kwh_per_1m_samples", kwh(r["energy_kwh_per_1m_samples"])),
                       _mark(r, "co2_g_per_1m_samples", grams(r["co2_g_per_1m_samples"])),
                       _mark(r, "samples_per_usd", per("/USD")(r["samples_per_usd"])),
                       _mark(r, "samples_per_j", per("/J")(r["samples_per_j"])),
                       _mark(r, "tco_usd", usd(r["tco_usd"]))]
                    + ([_mark(r, "break_even_utilization", pct(r["break_even_utilization"]))] if basis == "own" else [])
                    for r in rows]
        else:
            headers = ["case", "USD/1M", "energy/1M", "CO2e/1M", "samples/J"]
            body = [[name, _mark(r, "cost_usd_per_1m_samples", usd(r["cost_usd_per_1m_samples"])),
                     _mark(r, "energy_kwh_per_1m_samples", kwh(r["energy_kwh_per_1m_samples"])),
                     _mark(r, "co2_g_per_1m_samples", grams(r["co2_g_per_1m_samples"])),
                     _mark(r, "samples_per_j", _sig(float(r["samples_per_j"])) if is_number(r["samples_per_j"]) else "")]
                    for name, r in zip(names, rows)]
        out += _table(fmt, headers, body)
        lines = []
        if gen and fmt != "markdown":
            for r in rows:
                if is_number(r["cost_usd_per_1m_tokens"]):
                    lines.append(f"{r['workload']}: {_mark(r, 'cost_usd_per_1m_tokens', usd(r['cost_usd_per_1m_tokens']))}"
                                 " per 1M generated tokens")
        if fmt != "markdown":
            lines.append("USD/1M, energy/1M, CO2e/1M: per 1M samples (sequences for generation), energy and CO2e "
                         "with the PUE; samples/J: at the device")
            lines.append(f"TCO over the lifetime's useful hours: {_range(g, 'tco_usd', usd)}")
        groups = sorted({int(d) for d in g["devices"] if int(d) > 1})
        if groups and fmt != "markdown":
            lines.append(f"parallel cases are priced as their group of {', '.join(map(str, groups))} devices "
                         "(world size x 1 per rank; a CPU group: 1 per node): the group's price, power and "
                         "throughput")
        rental = g["rental_usd_per_hour"].dropna()
        if basis == "own" and fmt != "markdown" and len(rental):
            lines.append(f"owning beats renting at {usd(rental.iloc[0])}/h above "
                         f"{_range(g, 'break_even_utilization', pct) or 'no'} utilisation "
                         f"(rental: {first['rental_source']})")
        for ln in lines:
            out += _wrap(fmt, ln)
        out.append("")
    return out


def _at_slo(ran, fmt: str) -> list[str]:
    """Serving cases priced at their capacity under the SLO, cheapest per 1M requests
    first (docs/serving.md); nothing where no case was priced this way."""
    if "priced_at_slo" not in ran or not ran["priced_at_slo"].fillna(False).astype(bool).any():
        return []
    g = ran[ran["priced_at_slo"].fillna(False).astype(bool)].sort_values("cost_usd_per_1m_requests_at_slo")
    out = _heading(fmt, "Serving at the SLO: priced at capacity (cheapest per 1M requests first)")
    rows = g.to_dict("records")
    names = [r["workload"] for r in rows]
    out += _wrap(fmt, f"machines: {', '.join(dict.fromkeys(str(r['machine']) for r in rows))}")
    if fmt != "markdown":
        names, common = _short_ids(names)
        if common:
            out += _wrap(fmt, f"every case: {', '.join(common)}")
        out.append("")
    headers = ["case", "capacity", "USD/1M req", "USD/1M tok", "J/request"]
    body = [[n, per("/s")(r["capacity_qps_at_slo"]),
             _mark(r, "cost_usd_per_1m_requests_at_slo", usd(r["cost_usd_per_1m_requests_at_slo"])),
             usd(r["cost_usd_per_1m_tokens_at_slo"]) if is_number(r["cost_usd_per_1m_tokens_at_slo"]) else "",
             _sig(float(r["energy_per_request_j"])) if is_number(r["energy_per_request_j"]) else ""]
            for n, r in zip(names, rows)]
    out += _table(fmt, headers, body)
    if fmt != "markdown":
        out += _wrap(fmt, "capacity: the highest request rate whose load point met the SLO (requests/s); "
                     "USD/1M req and tok at that rate; J/request: energy over the case's load points per request")
    out.append("")
    return out


def _short_ids(ids: list[str]) -> tuple[list[str], list[str]]:
    """The ids without the parts every one of them has (said once instead)."""
    split = [i.split("/") for i in ids]
    common = set(split[0]).intersection(*split[1:]) if len(split) > 1 else set()
    common = {c for c in common if ":" not in c}  # keep the model
    short = ["/".join(p for p in parts if p not in common) for parts in split]
    return short, [p for p in split[0] if p in common]


def _range(g, col: str, f) -> str:
    vals = g[col].dropna().astype(float)
    if vals.empty:
        return ""
    lo, hi = f(vals.min()), f(vals.max())
    mark = MARK if any(col in str(e).split(",") for e in g["estimated_columns"]) else ""
    return f"{mark}{lo}" if lo == hi else f"{mark}{lo} to {hi}"


def _ranking(rk, mix, rank_by: str, fmt: str) -> list[str]:
    what = f"mix {mix.name or mix.path}" if mix is not None else "every case weighted equally"
    out = _heading(fmt, f"Ranking by {rank_by} ({what}; 1.000 = the best machine on every case)")
    if fmt != "markdown":
        out.append("")
    rows = rk.to_dict("records")
    headers = ["#", "machine", "speed", "perf/USD", "perf/W", "USD/1M", "not run"]
    body = [[str(r["rank"]), r["machine"], ratio(r["throughput_norm"]),
             _mark(r, "perf_per_usd_norm", ratio(r["perf_per_usd_norm"])),
             _mark(r, "perf_per_w_norm", ratio(r["perf_per_w_norm"])),
             _mark(r, "cost_usd_per_1m_samples", usd(r["cost_usd_per_1m_samples"])),
             str(len(r["cases_not_run"]))] for r in rows]
    out += _table(fmt, headers, body, shrink=1)
    out += _wrap(fmt, "speed, perf/USD (samples per USD), perf/W (samples per J): weighted geometric means of "
                      "each case's value over the best machine's; USD/1M: weighted geometric mean of the cost "
                      "per 1M samples, over the cases each machine ran")
    for r in rows:
        if r["cases_not_run"]:
            out += _wrap(fmt, f"{r['machine']} could not run ({pct(1 - r['weight_covered'])} of the mix): "
                              + "; ".join(r["cases_not_run"]))
        for s in r["price_sources"]:
            out += _wrap(fmt, f"{r['machine']} price: {s}")
    out.append("")
    return out


def _training(tr, assumptions: list[str], model: str, fmt: str) -> list[str]:
    out = _heading(fmt, f"Training {model}: time, energy, cost and carbon per machine")
    if fmt != "markdown":
        out.append("")
    rows = tr.to_dict("records")
    headers = ["machine", "time", "energy", "cost", "CO2e", "TFLOP/s", "MFU"]
    body = [[r["machine"], hours(r.get("time_h")), _mark(r, "energy_kwh", kwh(r.get("energy_kwh"))),
             _mark(r, "cost_usd", usd(r.get("cost_usd"))),
             _mark(r, "co2_kg", grams(None if not is_number(r.get("co2_kg")) else float(r["co2_kg"]) * 1000)),
             "" if not is_number(r.get("achieved_tflops")) else _sig(float(r["achieved_tflops"])),
             _mfu(r.get("mfu"))] for r in rows]
    out += _table(fmt, headers, body, shrink=0)
    for r in rows:
        if isinstance(r.get("reason"), str) and r["reason"]:
            out += _wrap(fmt, f"{r['machine']}: {r['reason']}")
        elif isinstance(r.get("measured_case_id"), str):
            flags = ", ".join(r["quality_flags"])
            scaled = (f"; scaling efficiency {r['scaling_efficiency']:.0%} measured by {r['scaling_case_id']}"
                      if isinstance(r.get("scaling_case_id"), str) else "")
            out += _wrap(fmt, f"{r['machine']}: from {r['measured_case_id']} ({_sig(r['device_hours'])} device-hours"
                              f" on {r['devices']}{scaled}; {r['price_ref']}){'; flags: ' + flags if flags else ''}")
    out += _wrap(fmt, "Assumptions: " + "; ".join(assumptions))
    out.append("")
    return out


def _footer(prices, frame, fmt: str) -> list[str]:
    out = []
    if frame["energy_estimated"].fillna(False).astype(bool).any():
        out += _wrap(fmt, f"{MARK} derived from an estimated energy (energy_source = estimated, flag energy_estimated), "
                          "not a measurement")
    if prices.catalogue:
        out += _wrap(fmt, f"Assumptions: every price is from the catalogue shipped with hwbench ({prices.path}; "
                          "sources and dates above and in --format csv): list prices and on-demand rates at one date, "
                          "not a quote for you")
    if prices.defaults_assumed:
        from ..prices import Defaults

        d = Defaults()
        vals = ", ".join(f"{k} = {getattr(d, k):g}" for k in prices.defaults_assumed)
        out += _wrap(fmt, f"Assumptions: hwbench's defaults, not given in {prices.path}: {vals}")
    return out


def _csv(table) -> str:
    t = table.copy()
    for c in t.columns:
        if t[c].map(lambda v: isinstance(v, (list, tuple))).any():
            t[c] = t[c].map(lambda v: "; ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
    return t.to_csv(index=False)
