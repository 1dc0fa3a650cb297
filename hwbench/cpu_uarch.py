"""CPU microarchitectures: which core a CPU has and how many FLOP it can do per cycle.

``hwbench/data/cpu_uarch.csv`` has one row per microarchitecture, keyed by what
``/proc/cpuinfo`` says: ``vendor_id`` + ``cpu family`` + ``model`` (+ ``stepping`` where
one model number covers several cores, as Skylake-SP / Cascade Lake / Cooper Lake share
model 85) on x86, ``CPU implementer`` + ``CPU part`` on Arm, and a pattern over the CPU
name where neither is known (macOS names the chip "Apple M2 Pro" and has no cpuinfo).
Each row gives its FMA pipes per ISA, e.g. ``avx2:2x256 avx512:2x256`` (Zen 4: two
256-bit FMA pipes; a 512-bit op runs as two halves), from which

    fp32 FLOP/cycle/core = FMA units x datapath bits / 32 x 2 (an FMA is a multiply and an add)
    fp64 FLOP/cycle/core = FMA units x datapath bits / 64 x 2

and, where the core has Intel AMX, its bf16 FLOP and int8 op rates per cycle per core.
Every row names its source (the vendor's optimisation guide), a date and a confidence.

The widest ISA a CPU may use is the widest of its row's ISAs whose flags the recorded
environment shows (``avx512f``; ``avx2`` + ``fma``; ``sve``; ``asimd`` = NEON), so a VM
that hides AVX-512 gets the AVX2 rate. Some Skylake-SP / Cascade Lake Xeons (Bronze,
Silver, most Gold 5xxx) have one AVX-512 FMA unit instead of two; a row's
``one_fma_pattern`` finds them by their model name and halves the AVX-512 rate. On later
Xeons the count per SKU is not verified and the row's note says so.

Pure functions of recorded text and facts, except :func:`read_identity`, which reads
``/proc/cpuinfo`` once when the environment is fingerprinted.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

# ISA -> the CPU flags it needs (as /proc/cpuinfo names them; hwbench.devices.host
# records these in the environment's cpu_flags).
ISA_FLAGS: Mapping[str, tuple[str, ...]] = {
    "avx512": ("avx512f",), "avx2": ("avx2", "fma"), "sve": ("sve",), "neon": ("asimd",),
}
CPUINFO = "/proc/cpuinfo"
# The environment keys this module records and reads (docs/measuring.md).
IDENTITY_KEYS = ("cpu_vendor_id", "cpu_family", "cpu_model_id", "cpu_stepping", "cpu_implementer", "cpu_part")


@dataclass(frozen=True)
class Pipes:
    """The FMA pipes one ISA uses: how many, how wide (bits)."""

    units: int
    bits: int

    @property
    def fp32_flops_per_cycle(self) -> int:
        return self.units * self.bits // 32 * 2

    @property
    def fp64_flops_per_cycle(self) -> int:
        return self.units * self.bits // 64 * 2


@dataclass(frozen=True)
class Uarch:
    """One row of cpu_uarch.csv."""

    name: str
    vendor: str  # x86 vendor_id ("GenuineIntel", "AuthenticAMD"); "" on Arm
    x86_family: int | None
    x86_models: frozenset[int]
    x86_steppings: frozenset[int]  # empty: any stepping
    arm_implementer: str | None  # "0x41" (Arm), "0x61" (Apple)
    arm_parts: frozenset[str]  # empty: any part of the implementer
    name_pattern: str  # regex over the CPU name, where no cpuinfo identity is recorded
    fma: Mapping[str, Pipes]  # ISA -> its FMA pipes
    amx_bf16_flops_per_cycle: int | None
    amx_int8_ops_per_cycle: int | None
    one_fma_pattern: str  # regex over the CPU name: SKUs with one AVX-512 FMA unit
    source: str
    date: str
    confidence: str  # high / medium / low
    note: str

    @property
    def widest_isa(self) -> str:
        return max(self.fma, key=lambda isa: (self.fma[isa].fp32_flops_per_cycle, isa in ("avx512", "sve")))

    @property
    def fp32_flops_per_cycle(self) -> int:
        """fp32 FLOP per cycle per core with the widest ISA (two-FMA-unit SKUs)."""
        return self.fma[self.widest_isa].fp32_flops_per_cycle

    @property
    def fp64_flops_per_cycle(self) -> int:
        return self.fma[self.widest_isa].fp64_flops_per_cycle


def _ints(text: str) -> frozenset[int]:
    return frozenset(int(t) for t in text.split())


def parse_fma(text: str) -> dict[str, Pipes]:
    """``"avx2:2x256 avx512:2x256"`` -> {"avx2": Pipes(2, 256), "avx512": Pipes(2, 256)}."""
    out: dict[str, Pipes] = {}
    for item in text.split():
        m = re.fullmatch(r"(\w+):(\d+)x(\d+)", item)
        if not m or m[1] not in ISA_FLAGS or m[3] not in ("128", "256", "512"):
            raise ValueError(f"bad FMA pipes {item!r} (want isa:UNITSxBITS, isa one of {', '.join(ISA_FLAGS)})")
        out[m[1]] = Pipes(int(m[2]), int(m[3]))
    if not out:
        raise ValueError("no FMA pipes")
    return out


@lru_cache(maxsize=1)
def table() -> tuple[Uarch, ...]:
    """cpu_uarch.csv as rows. Raises ValueError on a malformed table (a packaging bug)."""
    text = resources.files("hwbench.data").joinpath("cpu_uarch.csv").read_text(encoding="utf-8")
    rows = []
    for line, r in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        try:
            u = Uarch(
                r["uarch"], r["vendor"], int(r["x86_family"]) if r["x86_family"] else None, _ints(r["x86_models"]),
                _ints(r["x86_steppings"]), r["arm_implementer"].lower() or None,
                frozenset(p.lower() for p in r["arm_parts"].split()), r["name_pattern"], parse_fma(r["fma"]),
                int(r["amx_bf16_flops_per_cycle"]) if r["amx_bf16_flops_per_cycle"] else None,
                int(r["amx_int8_ops_per_cycle"]) if r["amx_int8_ops_per_cycle"] else None,
                r["one_fma_pattern"], r["source"], r["date"], r["confidence"], r["note"])
        except (ValueError, TypeError) as e:
            raise ValueError(f"cpu_uarch.csv line {line}: {e}") from e
        keyed = (u.vendor and u.x86_family is not None and u.x86_models) or u.arm_implementer or u.name_pattern
        if not keyed or not u.source or len(u.date) != 10 or u.confidence not in ("high", "medium", "low"):
            raise ValueError(f"cpu_uarch.csv line {line}: bad row {r}")
        rows.append(u)
    return tuple(rows)


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """The identity facts of ``/proc/cpuinfo`` text (keys :data:`IDENTITY_KEYS`, absent
    where the text has none): the first processor's vendor / family / model / stepping
    (x86, as ints), and the implementer and the distinct CPU parts of every processor
    (Arm, as lower-case hex strings; a hybrid chip lists several parts, comma-joined)."""
    out: dict[str, Any] = {}
    parts: list[str] = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "cpu part":
            if value.lower() not in parts:
                parts.append(value.lower())
            continue
        name = {"vendor_id": "cpu_vendor_id", "cpu family": "cpu_family", "model": "cpu_model_id",
                "stepping": "cpu_stepping", "cpu implementer": "cpu_implementer"}.get(key)
        if name is None or name in out:
            continue
        if name in ("cpu_family", "cpu_model_id", "cpu_stepping"):
            if not value.isdigit():
                continue
            out[name] = int(value)
        else:
            out[name] = value.lower() if name == "cpu_implementer" else value
    if parts:
        out["cpu_part"] = ",".join(parts)
    return out


def read_identity(path: str = CPUINFO) -> dict[str, Any]:
    """:func:`parse_cpuinfo` of this machine's ``/proc/cpuinfo``; {} where there is none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_cpuinfo(f.read())
    except OSError:
        return {}


def _hex(value: Any) -> str | None:
    try:
        return hex(int(str(value), 16))
    except ValueError:
        return None


def match(env: Mapping[str, Any]) -> tuple[Uarch | None, str]:
    """The row for the CPU an environment describes, and how it was matched (or why
    none was): x86 vendor + family + model (+ stepping), else Arm implementer + part,
    else the CPU name against the rows' name patterns."""
    vendor, family, model = env.get("cpu_vendor_id"), env.get("cpu_family"), env.get("cpu_model_id")
    stepping = env.get("cpu_stepping")
    if vendor and family is not None and model is not None:
        for u in table():
            if (u.vendor == vendor and u.x86_family == family and model in u.x86_models
                    and (not u.x86_steppings or stepping in u.x86_steppings)):
                return u, f"{vendor} family {family} model {model}" + (
                    f" stepping {stepping}" if u.x86_steppings else "")
        return None, f"{vendor} family {family} model {model} stepping {stepping} is not in the table"
    impl = _hex(env.get("cpu_implementer")) if env.get("cpu_implementer") else None
    parts = [p for p in (_hex(x) for x in str(env.get("cpu_part") or "").split(",") if x) if p]
    if impl:
        for part in parts or [None]:
            for u in table():
                if u.arm_implementer and _hex(u.arm_implementer) == impl and (
                        not u.arm_parts or part in {_hex(p) for p in u.arm_parts}):
                    hybrid = f" (hybrid: parts {','.join(parts)}; every core counted as this one)" \
                        if len(parts) > 1 else ""
                    return u, f"CPU implementer {impl} part {part}{hybrid}"
    name = env.get("cpu_model") or ""
    for u in table():
        if u.name_pattern and re.search(u.name_pattern, name):
            return u, f"CPU name {name!r}"
    if impl:
        return None, f"CPU implementer {impl} part {','.join(parts) or '?'} is not in the table"
    return None, "no CPU identity recorded (vendor / family / model or implementer / part) and the name matches no row"


def one_fma_unit(u: Uarch, cpu_name: str) -> bool:
    """True where the row says SKUs with this name have one AVX-512 FMA unit per core."""
    return bool(u.one_fma_pattern and re.search(u.one_fma_pattern, cpu_name or ""))


def usable_isa(u: Uarch, flags: set[str]) -> str | None:
    """The widest of the row's ISAs whose flags are all in ``flags``; None where none is."""
    ok = [isa for isa in u.fma if all(f in flags for f in ISA_FLAGS[isa])]
    return max(ok, key=lambda isa: (u.fma[isa].fp32_flops_per_cycle, isa in ("avx512", "sve"))) if ok else None


def listing() -> list[dict[str, Any]]:
    """The table as plain rows for ``hwbench list peaks``: per microarchitecture its
    widest ISA's fp32 / fp64 FLOP per cycle per core, AMX rates, pipes and source."""
    out = []
    for u in table():
        out.append({
            "uarch": u.name, "isa": u.widest_isa,
            "fma": " ".join(f"{isa}:{p.units}x{p.bits}" for isa, p in u.fma.items()),
            "fp32_flops_per_cycle": u.fp32_flops_per_cycle, "fp64_flops_per_cycle": u.fp64_flops_per_cycle,
            "amx_bf16_flops_per_cycle": u.amx_bf16_flops_per_cycle,
            "amx_int8_ops_per_cycle": u.amx_int8_ops_per_cycle,
            "match": _key_text(u), "source": u.source, "date": u.date, "confidence": u.confidence,
            "note": u.note,
        })
    return out


def _key_text(u: Uarch) -> str:
    if u.vendor:
        step = f" stepping {' '.join(map(str, sorted(u.x86_steppings)))}" if u.x86_steppings else ""
        return f"{u.vendor} family {u.x86_family} model {' '.join(map(str, sorted(u.x86_models)))}{step}"
    key = f"implementer {u.arm_implementer}" + (f" part {' '.join(sorted(u.arm_parts))}" if u.arm_parts else "")
    return key + (f" or name /{u.name_pattern}/" if u.name_pattern else "")


ALL_CORE_ENV = "HWBENCH_CPU_ALL_CORE_MHZ"


def declared_all_core_clock(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The all-core clock the user declared in ``HWBENCH_CPU_ALL_CORE_MHZ`` (MHz, e.g.
    the vendor's all-core boost for this SKU: the OS does not expose it), as the
    environment keys ``cpu_freq_all_core_mhz`` / ``cpu_freq_all_core_source``; {} where
    unset. Raises UserError on a value that is not a positive number."""
    import os

    from .errors import UserError

    raw = (os.environ if environ is None else environ).get(ALL_CORE_ENV, "").strip()
    if not raw:
        return {}
    try:
        mhz = float(raw)
    except ValueError:
        mhz = 0.0
    if not mhz > 0:
        raise UserError(f"{ALL_CORE_ENV}={raw!r}: want the all-core clock in MHz, a positive number (e.g. 3100)")
    return {"cpu_freq_all_core_mhz": mhz, "cpu_freq_all_core_source": f"{ALL_CORE_ENV} (declared)"}
