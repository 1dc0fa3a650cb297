"""``hwbench compare`` over folders through the store: each run rebuilt from the cached
``records`` row (the run without its raw times and collector readings) and its raw
times from ``samples``, so a folder read before costs no results-file parse. The
rebuilt run equals the parsed one in everything but the collectors' readings
(``samples`` of each collector: compare reads their summaries, never the readings)."""

from __future__ import annotations

import json
from typing import Any

from .cache import Entry, Store
from .read import connect


def usable(entries: list[Entry]) -> bool:
    """Whether the store can rebuild these runs: no multi-node parts to join."""
    return not any(e.kind == "part" for e in entries)


def _times(con) -> dict[tuple[str, str, int], list[float]]:
    """(results_file, case_id, repeat) -> that repeat's raw times, in order."""
    df = con.execute("SELECT results_file, case_id, repeat, time_s FROM samples "
                     "ORDER BY results_file, case_id, repeat, iteration").df()
    out: dict[tuple[str, str, int], list[float]] = {}
    if not len(df):
        return out
    keys = list(zip(df["results_file"], df["case_id"], df["repeat"].astype(int)))
    times = df["time_s"].to_numpy().tolist()
    for k, t in zip(keys, times):
        out.setdefault(k, []).append(t)
    return out


def _rebuild(doc: dict[str, Any], path: str, times: dict[tuple[str, str, int], list[float]]):
    from ..records import RunRecord

    for c in doc["cases"]:
        m = c.get("measurement")
        if m is not None:
            m["raw_times_s"] = [times.get((path, c["case_id"], r), []) for r in range(len(m["raw_times_s"]))]
    return RunRecord.model_validate(doc)


def runs(store: Store, entries: list[Entry]) -> list[tuple[str, Any]]:
    """[(path as given, RunRecord)] of the ``entries`` that are runs, in their order. A
    run with a case_id twice (the samples table could not tell their times apart) is
    read from its file."""
    from ..results import read_record

    con = connect(store, entries)
    try:
        df = con.execute("SELECT results_file, record FROM records").df()
        times = _times(con)
    finally:
        con.close()
    by_file = dict(zip(df["results_file"], df["record"]))
    out = []
    for e in entries:
        text = by_file.get(e.path)
        if e.kind != "run" or text is None:
            continue
        doc = json.loads(text)
        ids = [c["case_id"] for c in doc["cases"]]
        if len(set(ids)) < len(ids):
            store.parses += 1
            out.append((e.given, read_record(e.given)))
        else:
            out.append((e.given, _rebuild(doc, e.path, times)))
    return out
