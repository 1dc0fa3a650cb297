"""Tables that fit the width they are given: columns chosen by priority, never a
wrapped or cut number.

A table is a list of :class:`Column` specs over rows (dicts or pandas rows). Every cell
is formatted first; then the columns are taken in priority order while they fit, and
shown in their declared order. A number column is either shown whole or left out (and
named, so ``--wide`` / ``--columns`` can bring it back); only text columns marked
``shrink`` (a failure reason, flag names) are cut, with an ellipsis. The key column
(the case) is cut last, in the middle, and only when nothing else is left.

Width for output that is not a terminal: ``$COLUMNS`` when set, else 120
(:func:`output_width`) -- a CI log or ``| less`` should not get an 80-column squeeze
of a wide table.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from .text import clean

PIPE_WIDTH = 120  # width of output that is not a terminal, when $COLUMNS is not set
GAP = "  "  # between columns
ELLIPSIS = "…"


def output_width(stream=None) -> int:
    """The width to render for: the terminal's width (``$COLUMNS`` overrides it, as
    ``shutil.get_terminal_size`` does), else ``$COLUMNS`` when set, else
    :data:`PIPE_WIDTH`. At least 40."""
    stream = stream or sys.stdout
    env = os.environ.get("COLUMNS", "")
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if env.isdigit() and int(env) > 0:
        w = int(env)
    elif tty:
        w = shutil.get_terminal_size((PIPE_WIDTH, 24)).columns
    else:
        w = PIPE_WIDTH
    return max(40, w)


def cell_len(s: str) -> int:
    if s.isascii() and s.isprintable():
        return len(s)  # one cell a character (rich's answer, without its lookups)
    from rich.cells import cell_len as _cl

    return _cl(s)


def cut(s: str, width: int, middle: bool = False) -> str:
    """``s`` in at most ``width`` cells, with an ellipsis where it was cut (in the middle
    when ``middle``: both ends of a case id say something)."""
    if cell_len(s) <= width:
        return s
    if width <= 1:
        return ELLIPSIS[:width]
    from rich.cells import set_cell_size

    if middle and width >= 5:
        head = (width - 1) // 2
        tail = width - 1 - head
        right = s[-tail:]
        while cell_len(right) > tail:
            right = right[1:]
        return set_cell_size(s, head) + ELLIPSIS + right
    return set_cell_size(s, width - 1) + ELLIPSIS


@dataclass(frozen=True)
class Column:
    """One column of a terminal table.

    ``key``: the DataFrame column (its raw value is what ``fmt`` receives unless ``row``
    is set); ``header``: what the terminal shows; ``fmt``: raw value -> text; ``row``:
    whole row -> text, for cells that need more than one value (energy marked as
    estimated); ``priority``: 0 = always shown, then ascending; ``align``: "right" for
    numbers; ``shrink``: a text column that may be cut to ``min_width``."""

    key: str
    header: str
    fmt: Callable[[Any], str] = str
    priority: int = 5
    align: str = "right"
    shrink: bool = False
    min_width: int = 12
    row: Callable[[Any], str] | None = None

    def cell(self, r) -> str:
        if self.row is not None:
            return clean(self.row(r))
        v = r.get(self.key) if hasattr(r, "get") else r[self.key]
        return clean(self.fmt(v))


@dataclass(frozen=True)
class Fitted:
    """A rendered table: its lines and the columns left out for want of width."""

    lines: list[str]
    hidden: list[str]  # headers of the columns that did not fit
    width: int  # the widest line


def fit(rows: Sequence[Any], columns: Sequence[Column], width: int | None, *, keep_empty: Iterable[str] = ()) -> Fitted:
    """Render ``rows`` with as many ``columns`` as fit in ``width`` cells (None: all).
    Columns whose cells are all empty are dropped (unless their key is in
    ``keep_empty``)."""
    keep_empty = set(keep_empty)
    cells: dict[int, list[str]] = {}
    natural: dict[int, int] = {}
    cols = list(columns)
    for i, c in enumerate(cols):
        vals = [c.cell(r) for r in rows]
        if not any(vals) and c.priority > 0 and c.key not in keep_empty:
            continue
        cells[i] = vals
        natural[i] = max([cell_len(c.header), *map(cell_len, vals)])
    order = sorted(cells, key=lambda i: (cols[i].priority, i))
    chosen: dict[int, int] = {}  # column index -> width
    hidden: list[str] = []

    def used(extra: int = 0, n_extra: int = 0) -> int:
        n = len(chosen) + n_extra
        return sum(chosen.values()) + extra + len(GAP) * max(0, n - 1)

    for i in order:
        c = cols[i]
        if width is None or c.priority == 0 or used(natural[i], 1) <= width:
            chosen[i] = natural[i]
        elif c.shrink:
            room = width - used(0, 1)
            if room >= min(c.min_width, natural[i]):
                chosen[i] = room
            else:
                hidden.append(c.header)
        else:
            hidden.append(c.header)
    # Too wide with only the must-have columns: cut the shrinkable ones, then the key
    # (first) column, in the middle, then the other text columns, widest first.
    if width is not None and used() > width:
        for i in sorted(chosen, key=lambda i: -cols[i].priority):
            if cols[i].shrink and used() > width:
                chosen[i] = max(min(cols[i].min_width, chosen[i]), chosen[i] - (used() - width))
        first = min(chosen) if chosen else None
        if first is not None and used() > width:
            chosen[first] = max(10, chosen[first] - (used() - width))
        for i in sorted(chosen, key=lambda i: -chosen[i]):  # then other text columns (a long model name)
            if cols[i].align == "left" and used() > width:
                chosen[i] = max(10, chosen[i] - (used() - width))
    lines: list[str] = []
    idx = sorted(chosen)

    def line(parts: list[str]) -> str:
        out = []
        for i, s in zip(idx, parts):
            w = chosen[i]
            s = cut(s, w, middle=(i == idx[0]))
            pad = " " * (w - cell_len(s))
            out.append(pad + s if cols[i].align == "right" else s + pad)
        return GAP.join(out).rstrip()

    lines.append(line([cols[i].header for i in idx]))
    lines.append(GAP.join("─" * chosen[i] for i in idx))
    for k in range(len(rows)):
        lines.append(line([cells[i][k] for i in idx]))
    return Fitted(lines, hidden, max(map(cell_len, lines)) if lines else 0)


# ------------------------------------------------------------------------ case ids
def abbreviate_ids(ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """Case ids without the parts every one of them shares, and those parts.

    ``mlp:tiny/infer/bs1/fp32/eager/cpu`` and ``cnn:tiny/train/bs8/img64/fp32/eager/cpu``
    become ``mlp/infer/bs1`` and ``cnn/train/bs8/img64`` with ``["tiny", "fp32", "eager",
    "cpu"]`` common. The model family always stays; with a single id, or where
    abbreviating would make two different ids equal, nothing is dropped."""
    uniq = list(dict.fromkeys(ids))
    if len(uniq) < 2:
        return list(ids), []
    split = [i.split("/") for i in ids]
    models = [s[0].partition(":") for s in split]
    sizes = {m[2] for m in models}
    drop_size = len(sizes) == 1 and all(m[1] for m in models)
    rest = [set(s[1:]) for s in split]
    common = set.intersection(*rest) if rest else set()
    short = []
    for s, m in zip(split, models):
        head = m[0] if drop_size else s[0]
        short.append("/".join([head, *[p for p in s[1:] if p not in common]]))
    if len(set(short)) != len(uniq):
        return list(ids), []
    shared = ([next(iter(sizes))] if drop_size else []) + [p for p in split[0][1:] if p in common]
    return short, shared
