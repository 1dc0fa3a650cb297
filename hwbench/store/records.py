"""``hwbench compare`` over folders through the store, in bounded memory.

Each run is rebuilt from the cached ``records`` row (the run without its cases) and
its case ids, in order (``case_records``); :class:`Held` then gives
compare each case's results, from ``case_records`` (the result without raw times and
collector readings) and ``samples`` (the raw times), a few cases at a time, while that
case is judged (:class:`hwbench.analysis.compare.CaseSource`). So a folder read before
costs no results-file parse, and memory holds each run's own record (environment,
suite) and the case ids, not every run's results: the results of one batch of cases
(:data:`BATCH_ROWS`) at a time. A rebuilt result equals the parsed one in everything
but the collectors' readings (``samples`` of each collector: compare reads their
summaries, never the readings). ``history`` reads whole runs (:func:`runs`)."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Iterator

from .cache import Entry, Store
from .read import connect

# The most raw times fetched in one query (more only for one case that has more); a
# case's result (its JSON, a few KB) counts as RECORD_ROWS of them. About 24 bytes a
# raw time in the query's arrays: a batch stays within tens of MiB.
BATCH_ROWS = 1_000_000
RECORD_ROWS = 100


def usable(entries: list[Entry]) -> bool:
    """Whether the store can rebuild these runs: no multi-node parts to join."""
    return not any(e.kind == "part" for e in entries)


class Held:
    """Runs read from the store without their cases, and their cases read from it one
    batch at a time (a :class:`~hwbench.analysis.compare.CaseSource`). The store is
    opened on first use (``store()``), the DuckDB connection over every entry read on
    the first :meth:`load`; :meth:`close` closes both."""

    def __init__(self):
        self._store: Store | None = None
        self._entries: dict[str, Entry] = {}  # by key: every entry read, both sides
        self._file: dict[int, tuple[int, list[str]]] = {}  # id(run) -> (file index, case ids)
        self._keep: list[Any] = []  # the runs of _file, alive: no other object takes their id()
        self._index: dict[str, int] = {}  # results_file -> file index
        self._con = None

    def store(self, warn: Callable[[str], None]) -> Store:
        """The store, its warnings to ``warn`` from now on."""
        if self._store is None:
            self._store = Store(warn=warn)
        self._store.warn = warn
        return self._store

    def runs(self, entries: list[Entry]) -> list[tuple[str, Any]]:
        """[(path as given, RunRecord without its cases)] of the ``entries`` that are
        runs, in their order. A run with a case_id twice (the samples table could not
        tell their times apart) is read from its file, whole."""
        from ..records import RunRecord
        from ..results import read_record

        con = connect(self._store, entries)
        try:
            text = dict(con.execute("SELECT results_file, record FROM records").fetchall())
            ids: dict[str, list[str]] = {}
            for f, cid in con.execute("SELECT results_file, case_id FROM case_records "
                                      "ORDER BY results_file, case_index").fetchall():
                ids.setdefault(f, []).append(cid)
        finally:
            con.close()
        out = []
        for e in entries:
            if e.kind != "run" or e.path not in text:
                continue
            cases = ids.get(e.path, [])
            if len(set(cases)) < len(cases):
                self._store.parses += 1
                out.append((e.given, read_record(e.given)))
                continue
            rec = RunRecord.model_validate(json.loads(text[e.path]))
            self._entries.setdefault(e.key, e)
            self._file[id(rec)] = (self._index.setdefault(e.path, len(self._index)), cases)
            self._keep.append(rec)
            out.append((e.given, rec))
        return out

    def case_ids(self, rec) -> list[str] | None:
        held = self._file.get(id(rec))
        return None if held is None else held[1]

    def load(self, wanted: Iterable[tuple[str, list[tuple[Any, int]]]]) -> Iterator[list[Any]]:
        """The results of each case of ``wanted`` in order, fetched a batch of cases at
        a time (up to :data:`BATCH_ROWS` raw times, or one case that has more)."""
        items = iter(wanted)
        count = self._counts() if self._file else {}
        item = next(items, None)
        while item is not None:
            batch, rows = [], 0
            while item is not None:
                cost = count.get(item[0], 0) + RECORD_ROWS * len(item[1])
                if batch and rows + cost > BATCH_ROWS:
                    break
                batch.append(item)
                rows += cost
                item = next(items, None)
            texts, times = self._fetch([cid for cid, refs in batch if refs])
            for cid, refs in batch:
                yield [self._result(cid, rec, k, texts, times) for rec, k in refs]
            del texts, times

    def _connection(self):
        import pandas as pd

        if self._con is None:
            self._con = connect(self._store, list(self._entries.values()))
            self._con.register("_files", pd.DataFrame({"results_file": list(self._index),
                                                       "i": list(self._index.values())}))
        return self._con

    def _counts(self) -> dict[str, int]:
        """Raw times per case_id over the runs held."""
        return dict(self._connection().execute(
            "SELECT case_id, count(*) FROM samples JOIN _files USING (results_file) GROUP BY case_id").fetchall())

    def _fetch(self, cids: list[str]):
        """The results (JSON) of cases ``cids`` by (file index, case index), and their
        raw times by (case_id, file index, repeat) (numpy arrays, s, in order)."""
        import numpy as np
        import pandas as pd

        if not cids:
            return {}, {}
        con = self._connection()
        con.register("_want", pd.DataFrame({"case_id": cids, "j": range(len(cids))}))
        texts = {(i, k): t for i, k, t in con.execute(
            "SELECT i, case_index, record FROM case_records JOIN _want USING (case_id) "
            "JOIN _files USING (results_file)").fetchall()}
        got = con.execute("SELECT j::INTEGER AS j, i::INTEGER AS i, repeat::INTEGER AS repeat, time_s "
                          "FROM samples JOIN _want USING (case_id) JOIN _files USING (results_file) "
                          "ORDER BY j, i, repeat, iteration").fetchnumpy()
        con.unregister("_want")
        j, i, r, t = (np.asarray(got[c]) for c in ("j", "i", "repeat", "time_s"))
        times = {}
        if len(t):
            cut = np.flatnonzero((np.diff(j) != 0) | (np.diff(i) != 0) | (np.diff(r) != 0)) + 1
            for a, b in zip(np.r_[0, cut], np.r_[cut, len(t)]):
                times[(cids[j[a]], int(i[a]), int(r[a]))] = t[a:b]
        return texts, times

    def _result(self, cid: str, rec, k: int, texts, times):
        """Case ``k`` of run ``rec`` (case_id ``cid``) with its raw times put back. The
        times are not validated again (they were, in the record the cache was made
        from): one copy of a case's pooled times in memory, not two."""
        from ..records import CaseResult

        i = self._file[id(rec)][0]
        c = CaseResult.model_validate(json.loads(texts[(i, k)]))
        m = c.measurement
        if m is None:
            return c
        raw = [times[(cid, i, r)].tolist() if (cid, i, r) in times else [] for r in range(len(m.raw_times_s))]
        return c.model_copy(update={"measurement": m.model_copy(update={"raw_times_s": raw})})

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._store is not None:
            self._store.close()
            self._store = None


def runs(store: Store, entries: list[Entry]) -> list[tuple[str, Any]]:
    """[(path as given, RunRecord)] of the ``entries`` that are runs, in their order,
    each whole (every case, raw times included: ``history``'s metrics computed across a
    run's cases need them), all read at once."""
    held = Held()
    held._store = store
    got = held.runs(entries)
    try:
        ids = sorted({cid for _, cases in held._file.values() for cid in cases})
        texts, times = held._fetch(ids)
        out = []
        for given, rec in got:
            cases = held.case_ids(rec)
            if cases is not None:
                rec = rec.model_copy(update={"cases": [held._result(cid, rec, k, texts, times)
                                                       for k, cid in enumerate(cases)]})
            out.append((given, rec))
        return out
    finally:
        if held._con is not None:
            held._con.close()
