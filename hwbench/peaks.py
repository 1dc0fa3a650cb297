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

A row may carry a ``confidence`` ("high" when empty; "medium" / "low" where the figure is
derived or not from the vendor's own datasheet, with a ``note`` saying how) and a ``url``.

CPUs: physical cores x clock x FLOP per cycle per core from the microarchitecture table
(:mod:`hwbench.cpu_uarch`, ``hwbench/data/cpu_uarch.csv``: FMA units x datapath width per
ISA, matched by the CPU identity recorded in the environment). fp32: the widest ISA the
CPU flags show; bf16: Intel AMX where present, else 2x fp32 with AVX512_BF16, else the
fp32 rate (torch computes bf16 in fp32 there); int8: AMX only. The clock is the
*all-core* clock where the environment records one (``cpu_freq_all_core_mhz``), else the
*maximum* clock, and the source says which (the max may be a single-core boost: the peak
is then high and MFU low); never the current clock, which moves with load and power
state. A CPU the table does not know falls back to fp32 SIMD lanes from the CPU flags
(AVX-512: 16, AVX2 + FMA: 8, NEON/ASIMD: 4) x 2 FMA units x 2, marked a guess
(``confidence`` "guess").

An unknown accelerator has no peak: MFU is left empty, never guessed, and ``reason`` says why.
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
    "b200": ("B200", "SXM"),  # "NVIDIA B200" (HGX B200 board)
    "gb200": ("GB200", "Superchip"),  # "NVIDIA GB200": one Blackwell GPU of a GB200 superchip
    "h20": ("H20", "SXM"),  # "NVIDIA H20"
    "rtx pro 6000 blackwell workstation edition": ("RTX PRO 6000 Blackwell", "Workstation"),
    "mi325x": ("MI325X", "OAM"),  # "AMD Instinct MI325X"
    "mi355x": ("MI355X", "OAM"),  # "AMD Instinct MI355X"
    "gaudi3": ("Gaudi 3", "OAM"),  # torch.hpu.get_device_name(): "GAUDI3"
    "gaudi 3": ("Gaudi 3", "OAM"),
    "hl 325l": ("Gaudi 3", "OAM"),  # hl-smi's product name of the OAM module
    "tpu v5 lite": ("TPU v5e", "chip"),  # the XLA device kind of a v5e
    "tpu v5e": ("TPU v5e", "chip"),
    "tpu v5": ("TPU v5p", "chip"),  # the XLA device kind of a v5p
    "tpu v5p": ("TPU v5p", "chip"),
    "tpu v6 lite": ("TPU v6e", "chip"),  # the XLA device kind of a v6e (Trillium)
    "tpu v6e": ("TPU v6e", "chip"),
}

# Words that name the vendor or brand, not the part.
_BRANDS = frozenset({"nvidia", "amd", "tesla", "instinct", "intel", "habana", "google"})
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
    # how sure the figure is: "high"; "medium" / "low" (a row marked so); "guess" (a CPU
    # the microarchitecture table does not know: the old lanes x 2 FMA formula)
    confidence: str = "high"


@dataclass(frozen=True)
class TableRow:
    """One row of peaks.csv."""

    device: str
    variant: str
    precision: str
    dense_tflops: float  # TFLOP/s (TOP/s for int8), without sparsity
    source: str
    date: str  # ISO date the figure was recorded from its source
    confidence: str = "high"  # high / medium / low
    note: str = ""  # why a figure is less sure, how it was derived
    url: str = ""  # where the source can be read


_CONFIDENCE = ("high", "medium", "low")


@lru_cache(maxsize=1)
def table() -> Mapping[tuple[str, str], Mapping[str, TableRow]]:
    """peaks.csv as (device, variant) -> precision -> row. Raises ValueError on a
    malformed table (a packaging bug, not a user error)."""
    text = resources.files("hwbench.data").joinpath("peaks.csv").read_text(encoding="utf-8")
    out: dict[tuple[str, str], dict[str, TableRow]] = {}
    for line, r in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        row = TableRow(r["device"], r["variant"], r["precision"], float(r["dense_tflops"]), r["source"], r["date"],
                       r.get("confidence") or "high", r.get("note") or "", r.get("url") or "")
        if (row.precision not in PEAK_KEYS or not row.dense_tflops > 0 or not row.source or not row.date
                or row.confidence not in _CONFIDENCE):
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
    source = f"datasheet: {row.source}, {key[0]} {key[1]} dense {peak_key} ({row.date})"
    if row.confidence != "high":
        source += f"; {row.confidence} confidence" + (f": {row.note}" if row.note else "")
    return Peak(row.dense_tflops, source, None, row.confidence)


# fp32 SIMD lanes per vector instruction, widest first: (flags needed, lanes, named as).
# Only for a CPU the microarchitecture table does not know (the fallback guess).
_SIMD = ((("avx512f",), 16, "avx512f"), (("avx2", "fma"), 8, "avx2+fma"), (("asimd",), 4, "asimd"))


def _cpu_clock(env: Mapping[str, Any]) -> tuple[float | None, str]:
    """(MHz, how it is named in the source) of the clock a CPU peak uses: the all-core
    clock where the environment records one (``cpu_freq_all_core_mhz``), else the max
    clock, said to be one; (None, why) where neither is known."""
    all_core = env.get("cpu_freq_all_core_mhz")
    if all_core and all_core > 0:
        src = env.get("cpu_freq_all_core_source") or "source not recorded"
        return all_core, f"{all_core / 1e3:g} GHz all-core clock ({src})"
    mhz = env.get("cpu_freq_max_mhz")
    if not mhz or mhz <= 0:
        return None, ("no max CPU clock known (cpu_freq_max_mhz not recorded: neither cpufreq's "
                      "cpuinfo_max_freq nor psutil.cpu_freq().max gave one); MFU left empty")
    src = env.get("cpu_freq_max_source") or "source not recorded"
    return mhz, f"{mhz / 1e3:g} GHz max clock ({src}; all-core clock not known, the max may be a single-core boost)"


def _cpu_peak(peak_key: str, cores: int | None, env: Mapping[str, Any]) -> Peak:
    if peak_key not in ("fp32", "bf16", "int8"):
        return Peak(None, "", f"no {peak_key} peak for CPUs")
    if cores is None:
        cores = env.get("cpu_cores_physical")
    if not cores or cores < 1:
        return Peak(None, "", "number of physical CPU cores unknown; MFU left empty")
    mhz, clock = _cpu_clock(env)
    if mhz is None:
        return Peak(None, "", clock)
    from . import cpu_uarch

    u, how = cpu_uarch.match(env)
    if u is None:
        return _cpu_guess(peak_key, cores, mhz, clock, env, how)
    flags = set(env.get("cpu_flags") or ())
    isa = cpu_uarch.usable_isa(u, flags) if flags else u.widest_isa
    if isa is None:
        return Peak(None, "", f"{u.name}: none of its ISAs ({', '.join(u.fma)}) shows in the CPU flags "
                              f"{sorted(flags)}; MFU left empty")
    pipes = u.fma[isa]
    per_cycle, what = pipes.fp32_flops_per_cycle, f"fp32 FLOP/cycle ({isa} {pipes.units}x{pipes.bits}-bit FMA)"
    # a hybrid Arm chip (several CPU parts) counts every core at the matched core's rate
    confidence, notes = ("medium" if "hybrid" in how and u.confidence == "high" else u.confidence), []
    if not flags:
        notes.append(f"CPU flags not recorded: {isa} assumed")
    if isa == "avx512" and cpu_uarch.one_fma_unit(u, env.get("cpu_model") or ""):
        per_cycle //= 2
        what = "fp32 FLOP/cycle (avx512, one 512-bit FMA unit on this SKU)"
    if peak_key == "int8":
        if not (u.amx_int8_ops_per_cycle and "amx_int8" in flags):
            return Peak(None, "", "no int8 peak for CPUs without AMX int8 (vector int8 rates are not tabled)")
        per_cycle, what = u.amx_int8_ops_per_cycle, "int8 op/cycle (AMX)"
    elif peak_key == "bf16":
        if u.amx_bf16_flops_per_cycle and "amx_bf16" in flags:
            per_cycle, what = u.amx_bf16_flops_per_cycle, "bf16 FLOP/cycle (AMX)"
        elif "avx512_bf16" in flags and isa == "avx512":
            per_cycle, what = per_cycle * 2, what.replace("fp32", "bf16") + " (avx512_bf16: 2x the fp32 rate)"
        else:
            notes.append("no bf16 dot-product or matrix unit counted: bf16 at the fp32 rate")
    source = (f"cpu table: {u.name} ({how}; {confidence} confidence): {cores} cores x {clock} x "
              f"{per_cycle} {what}")
    if notes:
        source += "; " + "; ".join(notes)
    return Peak(cores * mhz * 1e6 * per_cycle / 1e12, source, None, confidence)


def _cpu_guess(peak_key: str, cores: int, mhz: float, clock: str, env: Mapping[str, Any], why: str) -> Peak:
    """The fallback for a CPU the table does not know: lanes from the CPU flags x 2 FMA
    units (assumed) x 2. Marked a guess: the FMA units and datapath width are unknown."""
    if peak_key == "int8":
        return Peak(None, "", "no int8 peak for CPUs without AMX int8 (vector int8 rates are not tabled)")
    flags = set(env.get("cpu_flags") or ())
    simd = next(((lanes, named) for need, lanes, named in _SIMD if all(f in flags for f in need)), None)
    if simd is None:
        return Peak(None, "", f"no fp32 SIMD width known from the CPU flags {sorted(flags)} "
                              "(avx512f, avx2+fma or asimd needed) and the CPU is not in the microarchitecture "
                              f"table ({why}); MFU left empty")
    lanes, named = simd
    source = (f"cpu formula (guess: {why}): {cores} cores x {clock} x {lanes} fp32 lanes "
              f"({named}) x 2 FMA units (assumed) x 2")
    tflops = cores * mhz * 1e6 * lanes * 2 * 2 / 1e12
    if peak_key == "bf16":
        if "avx512_bf16" in flags:
            tflops *= 2
            source += " x 2 bf16 per fp32 lane (avx512_bf16)"
        else:
            source += " (no avx512_bf16: bf16 is computed at the fp32 rate)"
        if "amx_bf16" in flags:
            source += "; amx_bf16 present but not counted, so MFU may exceed 1"
    return Peak(tflops, source, None, "guess")
