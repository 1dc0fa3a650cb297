"""One results file as the store's seven tables (pandas frames, one row per item):

- ``runs``: one row per run (file): id, suite, dates, status, host, case counts;
- ``segments``: one row per start or resume, with the facts of its environment;
- ``cases``: the columns of :func:`hwbench.analysis.derive.load_results` (the same
  function makes them, :func:`~hwbench.analysis.derive.record_rows`);
- ``samples``: the raw timed values, one row per case, repeat and value (s);
- ``series``: collector readings in long form, one row per case, sampler, reading
  and metric (the metric names carry their units, as in the results file);
- ``records``: one row per run: the run as JSON without its cases (they are in
  ``case_records``), from which ``compare`` rebuilds the run (:mod:`.records`)
  without reading the results file;
- ``case_records``: one row per case: the case's result as JSON without its raw times
  and collector readings (those are in ``samples`` and ``series``), which ``compare``
  reads one case at a time.

Every table starts with ``results_file`` (the absolute path of the file) and
``run_id``, the keys to join them on (with ``case_id`` and ``segment``)."""

from __future__ import annotations

from typing import Any

from ..records import RunRecord

TABLES = ("runs", "segments", "cases", "samples", "series", "records", "case_records")

# column -> pandas dtype of the fixed-shape tables (cases follows derive.SCHEMA)
RUNS = {"results_file": "string", "run_id": "string", "suite": "string", "suite_hash": "string",
        "created": "string", "updated": "string", "status": "string", "schema_version": "Int64",
        "hostname": "string", "hwbench_git_commit": "string", "nnodes": "Int64",
        "n_segments": "Int64", "n_cases": "Int64", "n_ok": "Int64"}
SEGMENTS = {"results_file": "string", "run_id": "string", "segment": "Int64", "started": "string",
            "hostname": "string", "os": "string", "machine": "string", "cpu_model": "string",
            "cpu_cores_logical": "Int64", "memory_total_bytes": "Int64", "python_version": "string",
            "torch_version": "string", "hwbench_version": "string", "hwbench_git_commit": "string",
            "accelerator_names": "string", "driver_version": "string", "idle_power_w": "float64",
            "filters": "string", "env_changes": "string"}
SAMPLES = {"results_file": "string", "run_id": "string", "case_id": "string", "repeat": "Int64",
           "iteration": "Int64", "time_s": "float64"}
RECORDS = {"results_file": "string", "run_id": "string", "record": "string"}
CASE_RECORDS = {"results_file": "string", "run_id": "string", "case_index": "Int64", "case_id": "string",
                "record": "string"}
SERIES = {"results_file": "string", "run_id": "string", "case_id": "string", "sampler": "string",
          "device": "string", "reading": "Int64", "t_s": "float64", "metric": "string", "value": "float64"}


def _frame(rows: list[dict[str, Any]] | dict[str, list], columns: dict[str, str]):
    import pandas as pd

    if isinstance(rows, dict):
        data = rows
    else:
        data = {c: [r.get(c) for r in rows] for c in columns}
    return pd.DataFrame({c: pd.Series(pd.array(data[c], dtype=t)) if t != "float64"
                         else pd.Series([float("nan") if v is None else v for v in data[c]], dtype="float64")
                         for c, t in columns.items()})


def runs_data(rec: RunRecord, path: str) -> list[dict[str, Any]]:
    env = rec.environment
    ok = sum(c.status == "ok" for c in rec.cases)
    return [{"results_file": path, "run_id": rec.run_id, "suite": rec.suite.name, "suite_hash": rec.suite.hash,
                    "created": rec.created, "updated": rec.updated, "status": rec.status,
                    "schema_version": rec.schema_version, "hostname": env.hostname,
                    "hwbench_git_commit": env.hwbench_git_commit, "nnodes": rec.nnodes,
                    "n_segments": len(rec.segments), "n_cases": len(rec.cases), "n_ok": ok}]


def segments_data(rec: RunRecord, path: str) -> list[dict[str, Any]]:
    rows = []
    for s in rec.segments:
        e, idle = s.environment, s.idle_baseline
        rows.append({"results_file": path, "run_id": rec.run_id, "segment": s.index, "started": s.started,
                     "hostname": e.hostname, "os": e.os, "machine": e.machine, "cpu_model": e.cpu_model,
                     "cpu_cores_logical": e.cpu_cores_logical, "memory_total_bytes": e.memory_total_bytes,
                     "python_version": e.python_version, "torch_version": e.torch_version,
                     "hwbench_version": e.hwbench_version, "hwbench_git_commit": e.hwbench_git_commit,
                     "accelerator_names": ",".join(g.name for g in e.accelerators) or None, "driver_version": e.driver_version,
                     # the whole machine's idle draw: the sum over its devices (W)
                     "idle_power_w": sum(idle.power_w.values()) if idle is not None and idle.power_w else None,
                     "filters": ",".join(s.filters) or None, "env_changes": "; ".join(s.env_changes) or None})
    return rows


def samples_data(rec: RunRecord, path: str) -> dict[str, list]:
    cols: dict[str, list] = {c: [] for c in SAMPLES}
    for c in rec.cases:
        m = c.measurement
        if m is None:
            continue
        for r, times in enumerate(m.raw_times_s):
            n = len(times)
            cols["case_id"] += [c.case_id] * n
            cols["repeat"] += [r] * n
            cols["iteration"] += list(range(n))
            cols["time_s"] += list(times)
    n = len(cols["case_id"])
    cols["results_file"], cols["run_id"] = [path] * n, [rec.run_id] * n
    return cols


def series_data(rec: RunRecord, path: str) -> dict[str, list]:
    cols: dict[str, list] = {c: [] for c in SERIES}
    for c in rec.cases:
        for name, col in c.collectors.items():
            samples = col.samples or {}
            t = samples.get("t_s") or []
            for metric, values in samples.items():
                if metric == "t_s":
                    continue
                n = len(values)
                cols["case_id"] += [c.case_id] * n
                cols["sampler"] += [name] * n
                cols["device"] += [col.device] * n
                cols["reading"] += list(range(n))
                cols["t_s"] += [t[i] if i < len(t) else None for i in range(n)]
                cols["metric"] += [metric] * n
                cols["value"] += list(values)
    n = len(cols["case_id"])
    cols["results_file"], cols["run_id"] = [path] * n, [rec.run_id] * n
    return cols


def records_data(rec: RunRecord, path: str) -> list[dict[str, Any]]:
    """The run as JSON without its cases (``"cases": []``; :func:`case_records_data`
    holds them): :func:`hwbench.store.records.runs` rebuilds the run from it."""
    import json

    doc = rec.model_dump(mode="json", exclude={"cases"})
    doc["cases"] = []
    return [{"results_file": path, "run_id": rec.run_id, "record": json.dumps(doc)}]


def case_records_data(rec: RunRecord, path: str) -> list[dict[str, Any]]:
    """Each case's result as JSON (``case_index``: its place in the run) with every
    repeat's raw times emptied (the number of repeats kept) and no collector readings:
    :mod:`hwbench.store.records` puts the times back from ``samples`` while it compares
    the case."""
    import json

    rows = []
    for i, c in enumerate(rec.cases):
        doc = c.model_dump(mode="json")
        m = doc.get("measurement")
        if m is not None:
            m["raw_times_s"] = [[] for _ in m["raw_times_s"]]
        for col in (doc.get("collectors") or {}).values():
            col["samples"] = None
        rows.append({"results_file": path, "run_id": rec.run_id, "case_index": i, "case_id": c.case_id,
                     "record": json.dumps(doc)})
    return rows


def cases_data(rec: RunRecord, path: str) -> list[dict[str, Any]]:
    """The ``load_results`` rows of one run (scaling efficiency within the run; the
    store recomputes it across runs, as ``load_results`` does)."""
    from ..analysis.derive import record_rows

    return record_rows(rec, path)


# each table's raw data of one run: a list of rows, or (samples, series) of columns
_DATA = {"runs": runs_data, "segments": segments_data, "cases": cases_data, "samples": samples_data,
         "series": series_data, "records": records_data, "case_records": case_records_data}
_COLUMNS = {"runs": RUNS, "segments": SEGMENTS, "samples": SAMPLES, "series": SERIES, "records": RECORDS,
            "case_records": CASE_RECORDS}


def record_data(rec: RunRecord, path: str) -> dict[str, Any]:
    """The seven tables' raw data of one run read from ``path`` (plain Python: the
    frames are built once for many runs, :func:`frames`)."""
    return {name: f(rec, path) for name, f in _DATA.items()}


def frames(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The seven tables (pandas frames) of the runs whose :func:`record_data` is
    ``parts``, in that order: each frame built once, not once per run (a frame's
    construction costs about as much for ten rows as for thousands)."""
    from ..analysis.derive import to_frame

    out: dict[str, Any] = {}
    for name in TABLES:
        if name in ("samples", "series"):
            cols: dict[str, list] = {c: [] for c in _COLUMNS[name]}
            for p in parts:
                for c, values in p[name].items():
                    cols[c] += values
            out[name] = _frame(cols, _COLUMNS[name])
        else:
            rows = [r for p in parts for r in p[name]]
            out[name] = to_frame(rows) if name == "cases" else _frame(rows, _COLUMNS[name])
    return out


def rows_of(data) -> int:
    """The rows of one table's raw data (:func:`record_data`)."""
    return len(data["results_file"]) if isinstance(data, dict) else len(data)


def record_tables(rec: RunRecord, path: str) -> dict[str, Any]:
    """The seven tables of one run read from ``path``."""
    return frames([record_data(rec, path)])
