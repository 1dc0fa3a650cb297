"""The worker's side of data and checkpoint cases: set up, run in a scratch folder,
return raw data (the worker wraps it in its Outcome)."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from typing import Any, Callable

import torch

from .. import backends, precisions, timing
from ..case import Case
from . import scratch


@contextlib.contextmanager
def _may_fork() -> Any:
    """Workers are daemonic processes (they die with the runner), and multiprocessing
    refuses children to those; DataLoader's worker processes are themselves daemonic
    and exit when their parent does, so a data case lifts the refusal while it runs."""
    cfg = multiprocessing.current_process()._config  # noqa: SLF001 - the flag start() checks
    was = cfg.get("daemon")
    cfg["daemon"] = False
    try:
        yield
    finally:
        if was is not None:
            cfg["daemon"] = was


def run(case: Case, settings: Any, fam: Any, cfg: Any, device: torch.device, measure: Callable[..., Any],
        mark: Callable[[str, float], None]) -> tuple[timing.Measurement, dict[str, Any], list[tuple[str, str]]]:
    """Run data or checkpoint case ``case``. ``measure(step, on_first_timed)`` is the
    worker's timed loop (it sends the window's edges to the runner); ``mark(event, t)``
    sends an edge (``window_start`` / ``window_end``) of a window timed here. Returns
    the timing measurement, the io facts (records.Facts fields) and flags (name, detail)."""
    from .storage import describe

    root = settings.checkpoint_dir
    with scratch.scratch(root) as folder:
        fs = describe(folder, "scratch")["fs_type"]
        if case.mode == "data":
            from . import data

            p = precisions.get(case.precision)
            dtype = p.torch_dtype() if fam.float_inputs else None
            with _may_fork():
                m, facts, flags = data.run(case, fam, cfg, settings, device, dtype, folder, measure)
        else:
            from . import checkpoint

            torch.manual_seed(settings.seed)
            prep = backends.prepare(fam.build(cfg), case, device, fam.float_inputs)
            t, facts = checkpoint.run(case, prep, fam, cfg, settings, device, folder,
                                      lambda: mark("window_start", time.monotonic()))
            mark("window_end", t["window_end"])
            m = timing.Measurement(t["first_iter_s"], t["warmup_s"], t["raw_times_s"], t["window_start"],
                                   t["window_end"])
            flags = []
    facts["scratch_fs_type"] = fs
    return m, facts, flags
