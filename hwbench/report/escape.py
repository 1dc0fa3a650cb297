"""Escaping in one place: every string from a results file (host names, suite and
model names, failure reasons, flag details) passes here before it reaches the HTML
report -- :func:`esc` for the page, :func:`svg_text` for a figure (whitelisted
characters only: matplotlib would otherwise read ``$...$`` as mathtext), :func:`slug`
for an element id. The terminal's counterpart is :mod:`.text`."""

from __future__ import annotations

import html
import re
from typing import Any

from . import format as fm


def esc(v: Any) -> str:
    """Any value as HTML text, escaped for element content and quoted attributes alike."""
    return html.escape("" if fm.missing(v) else str(v), quote=True)


_SVG_SAFE = re.compile(r"[^A-Za-z0-9 _:./+=,()#%\-]")


def svg_text(v: Any, limit: int = 60) -> str:
    """Text from a results file as it may appear in a figure: whitelisted characters only
    (no ``$`` for mathtext, no markup), at most ``limit`` of them."""
    s = _SVG_SAFE.sub("", "" if fm.missing(v) else str(v))
    return s if len(s) <= limit else s[: limit - 1] + "~"


def slug(v: Any, used: set[str]) -> str:
    """An element id from ``v``: lower-case letters, digits and dashes, unique in ``used``."""
    base = re.sub(r"[^a-z0-9]+", "-", str(v).lower()).strip("-")[:40] or "x"
    s, n = base, 2
    while s in used:
        s, n = f"{base}-{n}", n + 1
    used.add(s)
    return s
