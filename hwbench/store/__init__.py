"""The store: DuckDB over folders of results files, with a Parquet cache.

Each results file is parsed once: its five tables (:mod:`.tables`: runs, segments,
cases, samples, series) are written as Parquet files into a cache entry keyed by the
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

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ResultsError, UserError
from .tables import TABLES, record_tables

# Bump when the tables' shape changes: every entry is then rebuilt.
STORE_FORMAT = 1
# The code whose output the cache keeps: a change to any of these files (a better
# formula in derive, a new peak row) re-derives every entry.
_DERIVING = ("analysis", "data", "flops.py", "peaks.py", "records.py", "results.py", "merge.py",
             "store/tables.py", "models")


def default_cache_dir() -> Path:
    """``$HWBENCH_CACHE``, else ``$XDG_CACHE_HOME/hwbench/store``, else
    ``~/.cache/hwbench/store``."""
    if os.environ.get("HWBENCH_CACHE"):
        return Path(os.environ["HWBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hwbench" / "store"


def code_fingerprint() -> str:
    """A short hash of the store format, hwbench's version and the size and mtime of
    the files that derive the tables (a stat each, no reading)."""
    from .. import __file__ as pkg

    root = Path(pkg).parent
    h = hashlib.sha256(f"{STORE_FORMAT}".encode())
    for name in _DERIVING:
        p = root / name
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        for f in files:
            if f.suffix in (".py", ".csv", ".json", ".toml"):
                st = f.stat()
                h.update(f"{f.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


@dataclass(frozen=True)
class Entry:
    """One results file as the store sees it: ``given`` (the path as the user's
    arguments name it, as ``load_results`` writes it in ``results_file``), ``path``
    (absolute), ``kind`` (``run``; ``part``: one node's part of a multi-node run, read
    and joined each time; ``invalid``: not a results file, ``message`` says why), and
    ``folder``, the cache entry holding its tables (``run`` only)."""

    given: str
    path: str
    kind: str
    folder: Path | None
    message: str = ""
    merged_parts: tuple[str, ...] = ()
    run_id: str = ""


class Store:
    """The Parquet cache in ``cache_dir`` (default :func:`default_cache_dir`).
    ``parses`` counts the results files parsed (JSON read) by this object."""

    def __init__(self, cache_dir: str | Path | None = None, warn: Callable[[str], None] | None = None):
        self.warn = warn or (lambda msg: None)
        self.parses = 0
        self._fingerprint = code_fingerprint()
        self.root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._tmp: tempfile.TemporaryDirectory | None = None
        try:
            (self.root / "files").mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            self._tmp = tempfile.TemporaryDirectory(prefix="hwbench-store.")
            self.warn(f"cache {self.root}: cannot write ({e.strerror or e}): every file is parsed this time "
                      "(give a writable --cache DIR or $HWBENCH_CACHE)")
            self.root = Path(self._tmp.name)
            (self.root / "files").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ entries
    def entries(self, paths) -> list[Entry]:
        """The entries of ``paths`` (files or folders, as :func:`hwbench.results.expand_paths`
        finds them), each brought up to date. A file named explicitly that is not a
        results file raises ResultsError; one found in a folder is warned about."""
        from ..results import expand_paths

        named, found = expand_paths(paths)
        out = [self._entry(p, explicit=True) for p in named]
        for p in found:
            e = self._entry(p, explicit=False)
            if e.kind == "invalid":
                self.warn(f"skipped {e.message}")
            out.append(e)
        if not any(e.kind != "invalid" for e in out):
            raise ResultsError(f"{', '.join(map(str, named + found))}: none of these is an hwbench results file")
        self._prune(found)
        return out

    def _entry(self, p: Path, explicit: bool) -> Entry:
        given, path = str(p), os.path.abspath(p)
        try:
            st = os.stat(path)
        except OSError:
            from ..results import read_record

            read_record(p)  # its own one-line error: missing, unreadable
            raise
        key = _hash(f"{self._fingerprint}:{st.st_size}:{st.st_mtime_ns}")
        home = self.root / "files" / _hash(path)
        folder = home / key
        meta = folder / "meta.json"
        if meta.is_file():
            m = json.loads(meta.read_text(encoding="utf-8"))
            if m["kind"] == "invalid" and explicit:
                raise ResultsError(m["message"].replace(m["path"], given, 1))
            return Entry(given, path, m["kind"], folder if m["kind"] == "run" else None,
                         m["message"].replace(m["path"], given, 1), tuple(m.get("merged_parts", ())),
                         m.get("run_id", ""))
        return self._build(p, given, path, home, folder, explicit)

    def _build(self, p: Path, given: str, path: str, home: Path, folder: Path, explicit: bool) -> Entry:
        from ..results import read_record

        self.parses += 1
        kind, message, tables, rec = "run", "", None, None
        try:
            rec = read_record(p)
        except ResultsError as e:
            kind, message = "invalid", str(e)
        if rec is not None and rec.node is not None:
            kind = "part"
        elif rec is not None:
            tables = record_tables(rec, path)
        meta = {"path": given, "abspath": path, "kind": kind, "message": message,
                "run_id": rec.run_id if rec is not None else "",
                "merged_parts": [n.run_id for n in rec.nodes] if rec is not None else []}
        self._write_entry(home, folder, tables, meta)
        if kind == "invalid" and explicit:
            raise ResultsError(message)
        return Entry(given, path, kind, folder if kind == "run" else None, message,
                     tuple(meta["merged_parts"]), meta["run_id"])

    def _write_entry(self, home: Path, folder: Path, tables, meta: dict) -> None:
        """The entry written into a temporary folder and renamed into place (a reader
        sees a whole entry or none); older entries of the same file are removed."""
        import duckdb

        home.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".new.", dir=home))
        try:
            if tables is not None:
                con = duckdb.connect()
                for name, df in tables.items():
                    con.register("t", df)
                    con.execute(f"COPY t TO '{_sql_path(tmp / (name + '.parquet'))}' (FORMAT parquet)")
                    con.unregister("t")
                con.close()
            (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            for old in home.iterdir():
                if old != tmp and not old.name.startswith(".new."):
                    shutil.rmtree(old, ignore_errors=True)
            os.rename(tmp, folder)
        except OSError:
            if not folder.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _prune(self, found: list[Path]) -> None:
        """Drop the entries of files that were in a folder's last listing and are gone
        (the folder's index, beside the entries, is the last listing)."""
        by_folder: dict[str, list[str]] = {}
        for p in found:
            by_folder.setdefault(os.path.abspath(p.parent), []).append(os.path.abspath(p))
        for folder, files in by_folder.items():
            index = self.root / "folders" / f"{_hash(folder)}.json"
            try:
                old = set(json.loads(index.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                old = set()
            for gone in old - set(files):
                shutil.rmtree(self.root / "files" / _hash(gone), ignore_errors=True)
            if old != set(files):
                index.parent.mkdir(parents=True, exist_ok=True)
                tmp = index.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(sorted(files)), encoding="utf-8")
                os.replace(tmp, index)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _sql_path(p: Path | str) -> str:
    """A path as a single-quoted SQL string's content."""
    return str(p).replace("'", "''")


from .read import cases_frame, connect  # noqa: E402  (the readers of the entries above)


def load_cases(paths, warn: Callable[[str], None] | None = None, cache: str | Path | None = None):
    """:func:`hwbench.analysis.derive.load_results` through the cache: the same frame
    (rows, order, columns, dtypes and warnings), parsing only new or changed files."""
    store = Store(cache, warn=warn)
    try:
        return cases_frame(store, store.entries(paths))
    finally:
        store.close()


__all__ = ["Entry", "Store", "TABLES", "cases_frame", "connect", "default_cache_dir", "load_cases"]
