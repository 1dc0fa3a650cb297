"""Results files: atomic writing, locking, reading with validation and upgrades.

A results file is a :class:`hwbench.records.RunRecord` as JSON (the schema history is in
docs/schema-history.md). Reading never trusts the file: it is parsed, upgraded from older
schema versions and validated into typed records; anything that does not fit is a
one-line :class:`ResultsError` naming the file and the field, and a file that failed
validation is never written to.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic import BaseModel, ValidationError

from .errors import ResultsError
from .records import FORMAT, SCHEMA_VERSION, RunRecord


# the one atomic writer lives in hwbench.writable (a leaf: the journal uses it too)
from .writable import _umask, write_atomic, write_text_atomic  # noqa: E402,F401


# ---------------------------------------------------------------------- locking
@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on results file ``path`` while a run or resume writes it.
    The lock is ``flock`` on a hidden sidecar (``.NAME.lock``; the results file itself
    is replaced by every atomic write, so it cannot carry the lock). The kernel releases
    it when the process dies, so a killed run never leaves a stale lock."""
    import fcntl

    path = Path(path)
    lock = path.parent / f".{path.name}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    except OSError as e:
        raise ResultsError(f"{path}: cannot write the results file: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                raise
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise ResultsError(
                f"{path}: another hwbench run (pid {holder}) is writing this results file; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


# ---------------------------------------------------------------------- upgrades
def _v1_to_v2(rec: dict[str, Any]) -> dict[str, Any]:
    rec.setdefault("collectors", {})
    rec.setdefault("idle_baseline", {})
    for c in rec["cases"]:
        c.setdefault("device_resolved", None)
        c.setdefault("collectors", {})
        c.setdefault("energy", {})
        c.setdefault("flags", [])
    rec["schema_version"] = 2
    return rec


# Facts a schema-2 worker stored in ``metrics`` (the rest were statistics, re-derived).
_V2_CHANGES = ("pruned_layers", "sparse24_layers", "dense_layers_left", "fp8_layers", "bf16_layers_left")
# Statistics of schema <= 2 that cannot be recomputed: their raw data was never stored.
_V2_LEGACY = ("ttft_ms_p50", "ttft_ms_p90", "tpot_ms_p50")


def _v2_case(c: dict[str, Any]) -> dict[str, Any]:
    m = c.get("metrics") or {}
    out: dict[str, Any] = {
        "case_id": c["case_id"],
        "case": c["case"],
        "segment": 0,
        "status": c["status"],
        "reason": c.get("reason") or "",
        "device_name": c.get("device_name"),
        "device_resolved": c.get("device_resolved"),
        "timing": {k: v for k, v in (c.get("timing") or {}).items()},
        "collectors": c.get("collectors") or {},
        # "noisy" is derived at load now; the others were recorded by collectors
        "flags": [f for f in c.get("flags") or [] if isinstance(f, dict) and f.get("flag") != "noisy"],
    }
    raw = c.get("raw_times_ms") or []
    if c["status"] == "ok" and raw:
        raw_s = [[t / 1e3 for t in r] for r in raw]
        legacy = {k: m[k] for k in _V2_LEGACY if m.get(k) is not None}
        out["measurement"] = {
            "raw_times_s": raw_s,
            "first_iter_s": (m.get("first_iter_ms") or 0.0) / 1e3,
            "warmup_s": m.get("warmup_s") or 0.0,
            "measured_s": m.get("measured_s") or sum(sum(r) for r in raw_s),
            **({"legacy_summary": legacy} if legacy else {}),
        }
        counted = m.get("flops_per_sample_counted")
        facts: dict[str, Any] = {
            "params": m.get("params") or 0,
            "flops_per_sample": m.get("flops_per_sample") or 0.0,
            "threads_used": m.get("threads"),
            "changes": {k: m[k] for k in _V2_CHANGES if isinstance(m.get(k), int)},
            "memory_peak_bytes": m.get("memory_peak_bytes"),
            "memory_reserved_peak_bytes": m.get("memory_reserved_peak_bytes"),
            "host_rss_peak_bytes": m.get("host_rss_peak_bytes"),
        }
        if counted:
            facts["flops_per_sample_counted"] = counted
        elif "flops_per_sample_counted" in m:
            # schema 2 stored 0 where the counter could not see quantised layers
            facts["flops_counted_reason"] = "not counted: torch.utils.flop_counter does not see this model's layers (schema 2 stored 0)"
        if m.get("accuracy_model") is not None:
            facts["accuracy"] = {
                "max_abs_error": m.get("max_abs_error"),
                "rel_l2_error": m.get("rel_l2_error"),
                "accuracy_model": m["accuracy_model"],
            }
        out["facts"] = facts
    e = c.get("energy") or {}
    if e.get("energy_j") is not None and e.get("energy_source"):
        out["energy"] = {k: e[k] for k in ("energy_j", "energy_source", "energy_window_s", "idle_power_w",
                                           "energy_j_power_integrated") if e.get(k) is not None}
    return out


def _v2_to_v3(rec: dict[str, Any]) -> dict[str, Any]:
    idle = rec.get("idle_baseline") or {}
    baseline = None
    if idle.get("duration_s") is not None:
        per_dev = {k: v for k, v in idle.items() if isinstance(v, dict) and "power_w" in v}
        baseline = {
            "duration_s": idle["duration_s"],
            "power_w": {k: v["power_w"] for k, v in per_dev.items()},
            "energy_source": {k: v["energy_source"] for k, v in per_dev.items() if v.get("energy_source")},
            # schema 2 averaged sampled CPU percentages here (not CPU-time deltas)
            "cpu_util_pct": idle.get("cpu_util_pct_mean"),
        }
    col = rec.get("collectors") or {}
    segment = {
        "index": 0,
        "started": rec.get("created") or "",
        "environment": rec["environment"],
        "idle_baseline": baseline,
        "collectors": col if "interval_s" in col else None,
        "worker_server_start_s": (rec.get("overheads") or {}).get("worker_server_start_s"),
    }
    suite = dict(rec["suite"])
    # schema 2 hashed the resolved suite, schema 3 what the user wrote: never equal
    suite["hash"] = f"v2:{suite.get('hash')}"
    return {
        "format": FORMAT,
        "schema_version": 3,
        "run_id": rec.get("run_id") or "unknown",
        "created": rec.get("created") or "",
        "updated": rec.get("updated"),
        "status": rec.get("status") or "interrupted",
        "suite": suite,
        "segments": [segment],
        "cases": [_v2_case(c) for c in rec["cases"]],
        "batch_limits": rec.get("batch_limits") or {},
    }


def _v3_environment(env: Any) -> Any:
    """Schema 3's ``gpus`` (NVIDIA GPUs through NVML) -> schema 4's ``accelerators``."""
    if not isinstance(env, dict):
        return env
    env = dict(env)
    accs = []
    for g in env.pop("gpus", None) or []:
        if isinstance(g, dict):
            cc = g.get("compute_capability")
            arch = f"sm_{cc[0]}{cc[1]}" if isinstance(cc, list) and len(cc) == 2 else None
            g = {"kind": "cuda", "vendor": "nvidia", "arch": arch, **g}
        accs.append(g)
    env["accelerators"] = accs
    return env


def _v3_to_v4(rec: dict[str, Any]) -> dict[str, Any]:
    parts = [p for p in rec.get("nodes") or [] if isinstance(p, dict)]  # a merged multi-node record's parts
    for seg in [s for x in [rec, *parts] for s in x.get("segments") or []]:
        if isinstance(seg, dict) and "environment" in seg:
            seg["environment"] = _v3_environment(seg["environment"])
    rec["schema_version"] = 4
    return rec


# version -> function that upgrades a record of that version to the next one.
UPGRADERS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4}


# ---------------------------------------------------------------------- reading
def _field(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-", "literal[", "list[", "dict[", "nullable[", "union[")):
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _describe(err: ValidationError) -> str:
    errs = err.errors(include_url=False)
    e = errs[0]
    got = e.get("input")
    shown = "" if isinstance(got, (dict, list)) else f" (got {str(got)[:60]!r})"
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{_field(e['loc'])}: {e['msg']}{shown}{more}"


MAX_FILE_BYTES = 2**31  # a results file larger than this is not one of ours


# a current-schema file, as hwbench writes it (the version near the top)
_CURRENT = re.compile(r'"schema_version"\s*:\s*%d\s*[,}]' % SCHEMA_VERSION)


def parse_record(text: str, path: str | Path = "<results>") -> RunRecord:
    """Results text -> a validated, upgraded RunRecord, or ResultsError (one line).
    A current-schema file is parsed and validated in one step by pydantic (its JSON
    parser: no dict of the whole file in between); anything that fails there is read
    again as below, which gives the one-line message."""
    if _CURRENT.search(text, 0, 4096):
        try:
            return RunRecord.model_validate_json(text)
        except (ValidationError, ValueError, RecursionError):
            pass
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        body = text.lstrip()
        if not body.startswith("{"):
            kind = " (a suite file?)" if re.match(r"(#.*\n|\s)*\[", body) else ""
            raise ResultsError(f"{path}: not a results file: not JSON{kind}") from None
        # A complete file (ours) ends with its closing brace; a cut-off one does not.
        what = "corrupted" if text.rstrip().endswith("}") else "truncated"
        raise ResultsError(f"{path}: {what} results file (invalid JSON at line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise ResultsError(f"{path}: not a results file (JSON nested too deeply)") from None
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        raise ResultsError(f"{path}: not a results file ({str(e)[:80]})") from None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise ResultsError(f"{path}: not an hwbench results file (missing \"format\": \"{FORMAT}\")")
    v = rec.get("schema_version")
    if type(v) is not int or v < 1:
        raise ResultsError(f"{path}: schema_version: expected a positive integer, got {str(v)[:40]!r}")
    if v > SCHEMA_VERSION:
        raise ResultsError(f"{path}: schema_version {v} is newer than this hwbench reads ({SCHEMA_VERSION}); upgrade hwbench")
    try:
        while rec["schema_version"] < SCHEMA_VERSION:
            rec = UPGRADERS[rec["schema_version"]](rec)
    except (KeyError, TypeError, AttributeError, ValueError, ZeroDivisionError) as e:
        raise ResultsError(f"{path}: schema_version {v} file is malformed and cannot be upgraded ({type(e).__name__}: {str(e)[:80]})") from None
    try:
        return RunRecord.model_validate(rec)
    except ValidationError as e:
        raise ResultsError(f"{path}: {_describe(e)}") from None
    except RecursionError:
        raise ResultsError(f"{path}: not a results file (nested too deeply)") from None


def read_record(path: str | Path, warn: Callable[[str], None] | None = None) -> RunRecord:
    """Read, upgrade and validate one results file. ResultsError (one line) if it is
    missing, unreadable, truncated, not JSON, not a results file, invalid, or from a
    newer hwbench. The cases of an uncompacted journal beside it (a run going on, or
    one killed) are merged in, read-only (:mod:`hwbench.journal`); ``warn`` receives
    what was dropped from it (default: a :class:`~hwbench.journal.JournalWarning`)."""
    from . import journal

    p = Path(path)
    for _ in range(3):
        version = _version(p, path)
        rec = parse_record(_read_text(p, path), path)
        if rec.status != "running":
            return rec
        rec = journal.merged(rec, p, warn or journal.warn)
        # the run compacted (or a resume restarted) the file meanwhile: the journal read
        # may belong to the file as it is now, not as it was read; read both again
        if _version(p, path) == version:
            break
    return rec


def _version(p: Path, path) -> tuple[int, int, int]:
    """What changes when results file ``p`` is written (every write is a new file)."""
    try:
        st = p.stat()
    except OSError:
        raise ResultsError(f"{path}: no such results file") from None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _read_text(p: Path, path) -> str:
    if not p.is_file():
        raise ResultsError(f"{path}: no such results file")
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ResultsError(f"{path}: not a results file (larger than {MAX_FILE_BYTES // 2**30} GiB)")
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path}: cannot read results file: {e}") from None


def expand_paths(paths) -> tuple[list[Path], list[Path]]:
    """Files given, and the ``*.json`` files of folders given (hidden names included:
    nothing is silently left out). Returns (files named explicitly, files found in
    folders): a folder may hold unrelated JSON, which the loader skips with a warning,
    whereas a file named explicitly must be a results file."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    named: list[Path] = []
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            here = sorted(q for q in p.glob("*.json") if q.is_file())
            if not here:
                raise ResultsError(f"{p}: no results files (*.json) in this folder")
            found += here
        else:
            named.append(p)
    return named, found


def read_many(paths, warn: Callable[[str], None] | None = None) -> list[tuple[Path, RunRecord]]:
    """Every results file in ``paths`` (files or folders). A JSON file in a folder that
    is not a results file is skipped with a warning; a file named explicitly must be one.
    The parts of a multi-node run come back joined, as one record
    (:func:`hwbench.merge.join_parts`)."""
    named, found = expand_paths(paths)
    out = [(p, read_record(p, warn)) for p in named]
    for p in found:
        try:
            out.append((p, read_record(p, warn)))
        except ResultsError as e:
            if warn is None:
                raise
            warn(f"skipped {e}")
    if not out:
        raise ResultsError(f"{', '.join(map(str, named + found))}: none of these is an hwbench results file")
    from .merge import join_parts

    return join_parts(out, warn)


# ---------------------------------------------------------------------- names
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename_part(text: str, limit: int = 40, fallback: str = "suite") -> str:
    """``text`` reduced to letters, digits, '.', '_' and '-' (no path separators, no
    control characters, no leading dot), at most ``limit`` characters."""
    out = _UNSAFE.sub("-", text).strip("-.")[:limit].strip("-.")
    return out or fallback
