"""HTML section "Feeding and saving": the input pipeline's samples/s against the train
step's per model (input headroom, input-bound verdict), each data case's pipeline
figures, and checkpoint save / load GB/s (docs/io.md). Its tables are the ``io``
view's (:mod:`.io`, which registers the view: this module registers the page section
only, so loading the page does not register views out of their order)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...analysis import feeding
from ..escape import svg_text
from ..figures import FIG_W, _figure, _log_axis, to_svg
from ..page import Page, html_table
from . import PAGE, Report, Table, run_column, runs_said
from .. import format as fm

HEADROOM_NOTE = ("input headroom = data samples/s (the fastest loader setting) / train samples/s of the same model, "
                 "batch, shape, precision and device; input bound where it is below 1")
CHECKPOINT_NOTE = ("save: until every file is fsynced; load: after each file's pages were dropped from the page "
                   "cache (posix_fadvise), so it reads storage where the filesystem honours that (see docs/io.md)")


def io_tables(df: pd.DataFrame) -> list[Table]:
    run = run_column(df)
    said = runs_said(df)
    return [
        ("feeding: " + HEADROOM_NOTE + said, feeding.feeding_table(df),
         [*run, ("model", "model"), ("batch_size", "batch"), ("precision", "precision"), ("device", "device"),
          ("train_samples_per_s", "train/s"), ("data_samples_per_s", "data/s"), ("input_headroom", "headroom"),
          ("input_bound", "bound"), ("input_loader", "loader"), ("hostname", "host")]),
        ("data pipelines: samples/s delivered to the device (sustained), bytes/s read, loader CPU and the "
         "consumer's wait" + said, feeding.data_cases(df),
         [*run, ("model", "model"), ("batch_size", "batch"), ("loader", "loader"),
          ("throughput_samples_per_s", "samples/s"), ("bytes_per_s", "read"),
          ("loader_cpu_util_pct", "loader CPU"), ("loader_wait_fraction", "waiting"),
          ("scratch_fs_type", "fs"), ("hostname", "host")]),
        ("saving: " + CHECKPOINT_NOTE + said, feeding.checkpoint_cases(df),
         [*run, ("model", "model"), ("checkpointer", "checkpointer"), ("checkpoint_bytes", "size"),
          ("checkpoint_save_gbs", "save"), ("checkpoint_load_gbs", "load"), ("checkpoint_save_s_p50", "save time"),
          ("checkpoint_load_s_p50", "load time"), ("precision", "precision"), ("scratch_fs_type", "fs"),
          ("hostname", "host")]),
    ]


def fig_feeding(t: pd.DataFrame) -> str:
    """Train samples/s and data samples/s per model, side by side, log scale."""
    labels = [svg_text(f"{r['model']} bs{r['batch_size']} {r['precision']}", 40) for r in t.to_dict("records")]
    fig, (ax,) = _figure(FIG_W, 0.4 * len(labels) + 1.2)
    y = np.arange(len(labels))
    ax.barh(y - 0.2, t["train_samples_per_s"].astype(float), height=0.4, color="#1f77b4", label="train step")
    ax.barh(y + 0.2, t["data_samples_per_s"].astype(float), height=0.4, color="#2ca02c", label="input pipeline")
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    _log_axis(ax, "x", lambda v: fm.si(v))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("samples per second")
    fig.legend(fontsize=7, loc="outside upper center", ncol=2)
    ax.grid(True, axis="x", alpha=0.3)
    return to_svg(fig, "train step against input pipeline samples per second, per model")


@PAGE.register(name="feeding")
def io_section(page: Page, rep: Report) -> None:
    df = rep.df
    if not df["mode"].isin(["data", "checkpoint"]).any():
        return
    page.section("Feeding and saving", key="io")
    tables = io_tables(df)
    feed = tables[0][1]
    both = feed[feed["train_samples_per_s"].notna()]
    if len(both):
        page.pair(fig_feeding(both), "Samples per second the training step consumes (blue) and the input pipeline "
                  "delivers (green), per model. " + HEADROOM_NOTE + ".",
                  html_table(feed, tables[0][2], csv_name="feeding.csv"))
    else:
        page.add(html_table(feed, tables[0][2], caption="feeding", csv_name="feeding.csv"))
    for i, (caption, frame, cols) in enumerate(tables[1:]):
        if len(frame):
            page.add(html_table(frame, cols, caption=caption, csv_name=f"io-{i + 2}.csv"))
