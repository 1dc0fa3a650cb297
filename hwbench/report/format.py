"""Numbers for humans: adaptive units, 3 significant digits, a unit with every figure.

Only the terminal (and markdown) renderers use these. Machine-readable outputs (CSV,
JSON, Parquet) keep raw numbers in columns whose names carry the unit (docs/architecture.md). Every
function takes a raw value in the unit its name says and returns a string; a missing
value (None, NaN, pandas NA) is the empty string.
"""

from __future__ import annotations

import math
from typing import Any


def missing(v: Any) -> bool:
    """None, NaN or pandas' NA (anything that is not a finite or infinite number or text)."""
    if v is None:
        return True
    try:
        import pandas as pd

        if v is pd.NA or v is pd.NaT:
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(v, float) and math.isnan(v)


def sig(x: float, digits: int = 3, grouping: bool = False) -> str:
    """``x`` with ``digits`` significant digits, never in exponent notation (123, 12.3,
    1.23, 0.123). Integers of more digits than ``digits`` keep them (1234, not 1.23e+03;
    ``grouping``: with thousands separators, 1,234)."""
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - mag)
    out = f"{x:,.{decimals}f}" if grouping else f"{x:.{decimals}f}"
    # rounding may add a digit (9.996 -> "10.00"): drop the now superfluous decimal
    if decimals and len(out.replace("-", "").replace(".", "").replace(",", "").lstrip("0")) > digits:
        out = f"{x:,.{decimals - 1}f}" if grouping else f"{x:.{decimals - 1}f}"
    return out


def _scaled(x: float, units: list[tuple[float, str]], digits: int = 3) -> str:
    """``x`` in the largest unit of ``units`` ((factor, name), ascending) it reaches."""
    ax = abs(x)
    factor, name = units[0]
    for f, n in units:
        if ax >= f * 0.9995:  # 999.96 ms rounds to 1000 ms: show 1.00 s instead
            factor, name = f, n
    return f"{sig(x / factor, digits)}{name}"


def duration_ms(ms: Any) -> str:
    """A time in milliseconds as ns / µs / ms / s / min with 3 significant digits."""
    if missing(ms):
        return ""
    return _scaled(float(ms), [(1e-6, " ns"), (1e-3, " µs"), (1.0, " ms"), (1e3, " s"), (6e4, " min")])


def duration_s(s: Any) -> str:
    """A time in seconds (see :func:`duration_ms`)."""
    return "" if missing(s) else duration_ms(float(s) * 1e3)


def si(x: Any, unit: str = "", prefix: str | None = None, digits: int = 3) -> str:
    """``x`` with an SI prefix (k, M, G, T, P) and ``unit``: ``si(306173) == "306k"``,
    ``si(2.8e9, "FLOP/s") == "2.80 GFLOP/s"``. ``prefix`` forces one ("G": every value
    in GFLOP/s, so a column reads in one unit)."""
    if missing(x):
        return ""
    x = float(x)
    prefixes = [(1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T"), (1e15, "P")]
    sep = " " if unit else ""
    if prefix is not None:
        f = dict((p, f) for f, p in prefixes)[prefix]
        return f"{sig(x / f, digits)}{sep}{prefix}{unit}"
    if abs(x) < 1000:
        return f"{sig(x, digits)}{sep}{unit}"
    return _scaled(x, [(f, f"{sep}{p}{unit}" if unit else p) for f, p in prefixes], digits)


def count(x: Any) -> str:
    """A count of things (parameters, FLOPs): 26.1 K, 110 M, 1.56 B (B, not G, for
    billions: how model sizes are said)."""
    if missing(x):
        return ""
    x = float(x)
    if abs(x) < 1000:
        return f"{x:.0f}"
    return _scaled(x, [(1e3, " K"), (1e6, " M"), (1e9, " B"), (1e12, " T")])


def rate(x: Any) -> str:
    """A rate (samples/s, tokens/s) with k / M / G suffixes; its unit is in the header."""
    return si(x)


def percent(fraction: Any, digits: int = 3) -> str:
    """A fraction 0-1 as a percentage: 0.1234 -> "12.3%", 0.00042 -> "0.042%"."""
    if missing(fraction):
        return ""
    return f"{sig(float(fraction) * 100, digits)}%"


def pct(value: Any) -> str:
    """A value already in percent (``*_pct_*`` columns)."""
    return "" if missing(value) else f"{sig(float(value))}%"


def flops(tflops: Any, device: str | None = None) -> str:
    """Achieved FLOP/s given in TFLOP/s, in the unit that fits the device: TFLOP/s on an
    accelerator, GFLOP/s on a CPU (0.00284 TFLOP/s reads "2.84 GFLOP/s")."""
    if missing(tflops):
        return ""
    kind = (device or "").split(":")[0]
    return si(float(tflops) * 1e12, "FLOP/s", prefix="G" if kind in ("cpu", "") else "T")


def energy_j(j: Any) -> str:
    """Energy in joules as µJ / mJ / J / kJ / MJ."""
    if missing(j):
        return ""
    return _scaled(float(j), [(1e-6, " µJ"), (1e-3, " mJ"), (1.0, " J"), (1e3, " kJ"), (1e6, " MJ")])


def power_w(w: Any) -> str:
    """Power in watts as mW / W / kW."""
    if missing(w):
        return ""
    return _scaled(float(w), [(1e-3, " mW"), (1.0, " W"), (1e3, " kW")])


def nbytes(b: Any) -> str:
    """Bytes in binary units: 512 B, 1.50 KiB, 24.0 MiB, 80.0 GiB."""
    if missing(b):
        return ""
    b = float(b)
    if abs(b) < 1024:
        return f"{b:.0f} B"
    return _scaled(b, [(2.0**10, " KiB"), (2.0**20, " MiB"), (2.0**30, " GiB"), (2.0**40, " TiB")])


# ---- money, energy in kWh, carbon, long durations (hwbench procure): thousands grouped
def _grouped(x: Any, units: list[tuple[float, str]]) -> str:
    """``x`` in the largest unit of ``units`` it reaches, 3 significant digits, thousands
    grouped (``1,234 kWh``)."""
    if missing(x):
        return ""
    x = float(x)
    factor, name = units[0]
    for f, n in units:
        if abs(x) >= f * 0.9995:
            factor, name = f, n
    return f"{sig(x / factor, grouping=True)} {name}"


def usd(x: Any) -> str:
    """US dollars: $0.694, $56,064, $1.20M."""
    if missing(x):
        return ""
    x = float(x)
    return f"${sig(x / 1e6, grouping=True)}M" if abs(x) >= 1e6 else f"${sig(x, grouping=True)}"


def kwh(x: Any) -> str:
    """Energy given in kWh as Wh / kWh / MWh / GWh."""
    return "" if missing(x) else _grouped(float(x) * 1000, [(1, "Wh"), (1e3, "kWh"), (1e6, "MWh"), (1e9, "GWh")])


def grams(x: Any) -> str:
    """A mass given in grams (CO2e) as g / kg / t / kt."""
    return _grouped(x, [(1, "g"), (1e3, "kg"), (1e6, "t"), (1e9, "kt")])


def hours(x: Any) -> str:
    """A duration given in hours as h / days / years."""
    return _grouped(x, [(1, "h"), (24, "days"), (24 * 365, "years")])


def mhz(v: Any) -> str:
    """A clock in MHz as MHz or GHz."""
    if missing(v):
        return ""
    v = float(v)
    return f"{sig(v / 1e3)} GHz" if v >= 1000 else f"{sig(v)} MHz"


def plain(v: Any) -> str:
    """Anything else: integers as they are, floats with 3 significant digits, text as is."""
    if missing(v):
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else sig(v)
    try:
        import numpy as np

        if isinstance(v, np.floating):
            return plain(float(v))
        if isinstance(v, np.integer):
            return str(int(v))
    except ImportError:  # pragma: no cover
        pass
    return str(v)
