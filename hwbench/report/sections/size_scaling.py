"""HTML section "Model-size scaling": a metric against the parameter count across the
sizes of a family, with the fitted power law (the ``scaling`` view's second table)."""

from __future__ import annotations

from ...analysis import tradeoffs as tr
from ..figures import fig_size_scaling
from ..page import Page
from . import PAGE, Report


@PAGE.register(name="size_scaling")
def size_scaling_section(page: Page, rep: Report) -> None:
    page.section("Model-size scaling", key="size-scaling")
    fits = tr.size_scaling(rep.df)
    if not len(fits):
        page.add('<p class="note">No family was run in two or more sizes under the same settings.</p>')
        return
    page.pair(fig_size_scaling(fits), "Metric against parameter count across the sizes of a family, log-log, "
              "with the fitted power law y = c·N<sup>k</sup> (least squares on the logs; two sizes fit exactly).",
              page.frame(fits, [*rep.run_col, ("metric", "metric"), ("exponent", "exponent k"), ("r2", "R²"),
                                ("family", "family"), ("sizes", "sizes"), ("mode", "mode"), ("batch_size", "batch"),
                                ("precision", "precision"), ("backend", "backend"), ("variant", "variant"),
                                ("n_points", "points")], csv_name="size-scaling.csv"))
