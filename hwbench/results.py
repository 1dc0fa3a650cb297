"""The results file: schema, atomic writing, loading (with upgrades) into pandas.

Schema history (bump ``SCHEMA_VERSION`` and add an upgrader for every change):

* 1 -- first version: ``environment``, ``suite`` (path, hash, resolved), ``cases``
  (one record per case: identity, ``case_id``, ``status``, ``reason``, ``metrics``,
  ``raw_times_ms`` per repeat, ``timing`` breakdown).
* 2 -- collectors: per case ``collectors`` (per sampler: device, summary, samples as
  columns), ``energy`` (energy_j, energy_source, ...), ``flags`` (quality warnings) and
  ``device_resolved``; per run ``collectors`` (active / unavailable samplers) and
  ``idle_baseline``. Upgrading a version-1 file adds them empty (nothing was sampled)
  and derives the timing flags, which need only the stored statistics.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import ResultsError

SCHEMA_VERSION = 2
FORMAT = "hwbench-results"


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, record: dict[str, Any]) -> None:
    """Write ``record`` so that ``path`` always holds either the old or the new complete
    file: temporary file in the same folder, fsync, rename, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(_clean(record), indent=1, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); results are shared like any file the
        # user writes, so apply the umask as open() would.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # not every filesystem lets a folder be fsynced
        pass


def _v1_to_v2(rec: dict[str, Any]) -> dict[str, Any]:
    from .collectors import timing_flags

    threshold = rec["suite"].get("resolved", {}).get("settings", {}).get("noise_threshold", 0.1)
    rec.setdefault("collectors", {"active": [], "unavailable": {}, "info": {}})
    rec.setdefault("idle_baseline", {})
    for c in rec["cases"]:
        c.setdefault("device_resolved", None)
        c.setdefault("collectors", {})
        c.setdefault("energy", {})
        c.setdefault("flags", timing_flags(c.get("metrics", {}), threshold) if c["status"] == "ok" else [])
    rec["schema_version"] = 2
    return rec


# version -> function that upgrades a record of that version to the next one.
UPGRADERS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}

REQUIRED = ("environment", "suite", "cases")
CASE_REQUIRED = ("case_id", "case", "status")


def read_record(path: str | Path) -> dict[str, Any]:
    """Read, check and upgrade one results file. ResultsError (one line) if it is
    missing, truncated, not JSON, not a results file, or from a newer hwbench."""
    p = Path(path)
    if not p.is_file():
        raise ResultsError(f"{path}: no such results file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path}: cannot read results file: {e}") from None
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        # A complete file (ours) ends with its closing brace; a cut-off one does not.
        what = "corrupted" if text.rstrip().endswith("}") else "truncated"
        raise ResultsError(f"{path}: {what} results file (invalid JSON at line {e.lineno}, column {e.colno})") from None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise ResultsError(f"{path}: not an hwbench results file (missing \"format\": \"{FORMAT}\")")
    v = rec.get("schema_version")
    if not isinstance(v, int) or v < 1:
        raise ResultsError(f"{path}: schema_version: expected a positive integer, got {v!r}")
    if v > SCHEMA_VERSION:
        raise ResultsError(
            f"{path}: schema_version {v} is newer than this hwbench reads ({SCHEMA_VERSION}); upgrade hwbench"
        )
    for key in REQUIRED:
        if key not in rec:
            raise ResultsError(f"{path}: missing field {key!r}")
    if not isinstance(rec["cases"], list):
        raise ResultsError(f"{path}: cases: expected a list")
    for i, c in enumerate(rec["cases"]):
        if not isinstance(c, dict) or any(k not in c for k in CASE_REQUIRED):
            raise ResultsError(f"{path}: cases[{i}]: expected an object with {', '.join(CASE_REQUIRED)}")
    while rec["schema_version"] < SCHEMA_VERSION:
        rec = UPGRADERS[rec["schema_version"]](rec)
    return rec


def expand_paths(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.glob("*.json") if not q.name.startswith("."))
            if not found:
                raise ResultsError(f"{p}: no results files (*.json) in this folder")
            out += found
        else:
            out.append(p)
    return out


IDENTITY = ("model", "mode", "batch_size", "precision", "backend", "device", "threads", "seq_len", "image_size", "variant")


def record_rows(rec: dict[str, Any], path: str = "") -> list[dict[str, Any]]:
    """Flatten one record into rows: identity, status, metrics, collector summaries."""
    env = rec["environment"]
    rows = []
    for c in rec["cases"]:
        ident = c["case"]
        family, _, size = ident["model"].partition(":")
        row: dict[str, Any] = {
            "run_id": rec.get("run_id"),
            "results_file": str(path),
            "hostname": env.get("hostname"),
            "suite": rec["suite"].get("name"),
            "case_id": c["case_id"],
            "family": family,
            "size": size,
            **{k: ident.get(k) for k in IDENTITY},
            "device_name": c.get("device_name"),
            "status": c["status"],
            "reason": c.get("reason", ""),
        }
        row.update(c.get("metrics", {}))
        row.update(c.get("energy", {}))
        # the host's summary and that of the case's own accelerator (others stay in the file)
        for col in (c.get("collectors") or {}).values():
            if col.get("device") in (None, c.get("device_resolved")):
                row.update(col.get("summary") or {})
        row["flags"] = ",".join(f["flag"] if isinstance(f, dict) else str(f) for f in c.get("flags", []))
        rows.append(row)
    return rows


def load_results(paths):
    """Any number of results files (or folders of them) -> DataFrame, one row per case."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for p in expand_paths(paths):
        rows += record_rows(read_record(p), str(p))
    return pd.DataFrame(rows)
