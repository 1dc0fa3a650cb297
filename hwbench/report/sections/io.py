"""View ``io``: feeding and saving -- the input pipeline's samples/s against the train
step's per model (input headroom, input-bound verdict), each data case's pipeline
figures, and checkpoint save / load GB/s (docs/io.md). The HTML report draws the same
tables in :mod:`.feeding`."""

from __future__ import annotations

import pandas as pd

from . import VIEWS, Table
from .feeding import io_tables


@VIEWS.register(name="io")
def io_view(df: pd.DataFrame) -> list[Table]:
    return io_tables(df)
