"""View ``pareto``: per run and model, the cases on the front of throughput (max) and
energy per sample (min), and of those two plus the output deviation (min). The HTML
report draws the fronts per model (:mod:`.models`)."""

from __future__ import annotations

import pandas as pd

from ...analysis import tradeoffs as tr
from . import VIEWS, Table, run_column, runs_said


@VIEWS.register(name="pareto")
def pareto_view(df: pd.DataFrame) -> list[Table]:
    fronts = tr.pareto_fronts(df)
    front = fronts[fronts["on_front_2d"] | fronts["on_front_3d"]]
    return [("Pareto fronts per run and model: throughput (max) x energy per sample (min) [x deviation from "
             "fp32 (min)]" + runs_said(df),
             front, [*run_column(df), ("hostname", "host"), ("case_id", "case"),
                     ("throughput_samples_per_s", "samples/s"), ("energy_per_sample_j", "energy/sample"),
                     ("rel_l2_error", "rel L2 err"), ("on_front_2d", "front 2"), ("on_front_3d", "front 3")])]
