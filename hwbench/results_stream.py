"""Reading a large results file one case at a time (issue 22).

:func:`hwbench.results.read_record` parses a whole file into one
:class:`~hwbench.records.RunRecord`: every raw time of every case becomes a Python
object at once (about five times the file's size in memory). :class:`CaseStream`
reads the same file in chunks: the top-level keys other than ``cases`` (the run's
header) are parsed as they come, and each element of ``cases`` is parsed, validated as
a :class:`~hwbench.records.CaseResult` and handed out on its own, so a caller that
derives a row from each case and drops it holds the rows, never the records.

Each value is parsed by the standard library's C scanner
(``json.JSONDecoder.raw_decode``): the same parser, numbers and strings as
``json.loads`` over the whole text. Validation is the same pydantic models as the full
reader's. What the stream does not handle it does not guess at: it raises
:class:`Unstreamable` and the caller reads the file with the full reader, which gives
today's one-line message for bad input (invalid or truncated JSON, a field that does not
validate) and the upgrade of schema versions 1 and 2, which rewrite every case (a
schema 3 file is upgraded here: only its header changes).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Iterator

from pydantic import TypeAdapter, ValidationError

from .results import MAX_FILE_BYTES, UPGRADERS
from .records import FORMAT, SCHEMA_VERSION, CaseResult, RunRecord

CHUNK_CHARS = 1 << 22  # text read at a time (4 Mi characters); a value cut off reads on
# Schema versions whose upgrade leaves the cases as they are (3 -> 4: the environments).
STREAMED_VERSIONS = (3, SCHEMA_VERSION)
_WS = re.compile(r"[ \t\n\r]*")
# the end of one case and the start of the next, as hwbench writes them (case_id first)
_NEXT_CASE = re.compile(r'\}[ \t\n\r]*,[ \t\n\r]*(?=\{[ \t\n\r]*"case_id")')
_CASES = TypeAdapter(list[CaseResult])
_DECODER = json.JSONDecoder()


class Unstreamable(Exception):
    """This file is read by the full reader instead (the reason is in the message)."""


class _Text:
    """A text file read in chunks, parsed value by value with ``raw_decode``."""

    def __init__(self, f):
        self.f = f
        self.buf = ""
        self.pos = 0
        self.base = 0  # characters before buf (read and dropped)
        self.eof = False

    def _more(self, least: int = CHUNK_CHARS) -> None:
        try:
            chunk = self.f.read(max(least, CHUNK_CHARS))
        except (OSError, UnicodeDecodeError) as e:
            raise Unstreamable(f"cannot read it ({type(e).__name__})") from None
        self.base += self.pos
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0
        self.eof = not chunk

    def char(self) -> str:
        """The next character that is not whitespace, consumed ('' at the end)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                self.pos += 1
                return self.buf[self.pos - 1]
            if self.eof:
                return ""
            self._more()

    def peek(self) -> str:
        c = self.char()
        if c:
            self.pos -= 1
        return c

    def value(self) -> Any:
        """The next JSON value. A value cut off by the end of the buffer is read again
        with more text (each retry reads at least as much again as is buffered)."""
        self.peek()
        while True:
            try:
                v, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if self.eof:
                    raise Unstreamable("invalid JSON") from None
                self._more(len(self.buf) - self.pos)
                continue
            except (RecursionError, ValueError) as e:
                raise Unstreamable(f"not JSON the stream reads ({type(e).__name__})") from None
            # a number ending at the buffer's end may go on in the next chunk
            if end >= len(self.buf) and not self.eof:
                self._more(len(self.buf) - self.pos)
                continue
            self.pos = end
            return v

    def expect(self, want: str) -> None:
        if self.char() != want:
            raise Unstreamable(f"expected {want!r}")


class CaseStream:
    """One results file read as a stream (see the module docstring). Use as::

        s = CaseStream(path)          # opens it, reads the header up to "cases"
        head = s.header               # RunRecord of the keys read so far, no cases
        for case in s.cases(): ...    # CaseResult, one at a time
        final = s.finish()            # the whole header, the keys after "cases" too

    Raises :class:`Unstreamable` wherever the full reader must read the file instead;
    rows derived from ``head`` hold only where ``finish()`` equals it (:func:`same_header`).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            if self.path.stat().st_size > MAX_FILE_BYTES:
                raise Unstreamable("larger than a results file can be")
            self._f = open(self.path, encoding="utf-8")
        except OSError:
            raise Unstreamable("cannot open it") from None
        try:
            self._t = _Text(self._f)
            self._head: dict[str, Any] = {}
            self._in_cases = self._read_header()
            self.header = self._validate_header()
        except BaseException:
            self._f.close()
            raise

    def close(self) -> None:
        self._f.close()

    def _read_header(self) -> bool:
        """Top-level keys up to ``cases`` into ``self._head``; True if ``cases`` follows."""
        t = self._t
        t.expect("{")
        if t.peek() == "}":
            raise Unstreamable("an empty object")
        while True:
            key = t.value()
            if not isinstance(key, str):
                raise Unstreamable("a key that is not a string")
            t.expect(":")
            if key == "cases":
                if key in self._head:
                    raise Unstreamable("two cases keys")
                t.expect("[")
                return True
            self._head[key] = t.value()
            if self._next_member():
                return False

    def _next_member(self) -> bool:
        """After a member of the top-level object: False if another follows, True at
        its end (where only whitespace may follow)."""
        c = self._t.char()
        if c == ",":
            return False
        if c != "}":
            raise Unstreamable("expected ',' or '}'")
        if self._t.char():
            raise Unstreamable("text after the record")
        return True

    def _validate_header(self) -> RunRecord:
        """The header as a RunRecord with no cases. Schema 3 is upgraded here (its
        upgrade changes only the segments' environments); older files are read by the
        full reader (their upgrades rewrite every case)."""
        h = self._head
        v = h.get("schema_version")
        if h.get("format") != FORMAT or type(v) is not int or v not in STREAMED_VERSIONS:
            raise Unstreamable(f"not a results file of schema {' or '.join(map(str, STREAMED_VERSIONS))}")
        rec = {**copy.deepcopy(h), "cases": []}
        try:
            while rec["schema_version"] < SCHEMA_VERSION:
                rec = UPGRADERS[rec["schema_version"]](rec)
            return RunRecord.model_validate(rec)
        except (ValidationError, RecursionError, KeyError, TypeError, AttributeError, ValueError):
            raise Unstreamable("the header does not upgrade or validate") from None

    def cases(self) -> Iterator[CaseResult]:
        """The validated cases in file order."""
        if not self._in_cases:
            return
        t = self._t
        if t.peek() == "]":
            t.char()
        else:
            slow_until = 0  # where a batch failed, cases are read one at a time up to here
            while True:
                if t.base + t.pos >= slow_until:
                    batch = self._batch()
                    if isinstance(batch, list):
                        yield from batch
                        continue
                    slow_until = batch
                yield self._one()
                c = t.char()
                if c == "]":
                    break
                if c != ",":
                    raise Unstreamable("expected ',' or ']'")
        self._in_cases = False
        if not self._next_member():
            self._read_rest()

    def _one(self) -> CaseResult:
        raw = self._t.value()
        try:
            return CaseResult.model_validate(raw)
        except (ValidationError, RecursionError):
            raise Unstreamable("a case does not validate") from None

    def _batch(self) -> list[CaseResult] | int:
        """The whole cases in the buffer, parsed and validated by pydantic in one call
        (its JSON parser: no Python objects in between), up to the last place where
        one case ends and the next begins (``}, {"case_id"``: the first key of every
        case hwbench writes), the text after it consumed. Where the buffer has no such
        place, or the batch does not parse or validate (a bad case; or the place was
        not a boundary: split there, the text is not valid JSON), returns the position
        (from the file's start) up to which the caller reads case by case instead."""
        t = self._t
        if len(t.buf) - t.pos < CHUNK_CHARS // 2 and not t.eof:
            t._more()
        buf, pos = t.buf, t.pos
        end = None
        for window in (1 << 16, 1 << 20, len(buf)):
            for m in _NEXT_CASE.finditer(buf, max(pos, len(buf) - window)):
                end = m
            if end is not None or window >= len(buf) - pos:
                break
        if end is None:
            return t.base + len(buf)
        try:
            batch = _CASES.validate_json("[" + buf[pos:end.start() + 1] + "]")
        except (ValidationError, RecursionError, ValueError):
            return t.base + end.end()
        t.pos = end.end()
        return batch

    def _read_rest(self) -> None:
        t = self._t
        while True:
            key = t.value()
            if not isinstance(key, str) or key == "cases":
                raise Unstreamable("a second cases key, or a key that is not a string")
            t.expect(":")
            self._head[key] = t.value()
            if self._next_member():
                return

    def finish(self) -> RunRecord:
        """The header with every top-level key (call after :meth:`cases`)."""
        if self._in_cases:
            raise Unstreamable("cases not read to the end")
        self.close()
        return self._validate_header()


def same_header(a: RunRecord, b: RunRecord) -> bool:
    """Whether rows derived with header ``a`` hold for header ``b``: equal but for the
    auto batch searches' limits (which no row reads)."""
    return a.model_copy(update={"batch_limits": b.batch_limits}) == b
