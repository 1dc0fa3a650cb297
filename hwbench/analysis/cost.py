"""Money, energy and carbon: pure functions over the results DataFrame
(:func:`hwbench.analysis.derive.load_results`) and a validated price spec
(:mod:`hwbench.prices`). Renderers live in :mod:`hwbench.commands.procure`.

The formulas (docs/procurement.md), per case, with the case's measured
``power_w_mean`` (W), ``throughput_samples_per_s``, ``tokens_per_s`` and
``energy_per_sample_j`` (J), and the machine's site parameters. A parallel case is
priced as the group it is: ``devices`` (:func:`devices_per_case`) priced devices, with
the group's throughput, summed power and energy:

* owning: ``usd_per_hour = devices * price_usd / (lifetime_years * 8760 * utilization)
  + power_w_mean / 1000 * pue * electricity_usd_per_kwh``; renting: ``usd_per_hour =
  devices x`` the hourly price as given (energy included).
* ``cost_usd_per_1m_samples = usd_per_hour * 1e6 / (throughput_samples_per_s * 3600)``;
  for generation also ``cost_usd_per_1m_tokens`` from ``tokens_per_s``.
* ``energy_kwh_per_1m_samples = energy_per_sample_j * 1e6 / 3.6e6 * pue``;
  ``co2_g_per_1m_samples = energy_kwh_per_1m_samples * carbon_g_per_kwh``.
* ``samples_per_usd = throughput_samples_per_s * 3600 / usd_per_hour``;
  ``samples_per_j = 1 / energy_per_sample_j`` (perf per watt: samples/s per W, at the
  device, without PUE).
* ``tco_usd = usd_per_hour * lifetime_years * 8760 * utilization``: the cost of the
  useful hours of the lifetime (owning: the purchase price plus the energy of those
  hours; renting: renting that many hours).
* ``break_even_utilization = devices * price_usd / (lifetime_years * 8760 * (devices *
  rental_usd_per_hour - power_w_mean / 1000 * pue * electricity_usd_per_kwh))``: above this utilisation
  owning costs less per useful hour than renting at ``rental_usd_per_hour``; empty where
  the rental price does not even cover the energy (renting is always cheaper), above 1
  where owning never pays within the lifetime.

Serving cases (docs/serving.md) are also priced **at the SLO**: the row at a case's
capacity (``offered_qps == capacity_qps_at_slo``) gets ``priced_at_slo`` and
``cost_usd_per_1m_requests_at_slo = usd_per_hour * 1e6 / (capacity_qps_at_slo * 3600)``
(the hourly cost with the power measured at that load), for generation
``cost_usd_per_1m_tokens_at_slo`` from the tokens per request served there
(``tokens_per_s / achieved_qps``), and ``energy_per_request_j`` at that load.

An estimated energy (``energy_source == "estimated"``) makes every figure derived from
it carry the ``energy_estimated`` flag: the energy and carbon figures and
``samples_per_j`` always, and the cost figures of an owned machine (whose hourly price
includes the energy). Prices from the shipped catalogue make every cost figure carry
``price_assumption``.
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any

from ..errors import UserError
from ..io import IO_MODES
from ..prices import Mix, Price, PriceSpec
from .numbers import number

HOURS_PER_YEAR = 8760
J_PER_KWH = 3.6e6

# Columns derived from the measured energy (always) and, for an owned machine, from
# the measured power through usd_per_hour (the cost columns).
ENERGY_COLUMNS = ("energy_kwh_per_1m_samples", "co2_g_per_1m_samples", "samples_per_j")
COST_COLUMNS = ("usd_per_hour", "cost_usd_per_1m_samples", "cost_usd_per_1m_tokens", "samples_per_usd", "tco_usd",
                "break_even_utilization")

# The per-case frame of price_cases(): identity and provenance, then the figures.
CASE_COLUMNS = (
    "machine", "device_name", "hostname", "case_id", "workload", "model", "family", "size", "mode", "batch_size",
    "precision", "parallelism", "world_size", "comm", "devices", "scaling_efficiency",
    "status", "throughput_samples_per_s", "tokens_per_s", "power_w_mean", "energy_per_sample_j",
    "energy_source", "achieved_tflops", "mfu", "params",
    "price_basis", "price_usd", "usd_per_hour", "cost_usd_per_1m_samples", "cost_usd_per_1m_tokens",
    "energy_kwh_per_1m_samples", "co2_g_per_1m_samples", "samples_per_usd", "samples_per_j", "tco_usd",
    "rental_usd_per_hour", "break_even_utilization",
    "electricity_usd_per_kwh", "pue", "carbon_g_per_kwh", "lifetime_years", "utilization",
    "price_match", "price_name", "price_source", "price_date", "price_ref", "rental_source", "assumed_site",
    "price_assumption", "energy_estimated", "estimated_columns", "quality_flags", "results_file",
    "scenario", "offered_qps", "achieved_qps", "capacity_qps_at_slo", "energy_per_request_j", "priced_at_slo",
    "cost_usd_per_1m_requests_at_slo", "cost_usd_per_1m_tokens_at_slo",
)


class UnpricedError(UserError):
    """A measured case runs on a device the price file does not price."""


# ------------------------------------------------------------------ the formulas
def usd_per_hour_owning(price_usd: float, lifetime_years: float, utilization: float, power_w_mean: float,
                        pue: float, electricity_usd_per_kwh: float, devices: int = 1) -> float:
    """Hourly cost of ``devices`` owned devices, USD/h: their purchase price spread over
    the useful hours of the lifetime, plus the energy of one hour at the measured mean
    power (W; a group's: the sum over its devices) with the facility overhead (PUE)."""
    return (devices * price_usd / (lifetime_years * HOURS_PER_YEAR * utilization)
            + power_w_mean / 1000 * pue * electricity_usd_per_kwh)


def break_even_utilization(price_usd: float, lifetime_years: float, rental_usd_per_hour: float, power_w_mean: float,
                           pue: float, electricity_usd_per_kwh: float, devices: int = 1) -> float:
    """The utilisation (fraction of hours) above which owning ``devices`` devices costs
    less per useful hour than renting them at ``rental_usd_per_hour`` each; NaN where
    the rent does not cover the energy of an hour (renting always cheaper)."""
    margin = devices * rental_usd_per_hour - power_w_mean / 1000 * pue * electricity_usd_per_kwh
    if not margin > 0:
        return math.nan
    return devices * price_usd / (lifetime_years * HOURS_PER_YEAR * margin)


def devices_per_case(r: dict[str, Any]) -> int:
    """How many priced devices a case occupies: world size x devices per rank.

    A single-process case: 1. A parallel case on an accelerator: one device per rank
    (``world_size``). On a CPU the ranks of a node are processes sharing that node's
    cores, and a price line prices the CPU(s) the results name (the machine), so a
    CPU group occupies one priced device per node (``nnodes``), however many ranks."""
    par = r.get("parallelism")
    ws = number(r.get("world_size"))
    if par in (None, "none") or not isinstance(par, str) or math.isnan(ws) or ws <= 1:
        return 1
    if str(r.get("device") or "").split(":")[0] == "cpu":
        nodes = number(r.get("nnodes"))
        return int(nodes) if nodes >= 1 else 1
    return int(ws)




def _div(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) and not math.isnan(a) else math.nan


def _flags(v: Any) -> list[str]:
    if isinstance(v, (list, tuple)):
        return [str(x) for x in v]
    if isinstance(v, str):
        return [f for f in v.split(",") if f]
    return []


def workload_id(case_id: str, device: Any, threads: Any) -> str:
    """The case id without its device and thread-count parts: the same workload on
    another machine (``encoder:base/infer/bs32/seq128/bf16/eager``)."""
    parts = str(case_id).split("/")
    drop = {str(device)} if isinstance(device, str) else set()
    t = number(threads)
    if not math.isnan(t):
        drop.add(f"t{int(t)}")
    return "/".join(p for p in parts if p not in drop)


def machine_key(device_name: Any, hostname: Any) -> str:
    dev = device_name if isinstance(device_name, str) and device_name else "(unknown device)"
    host = hostname if isinstance(hostname, str) and hostname else "?"
    return f"{dev} @ {host}"


def energy_is_estimated(row: dict[str, Any]) -> bool:
    return row.get("energy_source") == "estimated" or "energy_estimated" in _flags(row.get("quality_flags")) \
        or "energy_estimated" in _flags(row.get("flags"))


# ------------------------------------------------------------------ per case
def price_cases(df, prices: PriceSpec, basis: str = "any", skip_unpriced: bool = False):
    """Every model-step case of ``df`` (data and checkpoint cases, which measure I/O, are
    left out) with its price and the cost / energy / carbon figures of
    the module docstring; one row per case, columns :data:`CASE_COLUMNS` (figures empty
    for cases that did not run ok). ``basis`` (``any``, ``own``, ``rent``) keeps the
    machine lines of that basis only.

    Returns ``(frame, skipped)``: ``skipped`` lists the devices without a price when
    ``skip_unpriced`` (their cases are left out); otherwise such a device among the
    cases that ran raises :class:`UnpricedError`, one line naming it and the file."""
    import pandas as pd

    rows = df.to_dict("records") if len(df) else []
    unpriced: dict[str, list[str]] = {}
    out: list[dict[str, Any]] = []
    for r in rows:
        if r.get("mode") in IO_MODES:
            continue  # data / checkpoint cases measure I/O, not a result a buyer pays for
        ok = r.get("status") == "ok"
        dev = r.get("device_name") if isinstance(r.get("device_name"), str) else None
        price = prices.lookup(dev, basis)
        if price is None and ok:
            unpriced.setdefault(dev or "(unknown device)", []).append(str(r.get("case_id")))
            continue
        out.append(_case(r, price, prices, ok))
    if unpriced and not skip_unpriced:
        names = ", ".join(repr(d) for d in unpriced)
        first = next(iter(unpriced.values()))[0]
        what = "" if basis == "any" else f" ({basis} basis)"
        raise UnpricedError(
            f"{prices.path}: no price{what} for device{'s' * (len(unpriced) > 1)} {names} (e.g. case {first}); "
            f"add a [[machine]] whose match glob matches it, or pass --skip-unpriced")
    frame = pd.DataFrame(out, columns=list(CASE_COLUMNS))
    return frame, sorted(unpriced)


def _case(r: dict[str, Any], price: Price | None, prices: PriceSpec, ok: bool) -> dict[str, Any]:
    row: dict[str, Any] = {k: r.get(k) for k in CASE_COLUMNS if k in r}
    row["machine"] = machine_key(r.get("device_name"), r.get("hostname"))
    row["devices"] = devices_per_case(r)
    row["workload"] = workload_id(r.get("case_id", ""), r.get("device"), r.get("threads"))
    flags = _flags(r.get("quality_flags")) or _flags(r.get("flags"))
    estimated = energy_is_estimated(r)
    row["energy_estimated"] = estimated
    if price is None:
        row.update(price_assumption=False, estimated_columns="", quality_flags=flags)
        return row
    m, site = price.machine, price.site
    row.update(
        price_basis=m.basis, price_usd=m.price_usd, price_match=m.match, price_name=m.label, price_source=m.source,
        price_date=m.date, price_ref=price.ref, price_assumption=price.assumption,
        electricity_usd_per_kwh=site.electricity_usd_per_kwh, pue=site.pue, carbon_g_per_kwh=site.carbon_g_per_kwh,
        lifetime_years=site.lifetime_years, utilization=site.utilization, assumed_site=",".join(site.assumed),
    )
    derived: list[str] = []
    if ok:
        derived = _figures(row, r, price, prices)
    if estimated:
        flags.append("energy_estimated")
    if price.assumption:
        flags.append("price_assumption")
    row["estimated_columns"] = ",".join(c for c in derived if estimated and not math.isnan(number(row.get(c))))
    row["quality_flags"] = list(dict.fromkeys(flags))
    return row


def _figures(row: dict[str, Any], r: dict[str, Any], price: Price, prices: PriceSpec) -> list[str]:
    """Fill the figures of one case that ran; return the columns derived from energy."""
    m, s = price.machine, price.site
    thr, tok = number(r.get("throughput_samples_per_s")), number(r.get("tokens_per_s"))
    power, eps = number(r.get("power_w_mean")), number(r.get("energy_per_sample_j"))
    useful_h = s.lifetime_years * HOURS_PER_YEAR * s.utilization
    n = row["devices"]  # a group's devices: its throughput, power and energy are the group's
    if m.basis == "own":
        usd_h = usd_per_hour_owning(m.price_usd, s.lifetime_years, s.utilization, power, s.pue,
                                    s.electricity_usd_per_kwh, devices=n)
    else:
        usd_h = n * float(m.usd_per_hour)
    row["usd_per_hour"] = usd_h
    row["cost_usd_per_1m_samples"] = _div(usd_h * 1e6, thr * 3600)
    row["cost_usd_per_1m_tokens"] = _div(usd_h * 1e6, tok * 3600) if r.get("mode") == "generate" else math.nan
    row.update(at_slo(r, usd_h))
    row["samples_per_usd"] = _div(thr * 3600, usd_h)
    row["tco_usd"] = usd_h * useful_h
    e_kwh = eps * 1e6 / J_PER_KWH * s.pue
    row["energy_kwh_per_1m_samples"] = e_kwh
    row["co2_g_per_1m_samples"] = e_kwh * s.carbon_g_per_kwh
    row["samples_per_j"] = _div(1.0, eps)
    rental, rental_source = prices.rental_for(price, str(r.get("device_name") or ""))
    row["rental_usd_per_hour"] = rental
    row["rental_source"] = rental_source
    row["break_even_utilization"] = (
        break_even_utilization(m.price_usd, s.lifetime_years, rental, power, s.pue, s.electricity_usd_per_kwh,
                               devices=n)
        if rental is not None else math.nan)
    return list(ENERGY_COLUMNS) + (list(COST_COLUMNS) if m.basis == "own" else [])


def at_slo(r: dict[str, Any], usd_per_hour: float) -> dict[str, Any]:
    """A serving row at its capacity priced at the SLO (module docstring); other rows
    get ``priced_at_slo`` False and empty figures."""
    cap, offered = number(r.get("capacity_qps_at_slo")), number(r.get("offered_qps"))
    out: dict[str, Any] = {"priced_at_slo": False, "cost_usd_per_1m_requests_at_slo": math.nan,
                           "cost_usd_per_1m_tokens_at_slo": math.nan}
    if math.isnan(cap) or math.isnan(offered) or not math.isclose(cap, offered, rel_tol=1e-9):
        return out
    out["priced_at_slo"] = True
    out["cost_usd_per_1m_requests_at_slo"] = _div(usd_per_hour * 1e6, cap * 3600)
    if r.get("mode") == "generate":
        per_req = _div(number(r.get("tokens_per_s")), number(r.get("achieved_qps")))
        out["cost_usd_per_1m_tokens_at_slo"] = _div(usd_per_hour * 1e6, cap * per_req * 3600)
    return out


def ran(frame):
    """The cases of a :func:`price_cases` frame that ran ok."""
    return frame[frame["status"] == "ok"].reset_index(drop=True)


# ------------------------------------------------------------------ ranking
RANK_BY = {  # option -> (column, higher is better)
    "perf_per_usd": ("perf_per_usd_norm", True),
    "throughput": ("throughput_norm", True),
    "perf_per_w": ("perf_per_w_norm", True),
    "cost": ("cost_usd_per_1m_samples", False),
}


def mix_weights(workloads: dict[str, list[str]], mix: Mix | None) -> tuple[dict[str, float], list[str]]:
    """Workload -> weight (summing to 1), and notes. ``workloads`` maps each workload
    id to the case ids it was seen as. Without a mix every workload weighs the same.
    A mix glob is matched against the workload id and the case ids (case-sensitive
    fnmatch); its weight is shared equally by the workloads it matches that no earlier
    glob took; a glob that matches nothing is noted and its weight dropped."""
    notes: list[str] = []
    if mix is None:
        n = len(workloads)
        return ({w: 1.0 / n for w in workloads} if n else {}), notes
    raw: dict[str, float] = {}
    for glob, weight in mix.weights:
        hit = [w for w, ids in workloads.items() if w not in raw
               and (fnmatch.fnmatchcase(w, glob) or any(fnmatch.fnmatchcase(c, glob) for c in ids))]
        if not hit:
            notes.append(f"{mix.path}: weights.{glob!r} matches no case in these results; its weight is left out")
            continue
        for w in hit:
            raw[w] = weight / len(hit)
    total = sum(raw.values())
    return {w: v / total for w, v in raw.items()}, notes


def _gmean(pairs: list[tuple[float, float]]) -> float:
    """Weighted geometric mean of (value, weight) over positive finite values, the
    weights renormalised over them."""
    good = [(v, w) for v, w in pairs if w > 0 and v > 0 and math.isfinite(v)]
    tw = sum(w for _, w in good)
    if not good or tw <= 0:
        return math.nan
    return math.exp(sum(w * math.log(v) for v, w in good) / tw)


def rank_machines(frame, mix: Mix | None = None, rank_by: str = "perf_per_usd"):
    """Rank the machines of a :func:`price_cases` frame over a workload mix.

    Per workload (:func:`workload_id`), each machine's best (fastest) ok case is
    normalised by the best machine on that workload (throughput, samples per USD,
    samples per J: best = 1). Per machine: the weighted geometric means of those
    (``throughput_norm``, ``perf_per_usd_norm``, ``perf_per_w_norm``) and of
    ``cost_usd_per_1m_samples`` (USD, not normalised), over the workloads it ran (the
    weights renormalised over them; ``weight_covered`` says how much of the mix that
    is), the workloads it could not run with why (``cases_not_run``), and the price
    lines used. Sorted by ``rank_by`` (:data:`RANK_BY`). Returns ``(frame, notes)``."""
    import pandas as pd

    if rank_by not in RANK_BY:
        raise ValueError(f"rank_by must be one of {', '.join(RANK_BY)}")
    rows = frame.to_dict("records")
    workloads: dict[str, list[str]] = {}
    for r in rows:
        workloads.setdefault(r["workload"], [])
        if r["case_id"] not in workloads[r["workload"]]:
            workloads[r["workload"]].append(r["case_id"])
    weights, notes = mix_weights(workloads, mix)
    machines = list(dict.fromkeys(r["machine"] for r in rows))
    best: dict[tuple[str, str], dict[str, Any]] = {}
    status: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        key = (r["machine"], r["workload"])
        status.setdefault(key, []).append(str(r["status"]))
        thr = number(r.get("throughput_samples_per_s"))
        if r["status"] == "ok" and thr > 0 and thr > number(best.get(key, {}).get("throughput_samples_per_s", -1)):
            best[key] = r
    top: dict[str, dict[str, float]] = {}
    for w in weights:
        cand = [best[(m, w)] for m in machines if (m, w) in best]
        top[w] = {c: max([number(b.get(c)) for b in cand if number(b.get(c)) > 0], default=math.nan)
                  for c in ("throughput_samples_per_s", "samples_per_usd", "samples_per_j")}
    out = []
    for m in machines:
        mine = [r for r in rows if r["machine"] == m]
        ran_w = [(w, best[(m, w)]) for w in weights if (m, w) in best]
        not_run = [f"{w} ({'/'.join(sorted(set(status[(m, w)])))})" if (m, w) in status else f"{w} (not in results)"
                   for w in weights if (m, w) not in best and weights[w] > 0]
        norm = {c: _gmean([(number(b.get(c)) / top[w][c], weights[w]) for w, b in ran_w])
                for c in ("throughput_samples_per_s", "samples_per_usd", "samples_per_j")}
        used = [b for _, b in ran_w]
        own = any(b.get("price_basis") == "own" for b in used)
        est = any(bool(b.get("energy_estimated")) for b in used)
        sources = list(dict.fromkeys(f"{b['price_ref']}: {b['price_source']} ({b['price_date']})" for b in used
                                     if isinstance(b.get("price_ref"), str)))
        flags = (["energy_estimated"] if est else []) + \
            (["price_assumption"] if any(bool(b.get("price_assumption")) for b in used) else [])
        out.append({
            "machine": m,
            "device_name": mine[0].get("device_name"),
            "hostname": mine[0].get("hostname"),
            "throughput_norm": norm["throughput_samples_per_s"],
            "perf_per_usd_norm": norm["samples_per_usd"],
            "perf_per_w_norm": norm["samples_per_j"],
            "cost_usd_per_1m_samples": _gmean([(number(b.get("cost_usd_per_1m_samples")), weights[w]) for w, b in ran_w]),
            "samples_per_usd": _gmean([(number(b.get("samples_per_usd")), weights[w]) for w, b in ran_w]),
            "samples_per_j": _gmean([(number(b.get("samples_per_j")), weights[w]) for w, b in ran_w]),
            "weight_covered": sum(weights[w] for w, _ in ran_w),
            "cases_run": len(ran_w),
            "cases_not_run": not_run,
            "price_basis": "/".join(sorted({str(b.get("price_basis")) for b in used})) if used else "",
            "price_sources": sources,
            "energy_estimated": est,
            "estimated_columns": ",".join(
                (["perf_per_w_norm", "samples_per_j"] if est else [])
                + (["perf_per_usd_norm", "cost_usd_per_1m_samples", "samples_per_usd"] if est and own else [])),
            "quality_flags": flags,
            "results_files": sorted({str(r.get("results_file")) for r in mine if r.get("results_file")}),
        })
    col, higher = RANK_BY[rank_by]
    res = pd.DataFrame(out)
    if len(res):
        res = res.sort_values(col, ascending=not higher, na_position="last", kind="stable").reset_index(drop=True)
    res.insert(0, "rank", range(1, len(res) + 1))
    return res, notes


# ------------------------------------------------------------------ training
def target_params(model: str, params: float | None = None) -> tuple[str, float, str]:
    """(family, N, where N came from) for ``--train MODEL`` (``family`` or
    ``family:size``). N is ``params`` if given, else the registry's parameters of that
    size that one token goes through (the active parameters of a mixture of experts)."""
    from .. import models

    family, _, size = model.partition(":")
    if family not in models.REGISTRY:
        raise UserError(f"--train: unknown model family {family!r}; known: {', '.join(models.REGISTRY)}")
    if params is not None:
        return family, float(params), "--params"
    if not size:
        raise UserError(f"--train {model}: name a size (family:size, see `hwbench list models`) or give --params N")
    fam = models.REGISTRY[family]
    if size not in fam.sizes:
        raise UserError(f"--train: unknown size {size!r} of {family}; known: {', '.join(fam.sizes)}")
    return family, float(fam.active_params(fam.sizes[size])), f"{model} in hwbench's model registry"


def project_training(frame, model: str, tokens: float, devices: int, params: float | None = None,
                     scaling_efficiency: float | None = None):
    """What training ``model`` on ``tokens`` tokens with ``devices`` devices would take
    on each machine of a :func:`price_cases` frame.

    ``train_flops = 6 * N * D`` (dense transformer training: forward + backward per
    parameter per token). Each device sustains the achieved FLOP/s of that family's
    measured training case on the machine (``achieved_tflops = mfu * peak``: the exact
    model if measured, else its largest measured size, the fastest configuration of
    it; single-process cases only: a parallel case's FLOP/s is a group's), times the
    scaling efficiency for ``devices`` devices: ``scaling_efficiency`` when given (an
    assumption, flagged ``scaling_assumed``); else, where the machine ran a parallel
    training case of the family at exactly ``devices`` ranks, its measured
    ``scaling_efficiency`` (the best strategy's; flagged ``scaling_measured``, with
    ``scaling_case_id``); else 1.0, ideal linear scaling (``scaling_assumed`` for more
    than one device). Then ``device_hours = train_flops / (achieved_tflops * 1e12 *
    scaling_efficiency) / 3600``, ``time_h = device_hours / devices``,
    ``energy_kwh = power_w_mean / 1000 * device_hours * pue``, ``cost_usd =
    usd_per_hour * device_hours``, ``co2_kg = energy_kwh * carbon_g_per_kwh / 1000``.
    Returns ``(frame, assumptions)``: one row per machine (a machine without such a
    training case has an empty projection and a ``reason``), and the assumptions that
    hold for every row."""
    import pandas as pd

    family, n, n_source = target_params(model, params)
    flops = 6.0 * n * tokens
    eff, eff_note = _scaling_assumption(family, devices, scaling_efficiency)
    assumptions = [
        f"N = {n:.4g} parameters ({n_source}); D = {tokens:.4g} tokens; 6·N·D = {flops:.4g} FLOPs (dense transformer)",
        "each device sustains the measured achieved TFLOP/s (= MFU x peak) of the family's training case",
        eff_note,
    ]
    rows = frame[(frame["status"] == "ok") & (frame["mode"] == "train") & (frame["family"] == family)]
    if "world_size" in rows.columns:
        ws = rows["world_size"].fillna(1).astype(int)
        rows, group = rows[ws == 1], rows[ws > 1]
    else:
        group = rows.iloc[0:0]
    out = []
    for m in dict.fromkeys(frame["machine"]):
        mine = rows[(rows["machine"] == m) & (rows["achieved_tflops"].astype(float) > 0)]
        eff_m, eff_case = eff, None
        if scaling_efficiency is None and devices > 1 and not group.empty:
            eff_m, eff_case = _measured_scaling(group, m, devices) or (eff, None)
        base: dict[str, Any] = {"machine": m, "params": n, "tokens": float(tokens), "train_flops": flops,
                                "devices": int(devices), "scaling_efficiency": eff_m, "scaling_case_id": eff_case}
        if mine.empty:
            base["reason"] = f"no training result of {family} with achieved TFLOP/s on this machine"
            out.append(base)
            continue
        base.update(_projection(mine, model, flops, devices, eff_m, eff_case, scaling_efficiency))
        out.append(base)
    res = pd.DataFrame(out)
    if "time_h" in res:
        res = res.sort_values("time_h", na_position="last", kind="stable").reset_index(drop=True)
    return res, assumptions


def _scaling_assumption(family: str, devices: int, scaling_efficiency: float | None) -> tuple[float, str]:
    """The scaling efficiency assumed where none is measured, and the sentence saying so."""
    if scaling_efficiency is None:
        return 1.0, ("ideal linear scaling (1.0) assumed for 1 device" if devices == 1 else
                     f"scaling efficiency for {devices} devices: measured where the machine ran a parallel "
                     f"training case of {family} at {devices} ranks (the best strategy's), else ideal linear "
                     "scaling (1.0) assumed, making time, energy and cost lower bounds "
                     "(--scaling-efficiency to set it)")
    return float(scaling_efficiency), f"scaling efficiency {scaling_efficiency:g} for {devices} devices, as given"


def _measured_scaling(group, machine: str, devices: int) -> tuple[float, str] | None:
    """The best measured scaling efficiency of ``machine``'s parallel training cases at
    exactly ``devices`` ranks, and its case id; None where there is none."""
    meas = group[(group["machine"] == machine) & (group["world_size"].astype(int) == devices)
                 & (group["scaling_efficiency"].astype(float) > 0)]
    if meas.empty:
        return None
    best = meas.loc[meas["scaling_efficiency"].astype(float).idxmax()]
    return float(best["scaling_efficiency"]), best["case_id"]


def _projection(mine, model: str, flops: float, devices: int, eff_m: float, eff_case: str | None,
                scaling_efficiency: float | None) -> dict[str, Any]:
    """One machine's projection from its training cases ``mine`` (the exact model, else
    the largest size measured; its fastest configuration): time, energy, cost, CO2 and
    the flags saying what was measured and what assumed."""
    exact = mine[mine["model"] == model]
    pick = exact if not exact.empty else mine[mine["params"].astype(float) == mine["params"].astype(float).max()]
    r = pick.loc[pick["achieved_tflops"].astype(float).idxmax()].to_dict()
    tflops = float(r["achieved_tflops"])
    device_hours = flops / (tflops * 1e12 * eff_m) / 3600
    power = number(r.get("power_w_mean"))
    energy = power / 1000 * device_hours * number(r.get("pue"))
    flags = []
    if r["model"] != model:
        flags.append("mfu_from_other_size")
    if math.isnan(number(r.get("mfu"))):
        flags.append("mfu_unknown")
    if eff_case is not None:
        flags.append("scaling_measured")
    elif devices > 1 or scaling_efficiency is not None:
        flags.append("scaling_assumed")
    if r.get("energy_estimated"):
        flags.append("energy_estimated")
    if r.get("price_assumption"):
        flags.append("price_assumption")
    return {
        "device_name": r.get("device_name"), "hostname": r.get("hostname"),
        "measured_case_id": r["case_id"], "measured_model": r["model"], "measured_params": number(r.get("params")),
        "mfu": number(r.get("mfu")), "achieved_tflops": tflops,
        "device_hours": device_hours, "time_h": device_hours / devices, "time_days": device_hours / devices / 24,
        "power_w_mean": power, "energy_kwh": energy, "usd_per_hour": number(r.get("usd_per_hour")),
        "cost_usd": number(r.get("usd_per_hour")) * device_hours,
        "co2_kg": energy * number(r.get("carbon_g_per_kwh")) / 1000,
        "pue": number(r.get("pue")), "carbon_g_per_kwh": number(r.get("carbon_g_per_kwh")),
        "price_basis": r.get("price_basis"), "price_ref": r.get("price_ref"),
        "price_source": r.get("price_source"), "price_date": r.get("price_date"),
        "estimated_columns": ",".join(
            (["energy_kwh", "co2_kg"] + (["cost_usd", "usd_per_hour"] if r.get("price_basis") == "own" else []))
            if r.get("energy_estimated") else []),
        "quality_flags": flags, "reason": None,
    }
