"""The results journal: a run's cases appended once each, beside its results file.

Rewriting the whole results file after every case made the bytes a run writes grow
with the square of its case count. Instead, while a run goes on, its results file
(``R``) holds the record as it was when the segment started (status ``running``) and
``R.journal`` beside it receives one line per event, each appended once and fsynced:

* a header: ``{"kind": "journal", "version": 1, "run_id": ..., "segments": N}`` -- the
  run and the number of segments of ``R`` that this journal continues;
* ``{"kind": "case", "at": TIME, "case": {CaseResult}}`` for every finished case (a case
  run again replaces its earlier result, as in the file);
* ``{"kind": "batch_limit", "at": TIME, "case_id": ..., "limit": {BatchLimit}}`` for an
  auto batch search;
* ``{"kind": "status", "at": TIME, "status": ...}`` as the run ends.

Each line is JSON of its own, ``{"crc32":"xxxxxxxx","entry":ENTRY}``, where the CRC-32
(8 hex digits) covers the exact bytes of ``ENTRY``; a line whose checksum does not match
(a write torn by a crash, a power cut or a full disk) is dropped with a warning, never
parsed into numbers.

**Compaction** writes the record with every journal entry applied into ``R`` (atomically,
:func:`hwbench.results.write_atomic`) and then removes the journal: at the end of every
run (complete, interrupted, or stopped by an error), when a resume starts (its new
segment's first write), and on demand (``hwbench compact R``; a killed run's file is
marked ``interrupted`` then). A journal applies only while ``R`` says ``running`` with
the header's run id and segment count: once compacted, ``R`` has another status or one
more segment, so a journal left behind by a crash between the two steps is stale and
ignored. Readers (:func:`hwbench.results.read_record`, so every command) merge an
uncompacted journal read-only, so a live or killed run reads as one consistent record.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, get_args

from pydantic import ValidationError

from .writable import fsync_dir as _fsync_dir, write_atomic
from .records import BatchLimit, CaseResult, RunRecord, RunStatus

SUFFIX = ".journal"
VERSION = 1
MAX_JOURNAL_BYTES = 2**31  # as for a results file: larger is not one of ours
_HEAD = b'{"crc32":"'
_MID = b'","entry":'
_BODY_AT = len(_HEAD) + 8 + len(_MID)


class JournalWarning(UserWarning):
    """Something in a journal was dropped (a torn or corrupt line) or ignored."""


def warn(message: str) -> None:
    """The default ``warn`` of readers: a Python warning (the CLI prints it on one line)."""
    import warnings

    warnings.warn(message, JournalWarning, stacklevel=3)


def journal_path(results: str | Path) -> Path:
    """``R.journal`` beside results file ``R`` (beside its target when ``R`` is a link)."""
    p = Path(results)
    if p.is_symlink():
        p = Path(os.path.realpath(p))
    return p.with_name(p.name + SUFFIX)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def encode(entry: bytes) -> bytes:
    """One journal line: ``entry`` (JSON bytes, no newline) with its CRC-32."""
    return _HEAD + b"%08x" % zlib.crc32(entry) + _MID + entry + b"}\n"


def decode(line: bytes) -> dict[str, Any] | None:
    """The entry of one journal line (without its newline), or None when the line is
    torn or corrupt: wrong frame, checksum mismatch, or not a JSON object."""
    if len(line) < _BODY_AT + 3 or not line.startswith(_HEAD) or not line.endswith(b"}"):
        return None
    if line[_BODY_AT - len(_MID):_BODY_AT] != _MID:
        return None
    body = line[_BODY_AT:-1]
    try:
        if int(line[len(_HEAD):len(_HEAD) + 8], 16) != zlib.crc32(body):
            return None
        entry = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return entry if isinstance(entry, dict) else None


# ------------------------------------------------------------------------------ writing
class JournalWriter:
    """Appends a run's events to ``R.journal`` (see the module docstring). Opening it
    replaces any journal there (an older one is already in ``R``, or stale). Every
    append is one ``write`` of one line and an fsync; an append that fails (disk full)
    is cut off again where possible and raises OSError, leaving what was saved."""

    def __init__(self, results: str | Path, record: RunRecord):
        self.path = journal_path(results)
        self.bytes_written = 0  # what this writer wrote (the header included), bytes
        head = json.dumps({"kind": "journal", "version": VERSION, "run_id": record.run_id,
                           "segments": len(record.segments)}).encode()
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            self._write(fd, encode(head))
            os.fsync(fd)
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.path.parent)
        self._fd: int | None = fd
        self._size = os.fstat(fd).st_size

    def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        self.bytes_written += len(data)

    def _append(self, entry: bytes) -> None:
        if self._fd is None:
            raise OSError(9, "journal closed")
        line = encode(entry)
        try:
            os.lseek(self._fd, self._size, os.SEEK_SET)
            self._write(self._fd, line)
            os.fsync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)  # no torn line for the next append to follow
            raise
        self._size += len(line)

    def case(self, result: CaseResult) -> None:
        """A finished case (serialised once, here)."""
        self._append(b'{"kind":"case","at":"%s","case":%s}' % (now_iso().encode(), result.model_dump_json().encode()))

    def batch_limit(self, case_id: str, limit: BatchLimit) -> None:
        head = json.dumps({"kind": "batch_limit", "at": now_iso(), "case_id": case_id})[:-1].encode()
        self._append(head + b',"limit":%s}' % limit.model_dump_json().encode())

    def status(self, status: str) -> None:
        self._append(json.dumps({"kind": "status", "at": now_iso(), "status": status}).encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """After compaction: the journal is in the results file now."""
        self.close()
        discard(self.path)


def discard(path: Path) -> None:
    """Remove journal ``path`` (already compacted, or stale) and make that durable."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
        _fsync_dir(path.parent)


# ------------------------------------------------------------------------------ reading
def read_entries(path: Path, record: RunRecord, warn: Callable[[str], None]) -> list[dict[str, Any]]:
    """The entries of journal ``path`` that continue ``record`` (none if the journal is
    stale or another run's). Torn or corrupt lines are dropped, each with a warning."""
    try:
        if path.stat().st_size > MAX_JOURNAL_BYTES:
            warn(f"{path}: journal larger than {MAX_JOURNAL_BYTES // 2**30} GiB; ignored")
            return []
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as e:
        warn(f"{path}: cannot read the journal ({e.strerror or e}); showing the results file without it")
        return []
    lines = data.split(b"\n")  # only "\n": JSON escapes it in strings, unlike U+2028
    if lines[-1] and not _writer_alive(path):  # else: an append going on as we read
        warn(f"{path}: dropped a torn last line ({len(lines[-1])} bytes, no newline): the write "
             "it came from did not finish")
    entries = []
    for i, line in enumerate(lines[:-1], 1):
        entry = decode(line)
        if entry is None:
            warn(f"{path}: line {i}: checksum or frame does not match (a torn or corrupt write); dropped")
        else:
            entries.append(entry)
    if not entries or entries[0].get("kind") != "journal":
        if entries:
            warn(f"{path}: no journal header; ignored")
        return []
    head = entries[0]
    if head.get("run_id") != record.run_id:
        warn(f"{path}: the journal of run {str(head.get('run_id'))[:40]!r}, not of this file's "
             f"run {record.run_id!r}; ignored")
        return []
    if record.status != "running" or head.get("segments") != len(record.segments):
        return []  # already compacted into the results file
    return entries[1:]


def _writer_alive(journal: Path) -> bool:
    """Whether the process that last locked the results file (its pid is in the lock
    file, :func:`hwbench.results.locked`) still lives: then a line without its newline
    is an append in progress, not a torn write."""
    results = journal.with_name(journal.name[: -len(SUFFIX)])
    try:
        pid = int((results.parent / f".{results.name}.lock").read_text(encoding="ascii").strip())
        os.kill(pid, 0)
    except PermissionError:
        return True  # another user's process
    except (OSError, ValueError):
        return False  # no lock file, no pid, or no such process
    return True


def apply(record: RunRecord, entries: list[dict[str, Any]], path: Path,
          warn: Callable[[str], None]) -> RunRecord:
    """``record`` with the journal ``entries`` applied in order. An entry that does not
    validate is dropped with a warning."""
    if not entries:
        return record
    cases = {c.case_id: c for c in record.cases}
    limits = dict(record.batch_limits)
    status, updated = record.status, record.updated
    for e in entries:
        try:
            kind = e.get("kind")
            if kind == "case":
                c = CaseResult.model_validate(e["case"])
                if c.segment >= len(record.segments):
                    raise ValueError(f"segment {c.segment} of {len(record.segments)}")
                cases.pop(c.case_id, None)  # a case run again goes last, as in the file
                cases[c.case_id] = c
            elif kind == "batch_limit":
                limits[str(e["case_id"])] = BatchLimit.model_validate(e["limit"])
            elif kind == "status":
                status = _status(e["status"])
            else:
                raise ValueError(f"unknown kind {str(kind)[:40]!r}")
        except (ValidationError, KeyError, TypeError, ValueError) as err:
            what = str(err).splitlines()[0][:100]
            warn(f"{path}: a journal entry does not validate ({what}); dropped")
            continue
        if isinstance(e.get("at"), str):
            updated = e["at"][:64]
    return record.model_copy(update={"cases": list(cases.values()), "batch_limits": limits,
                                     "status": status, "updated": updated})


def _status(value: Any) -> str:
    if value not in get_args(RunStatus):
        raise ValueError(f"status {str(value)[:40]!r}")
    return value


def merged(record: RunRecord, results: str | Path, warn: Callable[[str], None]) -> RunRecord:
    """``record`` (read from ``results``) with its uncompacted journal applied, if any."""
    path = journal_path(results)
    if record.status != "running" or not path.exists():
        return record
    return apply(record, read_entries(path, record, warn), path, warn)


def compact(results: str | Path, record: RunRecord, status: str | None = None) -> bool:
    """Write ``record`` (read from ``results`` with its journal merged) into the results
    file and remove the journal; a record still ``running`` becomes ``status`` (default
    ``interrupted``: nothing runs it now). The caller holds the results file's lock
    (:func:`hwbench.results.locked`). Returns False when there was no journal."""
    target = Path(os.path.realpath(results))
    path = journal_path(target)
    if not path.exists():
        return False
    if record.status == "running":
        record = record.model_copy(update={"status": status or "interrupted"})
    write_atomic(target, record)
    discard(path)
    return True
