"""click parameter types shared by the commands.

click's ``FloatRange`` lets ``nan`` through (every comparison with NaN is false, so no
bound refuses it) and, without an upper bound, ``inf``: a number option of hwbench is
a finite number within stated bounds, or a one-line usage error (exit code 2).
"""

from __future__ import annotations

import math

import click

# Durations (s) at most a week, in suites and options alike: beyond it a wait overflows
# the platform's clock (sample_interval_s = 1e300 did) long before it means anything.
MAX_DURATION_S = 7 * 24 * 3600.0


class FiniteFloat(click.FloatRange):
    """A float option within ``min``..``max`` (as click.FloatRange), never NaN or
    infinite."""

    name = "finite float"

    def convert(self, value, param, ctx):
        rv = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(rv, param, ctx)
