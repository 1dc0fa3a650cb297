"""CPU package energy from RAPL through Linux powercap (``/sys/class/powercap``).

Only package domains (``name`` = ``package-N``) are read: their sub-domains (core,
uncore, dram) are parts of the package's figure and would be counted twice. Counters
are in microjoules and wrap at ``max_energy_range_uj``; :class:`Rapl` accumulates deltas
so callers see one monotonic total in joules. Since Linux 5.10 the counters are
readable by root only: that is detected and reported, not raised.

The wrap detection trusts that each read is newer than the last one: two threads
reading one :class:`Rapl` could apply a stale value, which looks like a wrap and adds
a whole counter range (once 1.3 GJ for a 3.2 J window). Readings are serialised by a
lock, and hwbench reads it from one sampling thread only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DeviceNotSupported

POWERCAP = Path("/sys/class/powercap")


@dataclass
class _Domain:
    name: str
    path: Path
    max_uj: int
    last_uj: int
    total_j: float = 0.0


@dataclass
class Rapl:
    """Cumulative package energy. Raises DeviceNotSupported (with the reason) when no
    package domain exists or none can be read."""

    root: Path = POWERCAP
    domains: list[_Domain] = field(default_factory=list)
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self):
        root = Path(self.root)
        found = []
        for d in sorted(root.glob("*-rapl:*")) if root.is_dir() else []:
            # top-level zones only: intel-rapl:0, not intel-rapl:0:1
            if d.name.count(":") != 1:
                continue
            try:
                name = (d / "name").read_text().strip()
            except OSError:
                continue
            if name.startswith("package"):
                found.append((name, d))
        if not found:
            raise DeviceNotSupported(f"no RAPL package domains under {root}")
        for name, d in found:
            try:
                max_uj = int((d / "max_energy_range_uj").read_text())
                last = int((d / "energy_uj").read_text())
            except PermissionError as e:
                raise DeviceNotSupported(f"RAPL counters not readable ({d / 'energy_uj'}: permission denied; needs root)") from e
            except (OSError, ValueError) as e:
                raise DeviceNotSupported(f"RAPL counter unreadable at {d}: {e}") from e
            self.domains.append(_Domain(name, d, max_uj, last))

    def energy_j(self) -> float | None:
        """Total package energy since this object was made, J (all packages); None
        when a counter could not be read (counted in ``errors``)."""
        with self._lock:
            return self._read()

    def _read(self) -> float | None:
        for dom in self.domains:
            try:
                now = int((dom.path / "energy_uj").read_text())
            except (OSError, ValueError):
                self.errors += 1
                return None
            delta = now - dom.last_uj
            if delta < 0:  # the counter wrapped
                delta += dom.max_uj
            dom.total_j += delta / 1e6
            dom.last_uj = now
        return sum(d.total_j for d in self.domains)
