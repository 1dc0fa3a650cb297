"""The store: DuckDB over folders of results files, with a Parquet cache.

Each results file is parsed once: its seven tables (:mod:`.tables`: runs, segments,
cases, samples, series, records, case_records) are written as Parquet files into a cache entry keyed by the
file's absolute path, size and modification time (and by the code that derives the
``cases`` columns, so a better formula re-derives old files). The next read of the
same folder parses only the files that are new or changed; a removed file's entry is
dropped. ``hwbench query`` runs SQL over views of these Parquet files; ``report``
reads the ``cases`` table from here when given a folder.

The cache lives outside the results folders (which may be read-only or shared):
``--cache DIR``, else ``$HWBENCH_CACHE``, else ``$XDG_CACHE_HOME/hwbench/store``
(``~/.cache/hwbench/store``). Where that cannot be written, a temporary folder is
used for the one command (with a warning): every file is parsed, nothing is kept.
docs/store.md has the tables and their columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .cache import (CHUNK_FILES, STORE_FORMAT, Entry, Store, _sql_path, code_fingerprint,  # noqa: F401
                    default_cache_dir)
from .read import cases_frame, connect  # noqa: F401
from .tables import TABLES  # noqa: F401


def load_cases(paths, warn: Callable[[str], None] | None = None, cache: str | Path | None = None):
    """:func:`hwbench.analysis.derive.load_results` through the cache: the same frame
    (rows, order, columns, dtypes and warnings), parsing only new or changed files."""
    store = Store(cache, warn=warn)
    try:
        return cases_frame(store, store.entries(paths))
    finally:
        store.close()


__all__ = ["Entry", "Store", "TABLES", "cases_frame", "connect", "default_cache_dir", "load_cases"]
