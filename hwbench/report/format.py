"""Numbers for humans: adaptive units, 3 significant digits, a unit with every figure.

Only the terminal (and markdown) renderers use these. Machine-readable outputs (CSV,
JSON, Parquet) keep raw numbers in columns whose names carry the unit (docs/architecture.md). Every
function takes a raw value in the unit its name says and returns a string; a missing
value (None, NaN, pandas NA) is the empty string.
"""

from __future__ import annotations

import math
from typing import Any, Callable


def missing(v: Any) -> bool:
    """None, NaN or pandas' NA (anything that is not a finite or infinite number or text)."""
    if v is None:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    try:
        import pandas as pd

        if v is pd.NA or v is pd.NaT:
            return True
    except ImportError:  # pragma: no cover
        pass
    return False


# beyond these magnitudes a plain figure would be dozens of digits long (a hand-made
# file's 1e300): exponent notation, the only case that uses it
PLAIN_RANGE = (1e-9, 1e15)


def sig(x: float, digits: int = 3, grouping: bool = False) -> str:
    """``x`` with ``digits`` significant digits, in exponent notation only outside
    :data:`PLAIN_RANGE` (123, 12.3, 1.23, 0.123; 1.23e+300). Integers of more digits
    than ``digits`` keep them (1234, not 1.23e+03; ``grouping``: with thousands
    separators, 1,234). Infinities read "inf" / "-inf", NaN the empty string: never
    raises (the row's flags say why a figure is infinite)."""
    if x == 0:
        return "0"
    if math.isnan(x):
        return ""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if not PLAIN_RANGE[0] <= abs(x) < PLAIN_RANGE[1]:
        return f"{x:.{max(digits - 1, 0)}e}"
    mag = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - mag)
    out = f"{x:,.{decimals}f}" if grouping else f"{x:.{decimals}f}"
    # rounding may add a digit (9.996 -> "10.00"): drop the now superfluous decimal
    if decimals and len(out.replace("-", "").replace(".", "").replace(",", "").lstrip("0")) > digits:
        out = f"{x:,.{decimals - 1}f}" if grouping else f"{x:.{decimals - 1}f}"
    return out


def _scaled(x: float, units: list[tuple[float, str]], digits: int = 3) -> str:
    """``x`` in the largest unit of ``units`` ((factor, name), ascending) it reaches."""
    if math.isinf(x):
        return sig(x)  # "inf": no unit to scale to
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
    if math.isinf(x):
        return sig(x)
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


def mfu(fraction: Any) -> str:
    """MFU as a percentage; above 1 (above the peak: hwbench.analysis.mfu's ``above_peak``
    flag) never as a plain figure: 1.23 -> "123% >peak"."""
    text = percent(fraction)
    return f"{text} >peak" if text and float(fraction) > 1 else text


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
    if math.isinf(x):
        return sig(x)
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
    if math.isinf(x):
        return sig(x)
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


# ------------------------------------------------------------------- columns
def _is_number(v: Any) -> bool:
    import numpy as np

    return isinstance(v, (int, float, np.number))


def _timestamp(v: Any):
    import pandas as pd

    return pd.Timestamp(v)


_RATIOS = ("speedup", "speedup_geomean", "speedup_min", "speedup_max", "energy_ratio", "energy_ratio_geomean",
           "throughput_ratio_ps_over_ddp", "comm_bytes_ratio_ps_over_ddp", "step_speedup_vs_none",
           "comm_compression_ratio", "input_headroom")
_PLAIN_3G = ("rel_l2_error", "max_abs_error", "rel_l2_error_max", "coefficient", "exponent_stderr", "r2", "exponent",
             "arithmetic_intensity", "param_rel_l2_vs_none")
_COUNTS = ("knee_batch_size", "best_batch_size", "batch_size", "n_cases", "n_points", "runs", "cases", "ok", "skipped",
           "not_ok", "iterations", "world_size", "global_batch_size", "param_rel_l2_steps")


def _per_strategy(name: str) -> str | None:
    """The column a per-strategy column of :func:`hwbench.analysis.scaling.ps_vs_allreduce`
    (``<column>_<strategy>``) is of; None for any other column. The strategies are the
    analysis's own list, so a new one needs no edit here."""
    from ..analysis.scaling import DATA_PARALLEL

    for s in DATA_PARALLEL:
        if name.endswith(f"_{s}") and len(name) > len(s) + 1:
            return name[: -len(s) - 1]
    return None


def column(name: str) -> Callable[[Any], str]:
    """Human formatting of a column -- of the results frame (from the unit in its name)
    or of an analysis frame (speed-ups, fits, curves) -- the one formatter of that
    column in every human output: terminal, markdown and HTML."""
    if name in _RATIOS:
        return lambda v: "" if missing(v) else f"{sig(float(v))}×"
    per_strategy = _per_strategy(name)
    if per_strategy:
        return column(per_strategy)
    if name in _PLAIN_3G:
        return lambda v: "" if missing(v) else (f"{float(v):.3g}" if _is_number(v) else str(v))
    if name in _COUNTS:
        return lambda v: "" if missing(v) else (str(int(v)) if _is_number(v) else str(v))
    if name in ("run_id", "scaling_baseline_run_id"):  # a run by its short id, as the run lists name it
        return lambda v: "" if missing(v) else str(v)[:8]
    if name.endswith(("_qps", "_rps", "_qps_at_slo")):  # serving: queries / requests per second
        return lambda v: "" if missing(v) else f"{sig(float(v))} /s"
    if name in ("at_knee", "on_front_2d", "on_front_3d"):
        return lambda v: "yes" if v is True or v == 1 else ""
    if name.endswith(("_first", "_last", "_best")):
        return column(name.rsplit("_", 1)[0])
    if name.startswith("baseline_"):
        return column(name[len("baseline_"):])
    if name in ("mfu", "mfu_achievable"):
        return mfu
    if name in ("capacity_over_fixed", "offline_over_fixed"):
        return lambda v: "" if missing(v) else f"{sig(float(v))}×"
    if name == "slo_met":
        return lambda v: "" if missing(v) else ("yes" if bool(v) else "no")
    if name in ("gain_per_doubling",) or name in ("latency_cv", "latency_iqr_rel", "flops_counted_vs_analytic", "scaling_efficiency",
                "comm_fraction"):
        return percent
    if name in ("checkpoint_save_gbs", "checkpoint_load_gbs"):
        return lambda v: "" if missing(v) else f"{sig(float(v))} GB/s"
    if name.startswith("checkpoint_") and name.endswith("_s_p50"):
        return duration_s
    if name == "loader_wait_fraction":
        return percent
    if name == "quality_flags":
        return lambda v: ",".join(v) if isinstance(v, (list, tuple)) else ""
    if name == "created":
        return lambda v: "" if missing(v) else _timestamp(v).strftime("%Y-%m-%d %H:%M")
    if name.endswith("bytes_per_s") or "bytes_per_s_" in name:  # not comm_bytes_per_step
        return lambda v: "" if missing(v) else nbytes(v) + "/s"
    if "_ms" in name:
        return duration_ms
    if "bytes" in name:
        return nbytes
    if name.endswith("_j") or "_j_" in name:
        return energy_j
    if name.endswith("_w") or "_w_" in name:
        return power_w
    if "_pct" in name:
        return pct
    if "mhz" in name:
        return mhz
    if "tflops" in name:
        return lambda v: si(None if missing(v) else float(v) * 1e12, "FLOP/s")
    if name.startswith("flops_per_sample"):
        return lambda v: si(v, "FLOP")
    if name.endswith("_per_s") or name.endswith("_per_s_per_rank"):
        return rate
    if name.endswith("_s") or name.endswith("_s_per_step"):
        return duration_s
    if name in ("params",):
        return count
    return plain
