"""Terminal output helpers the commands share: the render width, a rich console, and
printing lines already fitted to the width."""

from __future__ import annotations

import sys

from ..report.text import clean, literal


def width(stderr: bool = False) -> int:
    """Render width: the terminal's; for a pipe, $COLUMNS when set, else 120 (see
    hwbench.report.fit.output_width)."""
    from ..report.fit import output_width

    return output_width(sys.stderr if stderr else sys.stdout)


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, width=width(stderr), soft_wrap=False)


def print_lines(con, lines, style: str | None = None) -> None:
    """Lines already fitted to the width: printed as they are (no markup, no wrapping)."""
    if style is None and not con.is_terminal:
        # a pipe or a file: the same text without rich's work per line (a report of
        # 100,000 cases is 100,000 lines)
        con.file.write("".join(clean(line) + "\n" for line in lines))
        return
    for line in lines:
        con.print(literal(line), style=style, overflow="ignore", crop=False, no_wrap=True)


def split_columns(value: str | None) -> list[str]:
    """``--columns A,B,...`` as a list of names (blanks dropped)."""
    return [c.strip() for c in (value or "").split(",") if c.strip()]
