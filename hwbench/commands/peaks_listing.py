"""``hwbench list peaks``: the peaks MFU is measured against, with their sources.

Two kinds of rows: ``accelerator`` (one per device and form factor: the dense TFLOP/s
per precision of ``hwbench/data/peaks.csv``, TOP/s for int8) and ``cpu`` (one per
microarchitecture of ``hwbench/data/cpu_uarch.csv``: fp32 / fp64 FLOP per cycle per
core with the widest ISA, AMX rates, the FMA pipes per ISA, what matches it). JSON and
CSV give every field; the table gives the figures and, below each table, the sources.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import click

from .output import console, print_lines, width

_ORDER = {"low": 0, "medium": 1, "high": 2}


def accelerator_rows() -> list[dict[str, Any]]:
    """One row per (device, form factor) of the datasheet table, in table order."""
    from .. import peaks

    names: dict[tuple[str, str], list[str]] = {}
    for name, key in peaks.NAMES.items():
        names.setdefault(key, []).append(name)
    out = []
    for (device, variant), per in peaks.table().items():
        rows = list(per.values())
        sources = list(dict.fromkeys(r.source for r in rows))
        by_note: dict[str, list[str]] = {}
        for r in rows:
            if r.note:
                by_note.setdefault(r.note, []).append(r.precision)
        several = len(by_note) > 1 or any(r.confidence == "high" for r in rows) and by_note
        notes = [f"{', '.join(ks)}: {n}" if several else n for n, ks in by_note.items()]
        out.append({
            "kind": "accelerator", "device": device, "variant": variant,
            **{f"{k}_tflops": (per[k].dense_tflops if k in per else None) for k in peaks.PEAK_KEYS},
            "confidence": min((r.confidence for r in rows), key=_ORDER.__getitem__),
            "confidence_by_precision": {r.precision: r.confidence for r in rows},
            "source": "; ".join(sources), "date": max(r.date for r in rows), "note": "; ".join(notes),
            "url": next((r.url for r in rows if r.url), ""), "matched_names": names.get((device, variant), []),
        })
    return out


def cpu_rows() -> list[dict[str, Any]]:
    from .. import cpu_uarch

    return [{"kind": "cpu", **r} for r in cpu_uarch.listing()]


def show(fmt: str) -> None:
    acc, cpu = accelerator_rows(), cpu_rows()
    if fmt == "json":
        click.echo(json.dumps(acc + cpu, indent=1))
        return
    if fmt == "csv":
        import pandas as pd

        flat = [{**r, "confidence_by_precision": " ".join(f"{k}={v}" for k, v in r["confidence_by_precision"].items()),
                 "matched_names": "|".join(r["matched_names"])} for r in acc] + cpu
        # nullable dtypes: a count column stays "32", not "32.0", beside the empty cells of the other kind
        click.echo(pd.DataFrame(flat).convert_dtypes().to_csv(index=False), nl=False)
        return
    con, w = console(), width()
    for title, lines in (_accelerator_table(acc, w), _cpu_table(cpu, w)):
        print_lines(con, [title], style="bold")
        print_lines(con, lines)
        print_lines(con, [""])


def _num(v: Any) -> str:
    return "" if v is None else f"{v:.4g}"


_MARK = {"high": "", "medium": "*", "low": "**"}


def _sources(rows: list[dict], label, w: int) -> list[str]:
    out = ["sources:"]
    for r in rows:
        text = f"{label(r)}: {r['source']} ({r['date']}" + (f"; {r['url']}" if r.get("url") else "") + ")"
        sure = "" if r["confidence"] == "high" else r["confidence"]
        if sure or r.get("note"):
            text += " [" + ": ".join(x for x in (sure, r.get("note")) if x) + "]"
        out += textwrap.wrap(text, max(40, w) - 2, initial_indent="  ", subsequent_indent="    ")
    return out


def _accelerator_table(rows: list[dict], w: int) -> tuple[str, list[str]]:
    from .. import peaks
    from ..report.fit import Column, fit

    cols = [Column("device", "device", priority=0, align="left", row=lambda r: r["device"] + _MARK[r["confidence"]]),
            Column("variant", "form", str, priority=1, align="left")]
    cols += [Column(f"{k}_tflops", k, _num, priority=2) for k in peaks.PEAK_KEYS]
    lines = fit(rows, cols, w).lines + ["* medium, ** low confidence in some figure (see its source)"]
    lines += _sources(rows, lambda r: f"{r['device']} {r['variant']}", w)
    return "accelerators: dense peak per precision, TFLOP/s (int8: TOP/s)", lines


def _cpu_table(rows: list[dict], w: int) -> tuple[str, list[str]]:
    from ..report.fit import Column, fit

    cols = [Column("uarch", "microarchitecture", str, priority=0, align="left"),
            Column("fp32_flops_per_cycle", "fp32", str, priority=0),
            Column("fp64_flops_per_cycle", "fp64", str, priority=1),
            Column("amx_bf16_flops_per_cycle", "AMX bf16", _num, priority=2),
            Column("amx_int8_ops_per_cycle", "AMX int8", _num, priority=2),
            Column("fma", "FMA pipes per ISA (units x bits)", str, priority=3, align="left"),
            Column("confidence", "sure", str, priority=4, align="left")]
    lines = fit(rows, cols, w, keep_empty=("amx_bf16_flops_per_cycle",)).lines
    lines += _sources(rows, lambda r: f"{r['uarch']} ({r['match']})", w)
    return "CPUs: FLOP per cycle per core, widest ISA (peak = cores x clock x this)", lines
