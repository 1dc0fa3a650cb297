"""Terminal and markdown views of the trade-off analyses (``hwbench report --view``):
the same frames as the HTML report (:mod:`hwbench.analysis.tradeoffs`), for pull-request
comments and CI logs.

* ``tradeoffs``: speed-up of each precision / backend / variant against fp32 eager,
  with the energy ratio and the accuracy cost (output deviation), summarised and per case;
* ``scaling``: throughput against batch size with the knee, per curve, and model-size
  power-law fits;
* ``pareto``: per model, the cases on the front of throughput (max) and energy per
  sample (min), and of those two plus the output deviation (min).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..analysis import tradeoffs as tr
from .fit import Column, abbreviate_ids, fit
from .html import _fmt
from .text import clean

VIEWS = ("tradeoffs", "scaling", "pareto")

# A view: [(title, frame, [(column, header)])]
Section = tuple[str, pd.DataFrame, list[tuple[str, str]]]


def _short(df: pd.DataFrame, col: str = "case_id") -> pd.DataFrame:
    df = df.copy()
    df["case"] = abbreviate_ids([str(c) for c in df[col]])[0] if len(df) else []
    return df


def view_sections(df: pd.DataFrame, view: str) -> list[Section]:
    """The tables of ``view`` (see the module docstring), as raw frames with the columns
    to show and their headers."""
    if view == "tradeoffs":
        sp = tr.speedup_table(df)
        summ = tr.speedup_summary(sp)
        per = sp[sp["case_id"] != sp["baseline_case_id"]]
        return [
            ("speed-up vs fp32 eager (geometric mean over cases; accuracy cost = worst deviation from fp32 eager)",
             summ, [("hostname", "host"), ("mode", "mode"), ("precision", "precision"), ("backend", "backend"),
                    ("variant", "variant"), ("n_cases", "cases"), ("speedup_geomean", "speed-up"),
                    ("speedup_min", "min"), ("speedup_max", "max"), ("energy_ratio_geomean", "energy ratio"),
                    ("rel_l2_error_max", "rel L2 err")]),
            ("per case", per, [("case_id", "case"), ("baseline_case_id", "baseline"), ("speedup", "speed-up"),
                               ("energy_ratio", "energy ratio"), ("rel_l2_error", "rel L2 err")]),
        ]
    if view == "scaling":
        knees = tr.batch_knees(tr.batch_scaling(df))
        fits = tr.size_scaling(df)
        return [
            ("throughput vs batch size (knee: where a larger batch stops gaining 10 % per doubling)", knees,
             [("hostname", "host"), ("model", "model"), ("mode", "mode"), ("precision", "precision"),
              ("backend", "backend"), ("variant", "variant"), ("batch_sizes", "batches"),
              ("throughput_samples_per_s_first", "samples/s first"), ("throughput_samples_per_s_last", "last"),
              ("best_batch_size", "best batch"), ("knee_batch_size", "knee")]),
            ("model-size scaling: metric = c * params^k", fits,
             [("hostname", "host"), ("family", "family"), ("mode", "mode"), ("batch_size", "batch"),
              ("precision", "precision"), ("variant", "variant"), ("sizes", "sizes"), ("metric", "metric"),
              ("exponent", "k"), ("r2", "R2"), ("n_points", "points")]),
        ]
    if view == "pareto":
        ok = df[df["status"] == "ok"]
        rows = []
        for _, m in ok.groupby(["hostname", "model"], sort=False, dropna=False):
            m = m.copy()
            m["rel_l2_error"] = [0.0 if (r["precision"], r["backend"], r["variant"]) == ("fp32", "eager", "none")
                                 else r["rel_l2_error"] for r in m.to_dict("records")]
            m["on_front_2d"] = tr.pareto_mask(m, {"throughput_samples_per_s": "max", "energy_per_sample_j": "min"})
            m["on_front_3d"] = tr.pareto_mask(m, {"throughput_samples_per_s": "max", "energy_per_sample_j": "min",
                                                  "rel_l2_error": "min"})
            rows.append(m[m["on_front_2d"] | m["on_front_3d"]])
        front = pd.concat(rows) if rows else ok.iloc[0:0].assign(on_front_2d=[], on_front_3d=[])
        return [("Pareto fronts per model: throughput (max) x energy per sample (min) [x deviation from fp32 (min)]",
                 front, [("hostname", "host"), ("case_id", "case"), ("throughput_samples_per_s", "samples/s"),
                         ("energy_per_sample_j", "energy/sample"), ("rel_l2_error", "rel L2 err"),
                         ("on_front_2d", "front 2"), ("on_front_3d", "front 3")])]
    raise ValueError(f"unknown view {view!r}; one of {', '.join(VIEWS)}")


def _columns(cols: Sequence[tuple[str, str]], df: pd.DataFrame) -> list[Column]:
    text = {c for c, _ in cols if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])}
    return [Column(c, h, _fmt(c), priority=0 if i < 2 else 1 + i, align="left" if c in text else "right",
                   shrink=c in ("case_id", "baseline_case_id"), min_width=20)
            for i, (c, h) in enumerate(cols)]


def render_terminal(sections: list[Section], width: int | None) -> list[str]:
    out: list[str] = []
    for title, df, cols in sections:
        if out:
            out.append("")
        out.append(clean(title))
        cols = [(c, h) for c, h in cols if c in df]
        if df.empty:
            out.append("  (none)")
            continue
        f = fit(df.to_dict("records"), _columns(cols, df), width)
        out += [clean(line) for line in f.lines]
        if f.hidden:
            out.append(f"not shown for width: {', '.join(f.hidden)} (--format markdown shows every column)")
    return out


def render_markdown(sections: list[Section]) -> str:
    out: list[str] = []
    for title, df, cols in sections:
        out.append(f"### {_md(title)}\n")
        cols = [(c, h) for c, h in cols if c in df]
        if df.empty:
            out += ["(none)", ""]
            continue
        spec = _columns(cols, df)
        out.append("| " + " | ".join(_md(c.header) for c in spec) + " |")
        out.append("|" + "|".join("---:" if c.align == "right" else ":---" for c in spec) + "|")
        for r in df.to_dict("records"):
            out.append("| " + " | ".join(_md(c.cell(r)) for c in spec) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def raw_frame(sections: list[Section]) -> pd.DataFrame:
    """CSV / JSON of a view: the first (main) section's frame with raw numbers."""
    _, df, _ = sections[0]
    return df


def _md(s: str) -> str:
    return clean(s).replace("|", "\\|")
