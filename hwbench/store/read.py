"""Reading the store: DuckDB views over the cached Parquet tables
(:func:`connect`) and the ``load_results`` frame (:func:`cases_frame`)."""

from __future__ import annotations

from typing import Any, Callable

from .cache import Entry, Store, _sql_path
from .tables import TABLES, record_tables


def _parts(entries: list[Entry], warn: Callable[[str], None]) -> list[tuple[int, dict[str, Any]]]:
    """The tables of the multi-node runs whose parts are among ``entries``, joined as
    :func:`hwbench.results.read_many` joins them (parsed each time: parts are rare and
    short-lived, merged by ``hwbench merge``), each with the index of its first part."""
    from pathlib import Path

    from ..merge import join_parts
    from ..results import read_record

    merged = {rid: e.given for e in entries for rid in e.merged_parts}
    items, first = [], {}
    for i, e in enumerate(entries):
        if e.kind != "part":
            continue
        if e.run_id in merged:
            warn(f"{e.given}: a part already in the merged file {merged[e.run_id]}: left out")
            continue
        items.append((Path(e.given), read_record(e.given)))
        first.setdefault(e.given, i)
    out = []
    for p, rec in join_parts(items, warn):
        out.append((first.get(str(p), len(entries)), record_tables(rec, str(Path(p).absolute()))))
    return out


def connect(store: Store, entries: list[Entry], warn: Callable[[str], None] | None = None):
    """An in-memory DuckDB connection with one view per table (:data:`TABLES`) over
    the entries' chunks (only the rows of these files' current versions; multi-node
    parts joined in memory)."""
    import duckdb
    import pandas as pd

    warn = warn or store.warn
    con = duckdb.connect()
    parts = _parts(entries, warn)
    runs = [e for e in entries if e.kind == "run"]
    chunks = list(dict.fromkeys(e.chunk for e in runs))
    if runs:
        con.register("_live", pd.DataFrame({"_entry": [e.key for e in runs]}))
    for t in TABLES:
        sources = []
        if chunks:
            lst = ", ".join(f"'{_sql_path(store.root / 'chunks' / c / (t + '.parquet'))}'" for c in chunks)
            sources.append(f"SELECT * EXCLUDE (_entry) FROM read_parquet([{lst}], union_by_name = true) "
                           "WHERE _entry IN (SELECT _entry FROM _live)")
        for k, (_, tables) in enumerate(parts):
            con.register(f"_part{k}_{t}", tables[t])
            sources.append(f"SELECT * FROM _part{k}_{t}")
        if not sources:  # nothing but files that are not results files
            continue
        con.execute(f"CREATE VIEW {t} AS " + " UNION ALL BY NAME ".join(sources))
    return con


def cases_frame(store: Store, entries: list[Entry], warn: Callable[[str], None] | None = None):
    """What :func:`hwbench.analysis.derive.load_results` gives for the same paths
    (same rows, order, columns and dtypes), read from the cache."""
    import pandas as pd

    con = connect(store, entries, warn)
    df = con.sql("SELECT * FROM cases").df()
    con.close()
    order = {e.path: i for i, e in enumerate(entries)}
    given = {e.path: e.given for e in entries}
    df = conform(df)
    if len(df):
        key = pd.Series([order.get(f, len(order)) for f in df["results_file"].astype(object)], index=df.index)
        df = df.loc[key.sort_values(kind="stable").index].reset_index(drop=True)
        df["results_file"] = pd.array([given.get(f, f) for f in df["results_file"].astype(object)],
                                      dtype="string")
    _scaling_across_runs(df)
    return df


def conform(df):
    """A frame read back from Parquet with the dtypes, order and values of
    :func:`hwbench.analysis.derive.to_frame`."""
    import pandas as pd

    from ..analysis.derive import _FLOAT, _INT, _STR, SCHEMA, _extra_dtype

    names = {n for n, _ in SCHEMA}
    data: dict[str, Any] = {}
    extra = sorted(c for c in df.columns if c not in names)
    dtypes = dict(SCHEMA)
    for name in [n for n, _ in SCHEMA] + extra:
        col = df[name] if name in df.columns else pd.Series([None] * len(df), dtype=object)
        dtype = dtypes.get(name)
        if dtype is None:
            vals = [_plain(v) for v in col.astype(object)]
            dtype = _extra_dtype(name, vals)
        if name == "quality_flags":
            data[name] = pd.Series([[] if v is None or v is pd.NA else list(v) for v in col.astype(object)],
                                   dtype="object")
        elif dtype.startswith("datetime"):
            data[name] = pd.to_datetime(col, utc=True).astype(dtype)
        elif dtype == _FLOAT:
            data[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        elif dtype in (_INT, _STR, "boolean"):
            data[name] = col.astype(dtype)
        else:
            data[name] = pd.Series([_plain(v) for v in col.astype(object)], dtype="object")
    return pd.DataFrame(data, index=pd.RangeIndex(len(df)))


def _plain(v):
    """A value read back from Parquet as to_frame held it: None for a missing value,
    a list for an array."""
    import numpy as np
    import pandas as pd

    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _scaling_across_runs(df) -> None:
    """``scaling_efficiency`` of the parallel rows recomputed over every run read (the
    cache holds each run's own), as ``load_results`` computes it."""
    from ..analysis.derive import scaling_efficiency

    if not len(df):
        return
    par = df["parallelism"].notna() & (df["parallelism"] != "none")
    if not par.any():
        return
    sub = df.loc[par]
    rows = [{k: _plain(v) for k, v in r.items()} for r in sub.astype(object).to_dict("records")]
    scaling_efficiency(rows)
    import pandas as pd

    eff = [r.get("scaling_efficiency") for r in rows]
    df.loc[par, "scaling_efficiency"] = pd.Series([float("nan") if v is None else v for v in eff],
                                                  index=sub.index, dtype="float64")
    df.loc[par, "scaling_baseline_run_id"] = pd.Series(pd.array([r.get("scaling_baseline_run_id") for r in rows],
                                                                dtype="string"), index=sub.index)
