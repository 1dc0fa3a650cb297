"""View ``scaling``: throughput against batch size with the knee per curve, the
model-size power-law fits and, where cases ran as a torchrun group, the parallel
scaling tables (:mod:`.parallel`). The HTML report draws these in
:mod:`.models` (batch), :mod:`.size_scaling` and :mod:`.parallel`."""

from __future__ import annotations

import pandas as pd

from ...analysis import scaling as sc
from ...analysis import tradeoffs as tr
from . import VIEWS, Table, run_column, runs_said
from .parallel import parallel_sections


@VIEWS.register(name="scaling")
def scaling_view(df: pd.DataFrame) -> list[Table]:
    run = run_column(df)
    said = runs_said(df)
    knees = tr.batch_knees(tr.batch_scaling(df))
    fits = tr.size_scaling(df)
    # a torchrun group's batch curve is its own: say which strategy and world size
    group = [("parallelism", "strategy"), ("world_size", "ranks")] if len(sc.parallel_rows(df)) else []
    if "comm" in knees and knees["comm"].nunique(dropna=True) > 1:  # gradient compression: a curve each
        group.append(("comm", "comm"))
    return [
        ("throughput vs batch size (knee: where a larger batch stops gaining 10 % per doubling)" + said, knees,
         [*run, ("hostname", "host"), ("model", "model"), ("mode", "mode"), *group, ("precision", "precision"),
          ("backend", "backend"), ("variant", "variant"), ("batch_sizes", "batches"),
          ("throughput_samples_per_s_first", "samples/s first"), ("throughput_samples_per_s_last", "last"),
          ("best_batch_size", "best batch"), ("knee_batch_size", "knee")]),
        ("model-size scaling: metric = c * params^k", fits,
         [*run, ("hostname", "host"), ("family", "family"), ("mode", "mode"), ("batch_size", "batch"),
          ("precision", "precision"), ("variant", "variant"), ("sizes", "sizes"), ("metric", "metric"),
          ("exponent", "k"), ("r2", "R2"), ("n_points", "points")]),
        *parallel_sections(df),
    ]
