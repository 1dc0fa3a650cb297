"""One registry shape for every plug-in axis (docs/architecture.md, "Registries").

Precisions, backends, variants, sampler kinds, parallel strategies, report views and
device kinds each keep a :class:`Registry` of their entries. An entry is added by a
call (``REG.register(entry)``) or a decorator (``@REG.register`` on an object that has a
``name``, or ``@REG.register(name="x")`` on anything); a suite names it; ``get`` finds
it or raises :class:`UnknownName`, a one-line :class:`~hwbench.errors.UserError` that
lists the allowed names and the closest one (difflib). ``requires(name, device, case)``
asks the entry's own ``requires(device, case)`` why it cannot run, or None.

Entries may live in modules of their own: a registry made with ``modules`` (dotted
names) imports them on its first read, each registering its entries, so adding one is
a new module plus its name in that list (``precisions.PRECISION_MODULES``, as
``report.sections.VIEW_MODULES`` and the strategies' import line do for theirs).

This module is a leaf: it imports only the standard library and ``errors``.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar, overload

from .errors import UserError

T = TypeVar("T")


class UnknownName(UserError, KeyError):
    """A name no entry of a registry has. Also a KeyError, for lookups that fall back."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def closest(name: Any, choices: Any) -> str | None:
    """The one of ``choices`` closest to ``name`` (difflib's ratio >= 0.6), or None."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return close[0] if close else None


def did_you_mean(name: Any, choices: Any) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` to ``name``, or ``""``."""
    close = closest(name, choices)
    return f"; did you mean {close!r}?" if close else ""


class Registry(Generic[T]):
    """Named entries of one kind, in registration order.

    ``kind`` names the axis in messages ("unknown precision 'x'; allowed: ...");
    ``modules``: modules that register further entries, imported on the first read.
    """

    def __init__(self, kind: str, modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._modules = modules

    def _load(self) -> dict[str, T]:
        """The entries, after importing the ``modules`` (once)."""
        modules, self._modules = self._modules, ()
        for m in modules:
            importlib.import_module(m)
        return self._entries

    # -- adding
    @overload
    def register(self, entry: T, /) -> T: ...
    @overload
    def register(self, *, name: str) -> Callable[[T], T]: ...

    def register(self, entry: Any = None, /, *, name: str | None = None) -> Any:
        """Add ``entry`` under ``name`` (default: its ``name`` attribute, else its
        ``__name__``); the name must be new. Without ``entry``: a decorator."""
        if entry is None:
            return lambda e: self._add(e, name)
        return self._add(entry, name)

    def _add(self, entry: T, name: str | None) -> T:
        key = name or getattr(entry, "name", None) or getattr(entry, "__name__", None)
        if not isinstance(key, str) or not key:
            raise ValueError(f"a {self.kind} needs a name to be registered: {entry!r}")
        if key in self._entries:
            raise ValueError(f"{self.kind} {key!r} is already registered")
        self._entries[key] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` if registered (tests that add a toy entry use it)."""
        self._entries.pop(name, None)

    # -- reading
    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._load())

    def get(self, name: str) -> T:
        """The entry called ``name``; :class:`UnknownName` (a UserError) if none is."""
        try:
            return self._load()[name]
        except (KeyError, TypeError):
            raise UnknownName(self.unknown(name)) from None

    def unknown(self, name: Any, allowed: Any = None) -> str:
        """The one-line message for an unknown ``name``: the allowed names (default:
        the registered ones) and the closest of them."""
        allowed = self.names() if allowed is None else tuple(allowed)
        return f"unknown {self.kind} {name!r}; allowed: {', '.join(allowed)}{did_you_mean(name, allowed)}"

    def requires(self, name: str, device: Any, case: Any) -> str | None:
        """Why entry ``name`` cannot run ``case`` on ``device``, or None. An entry without
        a ``requires(device, case)`` method runs anywhere."""
        check = getattr(self.get(name), "requires", None)
        return None if check is None else check(device, case)

    def values(self) -> tuple[T, ...]:
        return tuple(self._load().values())

    def items(self) -> tuple[tuple[str, T], ...]:
        return tuple(self._load().items())

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._load()))

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
