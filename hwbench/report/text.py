"""Text from users and files, made safe for a terminal.

Suite names, case ids, failure reasons (torch's own messages included) and paths reach
the terminal. Control characters (escape sequences, carriage returns, NUL) and bidi
overrides are removed so they cannot move the cursor, recolour, reorder or hide output; rich markup is never parsed in
such text (``[enforce fail ...]`` in a torch message must print as it is).
"""

from __future__ import annotations

import re

# C0 / C1 controls, and the invisible format characters that reorder or hide text on a
# terminal (bidi overrides and isolates such as U+202E, zero-width spaces, the BOM)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def clean(text: object, *, newlines: bool = False) -> str:
    """``text`` as a string without control characters; newlines and tabs become spaces
    unless ``newlines``."""
    s = str(text)
    if s.isascii() and s.isprintable():  # no control character, newline or tab (most cells)
        return s
    s = _CONTROL.sub("", s)
    return s if newlines else s.replace("\n", " ").replace("\t", " ")


def literal(text: object):
    """A rich Text that is printed exactly (after :func:`clean`), never parsed as markup."""
    from rich.text import Text

    return Text(clean(text))


def md(text: object) -> str:
    """``text`` as a markdown table cell or heading: :func:`clean`, pipes escaped."""
    return clean(text).replace("|", "\\|")
