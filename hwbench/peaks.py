"""Peak dense throughput per precision, for MFU. A pure function of recorded facts
(device name, the environment stored in the results file), so a results file's peaks
are re-derived at load time and a better table or formula re-derives old files.

Accelerators: vendor datasheet figures for *dense* math (the sparse figures are twice
these and are not what a dense model can reach), TFLOP/s, in ``hwbench/data/peaks.csv``
(one row per device, form factor and precision, with ``source`` and ``date``: the date
the row was recorded from its source). A device name is matched *exactly* after
normalisation (:func:`normalise_name`) against :data:`NAMES`, never by substring:
"NVIDIA L40" is not an L4, "NVIDIA A10" not an A100, "NVIDIA GH200" not an H200.
Form factors differ in clocks and power, hence in peaks, so each has its own rows and
a name NVML reports for a form factor not in the table gets no peak.

CPUs: physical cores x max clock x fp32 SIMD lanes x FMA units x 2 FLOPs (one FMA =
multiply + add). Lanes from the CPU flags (AVX-512: 16, AVX2 + FMA: 8, NEON/ASIMD: 4);
two FMA units per core is assumed for AVX2 / AVX-512 server cores (Skylake-SP Gold and
Platinum onwards, Zen 2 onwards; some parts have one, so CPU MFU may be understated by
up to 2x there), and the ``source`` says so. bf16 has twice the fp32 peak only where
the CPU has AVX512_BF16; otherwise torch computes it in fp32 and the fp32 peak applies.
The clock is the *maximum* clock recorded in the environment; never the current clock,
which moves with load and power state.

An unknown device has no peak: MFU is left empty, never guessed, and ``reason`` says why.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

# The precisions a peak is given for. hwbench.precisions maps each case precision
# (amp_bf16, ...) to one of these.
PEAK_KEYS = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")

# Normalised device names (see normalise_name) as NVML or torch report them ->
# (device, variant) rows of peaks.csv. Listed one by one, so that a new name is a
# reviewed decision, not a substring accident.
NAMES: Mapping[str, tuple[str, str]] = {
    "h100": ("H100", "SXM5"),  # NVML: "NVIDIA H100 80GB HBM3" is the SXM5 board
    "h100 sxm5": ("H100", "SXM5"),
    "h100 sxm": ("H100", "SXM5"),
    "h100 pcie": ("H100", "PCIe"),  # "NVIDIA H100 PCIe"
    "h100 nvl": ("H100", "NVL"),  # "NVIDIA H100 NVL"
    "h200": ("H200", "SXM"),  # "NVIDIA H200"; the H200 NVL ("h200 nvl") has lower clocks: absent
    "h200 sxm": ("H200", "SXM"),
    "a100 sxm4": ("A100", "SXM4"),  # "NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-80GB"
    "a100 sxm": ("A100", "SXM4"),  # "NVIDIA A100-SXM-80GB" (HGX boards)
    "a100 pcie": ("A100", "PCIe"),  # "NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe"
    "l4": ("L4", "PCIe"),
    "l40": ("L40", "PCIe"),
    "l40s": ("L40S", "PCIe"),
    "mi300x": ("MI300X", "OAM"),  # "AMD Instinct MI300X"
}

# Words that name the vendor or brand, not the part.
_BRANDS = frozenset({"nvidia", "amd", "tesla", "instinct"})
# Memory size and type: "80gb", "141gb", "144g", "hbm3", "hbm3e", "gddr6".
_MEMORY = re.compile(r"^(\d+(\.\d+)?(gb|g|gib)|hbm\d*e?|gddr\d+x?)$")


def normalise_name(name: str) -> str:
    """A device name as the peak table keys it: lower case, split on spaces, "-", "_"
    and "/", without vendor / brand words and memory size or type tokens.
    "NVIDIA A100-SXM4-80GB" -> "a100 sxm4"; "NVIDIA H100 80GB HBM3" -> "h100"."""
    tokens = re.split(r"[\s\-_/]+", name.lower())
    return " ".join(t for t in tokens if t and t not in _BRANDS and not _MEMORY.match(t))


@dataclass(frozen=True)
class Peak:
    """The peak a case is compared against for MFU."""

    tflops: float | None  # dense peak for the precision, TFLOP/s; None when unknown
    source: str  # where it came from (a datasheet, or the CPU formula with its inputs); "" when unknown
    reason: str | None  # why tflops is None; None when known


@dataclass(frozen=True)
class TableRow:
    """One row of peaks.csv."""

    device: str
    variant: str
    precision: str
    dense_tflops: float  # TFLOP/s (TOP/s for int8), without sparsity
    source: str
    date: str  # ISO date the figure was recorded from its source


@lru_cache(maxsize=1)
def table() -> Mapping[tuple[str, str], Mapping[str, TableRow]]:
    """peaks.csv as (device, variant) -> precision -> row. Raises ValueError on a
    malformed table (a packaging bug, not a user error)."""
    text = resources.files("hwbench.data").joinpath("peaks.csv").read_text(encoding="utf-8")
    out: dict[tuple[str, str], dict[str, TableRow]] = {}
    for line, r in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        row = TableRow(r["device"], r["variant"], r["precision"], float(r["dense_tflops"]), r["source"], r["date"])
        if row.precision not in PEAK_KEYS or not row.dense_tflops > 0 or not row.source or not row.date:
            raise ValueError(f"peaks.csv line {line}: bad row {r}")
        per = out.setdefault((row.device, row.variant), {})
        if row.precision in per:
            raise ValueError(f"peaks.csv line {line}: {row.device} {row.variant} {row.precision} listed twice")
        per[row.precision] = row
    return out


def peak(
    device_kind: str,
    device_name: str,
    peak_key: str,
    *,
    cores: int | None = None,
    env: Mapping[str, Any] | None = None,
) -> Peak:
    """The dense peak of a device for ``peak_key`` (one of :data:`PEAK_KEYS`).

    ``device_kind`` is the torch device type ("cuda", "cpu", ...); ``device_name`` the
    model name (NVML's for NVIDIA GPUs). For CPUs, ``cores`` is the physical cores the
    case used (min(threads, physical cores); default: all physical cores in ``env``)
    and ``env`` the environment fingerprint (:func:`hwbench.env.fingerprint`) whose
    ``cpu_freq_max_mhz``, ``cpu_freq_max_source`` and ``cpu_flags`` feed the formula.
    """
    if peak_key not in PEAK_KEYS:
        raise ValueError(f"peak_key {peak_key!r} is not one of {', '.join(PEAK_KEYS)}")
    if device_kind == "cpu":
        return _cpu_peak(peak_key, cores, env or {})
    return _datasheet_peak(device_name, peak_key)


def _datasheet_peak(device_name: str, peak_key: str) -> Peak:
    key = NAMES.get(normalise_name(device_name))
    if key is None:
        return Peak(None, "", f"no datasheet peak for {device_name!r}")
    row = table()[key].get(peak_key)
    if row is None:
        return Peak(None, "", f"no {peak_key} peak for {device_name!r} ({key[0]} {key[1]}) in the datasheet table")
    return Peak(row.dense_tflops, f"datasheet: {row.source}, {key[0]} {key[1]} dense {peak_key} ({row.date})", None)


# fp32 SIMD lanes per vector instruction, widest first: (flags needed, lanes, named as).
_SIMD = ((("avx512f",), 16, "avx512f"), (("avx2", "fma"), 8, "avx2+fma"), (("asimd",), 4, "asimd"))


def _cpu_peak(peak_key: str, cores: int | None, env: Mapping[str, Any]) -> Peak:
    if peak_key not in ("fp32", "bf16"):
        return Peak(None, "", f"no {peak_key} peak for CPUs")
    if cores is None:
        cores = env.get("cpu_cores_physical")
    if not cores or cores < 1:
        return Peak(None, "", "number of physical CPU cores unknown; MFU left empty")
    mhz = env.get("cpu_freq_max_mhz")
    if not mhz or mhz <= 0:
        return Peak(None, "", "no max CPU clock known (cpu_freq_max_mhz not recorded: neither cpufreq's "
                              "cpuinfo_max_freq nor psutil.cpu_freq().max gave one); MFU left empty")
    flags = set(env.get("cpu_flags") or ())
    simd = next(((lanes, named) for need, lanes, named in _SIMD if all(f in flags for f in need)), None)
    if simd is None:
        return Peak(None, "", f"no fp32 SIMD width known from the CPU flags {sorted(flags)} "
                              "(avx512f, avx2+fma or asimd needed); MFU left empty")
    lanes, named = simd
    clock_src = env.get("cpu_freq_max_source") or "source not recorded"
    source = (f"cpu formula: {cores} cores x {mhz / 1e3:g} GHz max clock ({clock_src}) x {lanes} fp32 lanes "
              f"({named}) x 2 FMA units (assumed) x 2")
    tflops = cores * mhz * 1e6 * lanes * 2 * 2 / 1e12
    if peak_key == "bf16":
        if "avx512_bf16" in flags:
            tflops *= 2
            source += " x 2 bf16 per fp32 lane (avx512_bf16)"
        else:
            source += " (no avx512_bf16: bf16 is computed at the fp32 rate)"
        if "amx_bf16" in flags:
            # oneDNN uses AMX tiles for bf16 matmuls; their rate is not in the formula.
            source += "; amx_bf16 present but not counted, so MFU may exceed 1"
    return Peak(tflops, source, None)
