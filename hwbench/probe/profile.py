"""Machine profile files: what ``hwbench probe`` measured, stored like a results file.

Where they live: ``results/profiles/<host>-<YYYYmmdd-HHMMSS>-<id>.json`` by default
(``hwbench probe --out DIR`` chooses the folder). A run looks for profiles in the
``profiles/`` folder beside its results file (so ``hwbench probe`` then ``hwbench run``
with the default ``results/`` find each other), and in ``$HWBENCH_PROFILE_DIR`` when set.
It takes the *latest matching* one: same host name, CPU model and GPU UUIDs
(:func:`hwbench.env.machine_id`, what a resume checks), newest ``created`` first.

Format history (``profile_version``; older files are read as they are, newer refused):

* 1 -- first version: ``environment`` (the fingerprint of :mod:`hwbench.env`), the
  ``settings`` of the probe, per device the GEMM searches (every shape tried, best and
  median), bandwidth kernels by size, host<->device copies, telemetry (clocks,
  temperature, throttle reasons) per phase, and ``roofs``: the summary a run stores on
  its segment (:class:`hwbench.records.MachineProfile`).

Files are written atomically (temporary file, fsync, rename), never partially.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..records import Count, Environment, Float, MachineProfile, Text

FORMAT = "hwbench-profile"
PROFILE_VERSION = 1
DEFAULT_DIR = Path("results") / "profiles"
ENV_DIR = "HWBENCH_PROFILE_DIR"
MAX_FILE_BYTES = 64 * 2**20  # a profile is kilobytes; anything this big is not one


class _Rec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, ser_json_inf_nan="null")


class GemmTrial(_Rec):
    """One shape of the search: ``A[m,k] @ B[k,n]``, 2*m*n*k FLOPs, seconds per call."""

    m: Count
    n: Count
    k: Count
    reps: Count
    median_s: Float
    best_s: Float
    tflops_median: Float
    tflops_best: Float


class GemmResult(_Rec):
    """The GEMM search of one dtype at one thread count on one device."""

    dtype: Text  # a peak key: fp32, tf32, fp16, bf16, fp8, int8
    threads: Count | None = None  # CPU intra-op threads; None on GPUs
    ok: bool
    reason: Text = ""  # why not measured (ok False), or a note on how
    shape: list[Count] | None = None  # the best shape [m, n, k] (by median)
    tflops_median: Float | None = None  # the best shape's median-time TFLOP/s (TOP/s for int8): the figure used
    tflops_best: Float | None = None  # the best shape's fastest call
    datasheet_tflops: Float | None = None
    datasheet_source: Text = ""
    datasheet_fraction: Float | None = None  # tflops_median / datasheet_tflops
    trials: list[GemmTrial] = []
    skipped_shapes: list[Text] = []


class Warmup(_Rec):
    """Warming up to steady clocks before the GEMM search."""

    duration_s: Float
    steady: bool  # the last three windows agreed within the tolerance
    window_tflops: list[Float] = []


class BandwidthResult(_Rec):
    """One memory kernel at one buffer size. Bytes count every byte read and written."""

    kernel: Text  # copy, read, write, triad
    buffer_bytes: Count  # one buffer
    bytes_per_call: Count  # read + written per call
    median_s: Float
    best_s: Float
    gbs_median: Float  # 1e9 bytes / s
    gbs_best: Float
    beyond_cache: bool  # every buffer alone is at least 2x the last cache level


class TransferResult(_Rec):
    """A host<->device copy: each byte crosses the link once."""

    direction: Text  # h2d, d2h
    memory: Text  # pinned, pageable
    size_bytes: Count
    median_s: Float
    gbs_median: Float


class PhaseTelemetry(_Rec):
    """Readings while one phase of the probe ran: statistic -> value (units in the keys)."""

    phase: Text
    duration_s: Float
    summary: dict[str, Float] = {}
    throttle: list[Text] = []  # throttle reasons seen at least once


class DeviceProbe(_Rec):
    """Everything measured on one device."""

    device: Text  # torch's name: cpu, cuda:0
    device_name: Text | None = None
    cache_bytes: Count | None = None  # the last cache level flushed between GEMM calls
    warmup: Warmup | None = None
    gemm: list[GemmResult] = []
    memory: list[BandwidthResult] = []
    memory_note: Text = ""
    host_memory: list[BandwidthResult] = []
    host_device: list[TransferResult] = []
    host_device_note: Text = ""  # "not applicable: ..." on a CPU
    telemetry: list[PhaseTelemetry] = []
    telemetry_note: Text = ""
    duration_s: Float | None = None


class ProfileFile(_Rec):
    """One ``hwbench probe``: a file of its own."""

    format: str = FORMAT
    profile_version: int = PROFILE_VERSION
    profile_id: Text
    created: Text
    finished: Text | None = None
    environment: Environment
    settings: dict[str, Any] = {}
    devices: dict[str, DeviceProbe] = {}
    roofs: MachineProfile


# ------------------------------------------------------------------ files
def default_path(out_dir: str | Path, hostname: str, created_compact: str, profile_id: str) -> Path:
    host = re.sub(r"[^A-Za-z0-9._-]", "_", hostname)[:80] or "host"
    return Path(out_dir) / f"{host}-{created_compact}-{profile_id[:8]}.json"


def write_atomic(path: str | Path, profile: ProfileFile) -> None:
    """``path`` holds the old file or the new complete one, never a part (the results
    files' atomic writer: temporary file, fsync, rename)."""
    from ..results import write_atomic as _write

    _write(path, profile)


class ProfileError(ValueError):
    """A file that is not a readable profile of this hwbench."""


def read_profile(path: str | Path) -> ProfileFile:
    """Parse and validate a profile file. Raises ProfileError (one line) otherwise."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ProfileError(f"{path}: too large for a profile file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProfileError(f"{path}: cannot read: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ProfileError(f"{path}: not an hwbench profile file")
    v = data.get("profile_version")
    if not isinstance(v, int) or v > PROFILE_VERSION:
        raise ProfileError(f"{path}: profile_version {v!r}; this hwbench reads up to {PROFILE_VERSION}")
    try:
        return ProfileFile.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ProfileError(f"{path}: {where}: {err['msg']}") from None


def _machine(env: dict[str, Any]) -> tuple:
    from ..env import machine_id

    # both sides through the record, so a key absent in one and null in the other agree
    return machine_id(Environment.model_validate(env).model_dump())


def find_latest(dirs: Iterable[str | Path], environment: dict[str, Any]) -> MachineProfile | None:
    """The roofs of the newest profile in ``dirs`` measured on this machine (same host,
    CPU model and GPU UUIDs as ``environment``), with ``path`` set; None if there is
    none. Files that are not valid profiles are passed over."""
    want = _machine(environment)
    best: tuple[str, Path, ProfileFile] | None = None
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.json")):
            try:
                prof = read_profile(p)
            except ProfileError:
                continue
            if _machine(prof.environment.model_dump()) != want:
                continue
            if best is None or prof.created > best[0]:
                best = (prof.created, p, prof)
    if best is None:
        return None
    return best[2].roofs.model_copy(update={"path": str(best[1])})


def search_dirs(results_path: str | Path | None = None) -> list[Path]:
    """Where a run looks for profiles: ``$HWBENCH_PROFILE_DIR``, then ``profiles/``
    beside the results file (or ``results/profiles``)."""
    out = []
    if os.environ.get(ENV_DIR):
        out.append(Path(os.environ[ENV_DIR]))
    out.append(Path(results_path).parent / "profiles" if results_path is not None else DEFAULT_DIR)
    return out


def find_for_run(results_path: str | Path, environment: dict[str, Any]) -> MachineProfile | None:
    """The profile a run writing ``results_path`` on the machine ``environment`` uses.
    Never raises for a bad profile file: a run does not fail for want of a profile."""
    try:
        return find_latest(search_dirs(results_path), environment)
    except OSError:
        return None
