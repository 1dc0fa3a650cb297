"""What ``hwbench run --dry-run`` prints: the cases to run, the skipped ones grouped by
reason, and how long the run should take."""

from __future__ import annotations

from typing import Any, Sequence

from ..records import PROCESS_ISOLATED_REPEATS
from . import format as fm
from .fit import Column, abbreviate_ids, cut, fit
from .text import clean

# What a case costs besides its timed window and warmup, s: worker fork, model build,
# the fp32 reference of the accuracy check, the FLOP count, collectors. Measured on the
# smoke suite (tiny models, 2 CPU cores: about 0.8 s); larger models take longer, so
# estimates are lower bounds.
PER_CASE_OVERHEAD_S = 0.8
SERVER_START_S = 2.0  # the worker server's torch import, once per run


def estimate_case_s(settings: Any) -> float:
    """A lower bound of one case's wall time from the suite's settings, s: the timed
    window (``min_time_s`` x ``repeats``, or ``min_energy_window_s``), ``warmup_s`` and
    the per-case overhead (once per repeat where repeats run in their own processes)."""
    repeats = getattr(settings, "repeats", 1) or 1
    window = max(settings.min_time_s * repeats, getattr(settings, "min_energy_window_s", 0.0) or 0.0)
    workers = repeats if repeats >= PROCESS_ISOLATED_REPEATS else 1
    return window + workers * (PER_CASE_OVERHEAD_S + settings.warmup_s)


def estimate_run_s(n_cases: int, settings: Any) -> float:
    """A lower bound of a run's wall time, s (see :func:`estimate_case_s`)."""
    if n_cases <= 0:
        return 0.0
    return SERVER_START_S + (getattr(settings, "idle_baseline_s", 0.0) or 0.0) + n_cases * estimate_case_s(settings)


def clock(seconds: float) -> str:
    """A duration as 45 s, 3 min 20 s, 1 h 05 min."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def skip_groups(planned: Sequence[Any]) -> list[tuple[str, list[str]]]:
    """(reason, case ids) for every skip reason, most cases first."""
    groups: dict[str, list[str]] = {}
    for p in planned:
        if p.skip_reason:
            groups.setdefault(p.skip_reason, []).append(p.case.case_id)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def render_plan(plan: Any, width: int, max_reasons: int = 8, examples: int = 2) -> list[str]:
    """Lines for a dry run: a title with counts, the cases to run (ids without the
    parts they share, which are said once), the skip reasons with counts and example
    ids, and the estimated run time."""
    todo_ids = {x.case.case_id for x in plan.todo}
    rows = [x for x in plan.planned if x.case.case_id in todo_ids]
    run = [x for x in rows if not x.skip_reason]
    skipped = [x for x in rows if x.skip_reason]
    name = plan.suite.spec.suite.name
    left = f" left of {len(plan.planned)}" if plan.record is not None else ""
    out = [clean(f"{name}: {len(rows)} cases{left}: {len(run)} to run, {len(skipped)} skipped")]
    if run:
        ids, common = abbreviate_ids([x.case.case_id for x in run])
        devices = list(dict.fromkeys(f"{x.device or x.case.device} ({x.device_name})" if x.device_name else
                                     (x.device or x.case.device) for x in run))
        if len(devices) == 1:
            out.append(clean(f"  to run on {devices[0]}" + (f"; every case: {' · '.join(common)}" if common else "")))
        elif common:
            out.append(clean(f"  every case: {' · '.join(common)}"))
        table = [{"case": i, "device": (x.device or x.case.device) + (f" ({x.device_name})" if x.device_name else ""),
                  "plan": "search the largest batch that fits, then run powers of two up to it" if x.case.auto_batch
                  else ""} for i, x in zip(ids, run)]
        cols = [Column("case", "case", str, priority=0, align="left")]
        if len(devices) > 1:
            cols.append(Column("device", "run on", str, priority=1, align="left", shrink=True))
        cols.append(Column("plan", "plan", str, priority=2, align="left", shrink=True, min_width=20))
        out += ["  " + line for line in fit(table, cols, width - 2).lines]
    if skipped:
        groups = skip_groups(skipped)
        out.append(f"skipped: {len(skipped)} case{'s' * (len(skipped) > 1)}, {len(groups)} reason{'s' * (len(groups) > 1)}")
        for reason, ids in groups[:max_reasons]:
            out += _wrap(f"{len(ids):>4} x {reason}", width, "  ", "         ")
            for i in ids[:examples]:
                out.append(cut(clean(f"         e.g. {i}"), width))
            if len(ids) > examples:
                out.append(f"         and {len(ids) - examples} more")
        rest = groups[max_reasons:]
        if rest:
            out.append(f"  ... and {sum(len(i) for _, i in rest)} cases for {len(rest)} other reasons")
    settings = plan.suite.spec.settings
    if run:
        n_auto = sum(x.case.auto_batch for x in run)
        est = estimate_run_s(len(run), settings)
        per = estimate_case_s(settings)
        auto = f"; {n_auto} batch searches add their own time" if n_auto else ""
        timed = fm.sig(max(settings.min_time_s * settings.repeats, settings.min_energy_window_s))
        out += _wrap(f"estimated run time: at least {clock(est)} ({len(run)} case{'s' * (len(run) > 1)} x {fm.sig(per)} s: {timed} s "
                     f"timed + ~{PER_CASE_OVERHEAD_S:g} s start-up each; models slower than min_iters / min_time_s "
                     f"take longer{auto})", width)
    else:
        out.append("nothing to run on this machine")
    return out


def _wrap(text: str, width: int, first: str = "", rest: str = "  ") -> list[str]:
    """Prose (a skip reason, an estimate) wrapped at ``width``, never cut."""
    import textwrap

    return textwrap.wrap(clean(text), width, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False) or [first]
