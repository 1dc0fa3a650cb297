"""``load_results`` with bounded memory: rows derived case by case and kept as columns.

:func:`hwbench.analysis.derive.load_results_and_records` reads every file into its
records, derives a dict per case and converts the whole list: memory is the records
plus the rows (about 5 KB of Python objects a row). :func:`load_frame` reads each file
with :class:`hwbench.results_stream.CaseStream`, derives each case's row
(:func:`~hwbench.analysis.derive.case_row`, the same function) as the case arrives and
drops the case; every :data:`CHUNK_ROWS` rows become typed columns
(:func:`~hwbench.analysis.derive.column`, the same conversion as ``to_frame``). So the
memory is the DataFrame's columns, a small slice of each row kept for the rules that
compare rows (below), and one chunk of rows.

**The rules across rows** (a serving case's capacity from its sibling load points, a
parallel case's scaling efficiency and compression ratio, a train case's input headroom
against its data cases) read a few columns of other rows. Each row that one of them can
touch keeps those columns (:data:`CROSS_READS`) until the end, the rules run on these
slices per file and across files exactly as ``record_rows`` and ``load_results`` run them
on whole rows, and what they write (:data:`CROSS_WRITES`, kept as Python values until
the end with the columns a file adds beyond the schema) goes into the frame. The result
equals ``to_frame`` over all rows, column for column (tests/test_results_stream.py).

A file the stream does not read (an older schema, an uncompacted journal, bad input) is
read by the full reader and its cases go through the same steps; a multi-node part or
merged record anywhere makes the whole call the full path (parts are joined first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .derive import (COLUMNS, IDENTITY, SCHEMA, _extra_dtype, case_row, column, load_results_and_records,
                     record_rules, scaling_efficiency)
from .feeding import IO_LOADER_KEYS, PARTNER_KEYS

CHUNK_ROWS = 4096  # rows converted to columns at a time

# What the rules across rows read of a row, and what they write.
CROSS_READS = frozenset({"case_id", "offered_qps", "status", "slo_met", "run_id", "hostname", "suite", "scaling",
                         "created", "parallelism", "world_size", "throughput_samples_per_s", "comm",
                         "comm_bytes_per_step", "mode", *IDENTITY, *PARTNER_KEYS, *IO_LOADER_KEYS})
CROSS_WRITES = ("capacity_qps_at_slo", "scaling_efficiency", "scaling_baseline_run_id", "comm_compression_ratio",
                "input_headroom", "input_bound", "input_loader")
_DTYPE = dict(SCHEMA)


# What the input-headroom rule reads: the only rule that reads a train or data row
# that is neither parallel nor a serving load point (the others select those rows)
FEED_READS = frozenset({"mode", "parallelism", "run_id", "hostname", "status", "throughput_samples_per_s",
                        *PARTNER_KEYS, *IO_LOADER_KEYS})


def _reads(row: dict[str, Any]) -> frozenset | None:
    """The columns of ``row`` that the rules across rows can read, or None where none of
    them reads or writes it (they select: serving load points, parallel cases, train
    and data cases)."""
    if row.get("offered_qps") is not None or row.get("parallelism") not in (None, "none"):
        return CROSS_READS
    if row.get("mode") in ("train", "data"):
        return FEED_READS
    return None


class FrameBuilder:
    """Rows in, the DataFrame of ``to_frame`` out (module docstring). Rows are added
    record by record: :meth:`mark`, :meth:`add` each, then :meth:`end_record` (or
    :meth:`rollback` to the mark)."""

    def __init__(self, chunk_rows: int | None = None):
        self.chunk_rows = chunk_rows or CHUNK_ROWS
        self.n = 0  # rows added
        self.records = 0
        self._pieces: dict[str, list[tuple[int, Any]]] = {}  # schema column -> [(first row, Series)]
        self._late: dict[str, list[Any]] = {}  # CROSS_WRITES and extra columns: values by row
        self._cross: list[dict[str, Any]] = []  # slices of rows for the rules, "_i": the row
        self._chunk: list[dict[str, Any]] = []

    def mark(self) -> int:
        return self.n

    def add(self, row: dict[str, Any]) -> None:
        reads = _reads(row)
        if reads is not None:
            slim = {k: v for k in reads if (v := row.get(k)) is not None}  # a rule's r.get(k) reads None alike
            slim["_i"] = self.n
            self._cross.append(slim)
        self._chunk.append(row)
        self.n += 1
        if len(self._chunk) >= self.chunk_rows:
            self._flush()

    def _flush(self) -> None:
        rows, self._chunk = self._chunk, []
        if not rows:
            return
        start = self.n - len(rows)
        keys: set[str] = set()
        for r in rows:
            keys.update(r)
        names = list(keys)
        # rows to columns: each row's values in one C-level pass, then transposed
        for name, got in zip(names, map(list, zip(*[list(map(r.get, names)) for r in rows]))):
            if name in _DTYPE and name not in CROSS_WRITES:
                self._pieces.setdefault(name, []).append((start, column(name, _DTYPE[name], got)))
            else:
                vals = self._late.setdefault(name, [])
                vals.extend([None] * (start - len(vals)))
                vals.extend(got)

    def end_record(self, mark: int) -> None:
        """The rows since ``mark`` are one record's: its rules run on them."""
        self._flush()
        self.records += 1
        first = next((j for j in range(len(self._cross) - 1, -1, -1) if self._cross[j]["_i"] < mark), -1) + 1
        record_rules(self._cross[first:])

    def rollback(self, mark: int) -> None:
        """Forget the rows since ``mark`` (a file the stream gave up on)."""
        self._chunk = []
        self.n = mark
        for name in list(self._pieces):
            self._pieces[name] = [(s, p) for s, p in self._pieces[name] if s < mark]
        for vals in self._late.values():
            del vals[mark:]
        self._cross = [r for r in self._cross if r["_i"] < mark]

    def finish(self):
        """The DataFrame (after the rule across files, ``load_results``' scaling
        efficiency)."""
        import numpy as np
        import pandas as pd
        from pandas.api.internals import create_dataframe_from_blocks

        self._flush()
        scaling_efficiency(self._cross)
        for r in self._cross:
            wrote = set(r) - CROSS_READS - {"_i"}
            if not wrote <= set(CROSS_WRITES):
                raise RuntimeError(f"a rule across rows wrote {sorted(wrote - set(CROSS_WRITES))}: add to CROSS_WRITES")
            for k in wrote:
                vals = self._late.setdefault(k, [])
                vals.extend([None] * (self.n - len(vals)))
                vals[r["_i"]] = r[k]
        self._cross = []  # freed before the frame is built (its memory is reused)
        for vals in self._late.values():
            vals.extend([None] * (self.n - len(vals)))
        dtypes = dict(SCHEMA) | {k: _extra_dtype(k, self._late[k]) for k in sorted(set(self._late) - set(COLUMNS))}
        names = list(dtypes)
        floats = [k for k in names if dtypes[k] == "float64"]
        # the float columns go straight into the one 2-D block the frame keeps them in
        # (the DataFrame constructor would concatenate them, then copy them all again)
        block = np.full((len(floats), self.n), np.nan)
        for j, name in enumerate(floats):
            if name in self._late:
                block[j] = column(name, "float64", self._late.pop(name)).to_numpy()
            else:
                for start, piece in self._pieces.pop(name, []):
                    block[j, start:start + len(piece)] = piece.to_numpy()
            if j % 16 == 15:
                _trim()  # the pieces copied so far
        _trim()  # the float pieces are free now
        where = {k: i for i, k in enumerate(names)}
        blocks = [(block, np.array([where[k] for k in floats], dtype=np.intp))]
        na: dict[tuple[str, int], Any] = {}
        for name in names:
            dtype = dtypes[name]
            if dtype == "float64":
                continue
            if name in self._late:
                col = column(name, dtype, self._late.pop(name))
            else:
                col = self._joined(name, dtype, na)
            arr = col.array if dtype != "object" else col.to_numpy(dtype=object).reshape(1, -1)
            blocks.append((arr, np.array([where[name]], dtype=np.intp)))
        df = create_dataframe_from_blocks(blocks, index=pd.RangeIndex(self.n), columns=pd.Index(names))
        _trim()
        return df

    def _joined(self, name: str, dtype: str, na: dict) -> Any:
        """Schema column ``name``'s pieces, the rows without it filled with its missing
        value, as one Series."""
        import pandas as pd

        parts, at = [], 0
        for start, piece in self._pieces.pop(name, []) + [(self.n, None)]:
            if start > at:
                if (dtype, start - at) not in na:
                    na[dtype, start - at] = column(name, dtype, [None] * (start - at))
                parts.append(na[dtype, start - at])
            if piece is not None:
                parts.append(piece)
                at = start + len(piece)
        if len(parts) == 1:
            return parts[0].reset_index(drop=True)
        if not parts:
            return column(name, dtype, [])
        return pd.concat(parts, ignore_index=True)


def load_results(paths, warn: Callable[[str], None] | None = None):
    """:func:`hwbench.analysis.derive.load_results` (the same frame, the same warnings and
    errors) with each file read as a stream, a case at a time (the module docstring)."""
    import os

    warn = warn or _warn
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)  # read twice where a run is joined
    df = load_frame(paths, warn)
    return df if df is not None else load_results_and_records(paths, warn)[0]


def _warn(msg: str) -> None:
    import warnings

    warnings.warn(msg, stacklevel=4)


def _trim() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; a no-op
    elsewhere). The chunks' columns were small allocations: freed, they are holes in the
    heap that the process's resident memory keeps counting, and what comes next (the
    report's table) would not reuse them."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _Joined(Exception):
    """A multi-node part or merged record: the whole load takes the full path."""


def load_frame(paths, warn: Callable[[str], None]):
    """:func:`~hwbench.analysis.derive.load_results` of ``paths`` through the stream, or
    None where a multi-node run makes it the full path (nothing was warned then)."""
    from ..errors import ResultsError
    from ..results import expand_paths

    named, found = expand_paths(paths)
    said: list[str] = []  # said once the stream is sure to be the path (or on an error)
    b = FrameBuilder()
    joined = False
    try:
        for p in named:
            _add_file(b, p, said.append)
        for p in found:
            try:
                _add_file(b, p, said.append)
            except ResultsError as e:
                said.append(f"skipped {e}")
    except _Joined:
        joined = True
    finally:
        for w in [] if joined else said:
            warn(w)
    if joined:
        return None
    if not b.records:
        raise ResultsError(f"{', '.join(map(str, named + found))}: none of these is an hwbench results file")
    return b.finish()


def _add_file(b: FrameBuilder, p: Path, warn: Callable[[str], None]) -> None:
    """One file's rows into ``b``: streamed, or read whole where the stream gives up."""
    from ..journal import journal_path
    from ..results import read_record
    from ..results_stream import CaseStream, Unstreamable, same_header

    mark = b.mark()
    try:
        s = CaseStream(p)
    except Unstreamable:
        return _add_record(b, p, read_record(p, warn), mark)
    try:
        head = s.header
        if head.node is not None or head.nodes:
            raise _Joined
        if head.status == "running" and journal_path(p).exists():
            raise Unstreamable("an uncompacted journal")  # merged by the full reader
        for c in s.cases():
            b.add(case_row(head, c, str(p)))
        final = s.finish()
        if final.node is not None or final.nodes:
            raise _Joined
        if not same_header(head, final):
            raise Unstreamable("keys after the cases change the rows")
    except Unstreamable:
        b.rollback(mark)
        return _add_record(b, p, read_record(p, warn), mark)
    finally:
        s.close()
    b.end_record(mark)


def _add_record(b: FrameBuilder, p: Path, rec, mark: int) -> None:
    if rec.node is not None or rec.nodes:
        raise _Joined
    for c in rec.cases:
        b.add(case_row(rec, c, str(p)))
    b.end_record(mark)
