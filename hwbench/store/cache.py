"""The store's cache (see :mod:`hwbench.store`): one entry of Parquet tables per results
file version, keyed by path, size, mtime (and its journal's) and the code that derives
them."""


from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ResultsError
from .tables import frames, record_data, rows_of

# Bump when the tables' shape changes: every entry is then rebuilt.
STORE_FORMAT = 3  # 2: the records table (compare through the store); 3: case_records (compare case by case)
# The code whose output the cache keeps (derive and what it imports): a change to any
# of these files (a better formula, a new peak row) re-derives every entry. Other
# modules (history, compare, reports) read the tables and do not invalidate them.
_DERIVING = ("analysis/derive.py", "analysis/roofline.py", "analysis/bytes_model.py", "analysis/stats.py",
             "data", "models", "flops.py", "peaks.py", "precisions.py", "records.py", "results.py", "merge.py",
             "store/tables.py")
# Files parsed together are written as one chunk (seven Parquet files holding the rows
# of up to this many results files): one write per table per chunk, not per file;
# small enough that a chunk's frames stay well under a GiB.
CHUNK_FILES = 50


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
    root = Path(__file__).resolve().parent.parent  # the hwbench package folder
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
    and joined each time; ``invalid``: not a results file, ``message`` says why),
    ``key`` (path, size, mtime and code fingerprint hashed: the ``_entry`` of its rows)
    and ``chunk``, the cache folder whose Parquet files hold its rows (``run`` only)."""

    given: str
    path: str
    kind: str
    key: str
    chunk: str = ""
    message: str = ""
    merged_parts: tuple[str, ...] = ()
    run_id: str = ""



class Store:
    """The Parquet cache in ``cache_dir`` (default :func:`default_cache_dir`):
    ``files/<path hash>/<key>/meta.json`` says where each file's rows are, and
    ``chunks/<id>/<table>.parquet`` holds them (an ``_entry`` column names the file
    version each row came from). ``parses`` counts the results files parsed (JSON
    read) by this object."""

    def __init__(self, cache_dir: str | Path | None = None, warn: Callable[[str], None] | None = None):
        self.warn = warn or (lambda msg: None)
        self.parses = 0
        self._fingerprint = code_fingerprint()
        self.root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._con = None
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
        finds them), each brought up to date: new or changed files are parsed, in chunks
        of :data:`CHUNK_FILES`. A file named explicitly that is not a results file raises
        ResultsError; one found in a folder is warned about."""
        from ..results import expand_paths

        named, found = expand_paths(paths)
        items = [(p, True) for p in named] + [(p, False) for p in found]
        out: list[Entry | None] = [self._cached(p, explicit) for p, explicit in items]
        todo = [i for i, e in enumerate(out) if e is None]
        for k in range(0, len(todo), CHUNK_FILES):
            batch = todo[k:k + CHUNK_FILES]
            for i, e in zip(batch, self._build([items[i] for i in batch])):
                out[i] = e
        done = [e for e in out if e is not None]
        for e in done[len(named):]:
            if e.kind == "invalid":
                self.warn(f"skipped {e.message}")
        if not any(e.kind != "invalid" for e in done):
            raise ResultsError(f"{', '.join(map(str, named + found))}: none of these is an hwbench results file")
        self._prune(found)
        return done

    def _key(self, p: Path) -> tuple[str, str, Path]:
        """(absolute path, entry key, entry folder) of file ``p`` as it is now."""
        path = os.path.abspath(p)
        try:
            st = os.stat(path)
        except OSError:
            from ..results import read_record

            read_record(p)  # its own one-line error: missing, unreadable
            raise
        # a run going on (or killed) appends its cases to a journal beside the file
        # (hwbench.journal) without touching the file: its state is part of the version
        from ..journal import journal_path

        try:
            js = os.stat(journal_path(path))
            journal = f":{js.st_size}:{js.st_mtime_ns}"
        except OSError:
            journal = ""
        key = _hash(f"{self._fingerprint}:{path}:{st.st_size}:{st.st_mtime_ns}{journal}")
        return path, key, self.root / "files" / _hash(path) / key

    def _cached(self, p: Path, explicit: bool) -> Entry | None:
        """The entry of ``p`` if the cache holds its current version, else None."""
        path, key, folder = self._key(p)
        try:
            m = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if m["kind"] == "run" and not (self.root / "chunks" / m["chunk"]).is_dir():
            return None
        given = str(p)
        message = m["message"].replace(m["path"], given, 1)
        if m["kind"] == "invalid" and explicit:
            raise ResultsError(message)
        return Entry(given, path, m["kind"], key, m.get("chunk", ""), message, tuple(m.get("merged_parts", ())),
                     m.get("run_id", ""))

    def _build(self, items: list[tuple[Path, bool]]) -> list[Entry]:
        """Parse ``items`` and write their rows as one chunk, then each file's meta."""
        import uuid

        from ..results import read_record

        chunk = uuid.uuid4().hex[:16]
        parts: list[dict] = []  # each run's tables as plain data; the frames are built once
        keys: list[str] = []
        metas = []
        for p, explicit in items:
            path, key, folder = self._key(p)
            self.parses += 1
            kind, message, rec = "run", "", None
            try:
                rec = read_record(p)
            except ResultsError as e:
                if explicit:
                    raise
                kind, message = "invalid", str(e)
            if rec is not None and rec.node is not None:
                kind = "part"
            elif rec is not None:
                parts.append(record_data(rec, path))
                keys.append(key)
            metas.append((folder, Entry(str(p), path, kind, key, chunk if kind == "run" else "", message,
                                        tuple(n.run_id for n in rec.nodes) if rec is not None else (),
                                        rec.run_id if rec is not None else "")))
        if parts:
            tables = frames(parts)
            import pandas as pd

            for name, df in tables.items():  # each row's file entry
                df["_entry"] = pd.array([k for k, p in zip(keys, parts) for _ in range(rows_of(p[name]))],
                                        dtype="string")
            self._write_chunk(chunk, tables)
        for folder, e in metas:
            self._write_meta(folder, {"path": e.given, "abspath": e.path, "kind": e.kind, "message": e.message,
                                      "chunk": e.chunk, "run_id": e.run_id, "merged_parts": list(e.merged_parts)})
        return [e for _, e in metas]

    def _write_chunk(self, chunk: str, tables) -> None:
        """The chunk's Parquet files, written into a temporary folder and renamed into
        place (a reader sees a whole chunk or none)."""
        import duckdb

        home = self.root / "chunks"
        home.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".new.", dir=home))
        try:
            if self._con is None:
                self._con = duckdb.connect()
            for name, df in tables.items():
                self._con.register("t", df)
                self._con.execute(f"COPY t TO '{_sql_path(tmp / (name + '.parquet'))}' (FORMAT parquet)")
                self._con.unregister("t")
            os.rename(tmp, home / chunk)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _write_meta(self, folder: Path, meta: dict) -> None:
        """One file's meta, renamed into place; older versions of the same file dropped."""
        home = folder.parent
        home.mkdir(parents=True, exist_ok=True)
        for old in home.iterdir():
            if old != folder:
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        tmp = home / f".{folder.name}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(meta), encoding="utf-8")
        folder.mkdir(exist_ok=True)
        os.replace(tmp, folder / "meta.json")

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
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._tmp is not None:
            self._tmp.cleanup()


def _sql_path(p: Path | str) -> str:
    """A path as a single-quoted SQL string's content."""
    return str(p).replace("'", "''")
