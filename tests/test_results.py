"""Results files: atomic writes, loading into pandas, clear errors for bad files."""

import json
import os

import pytest

from hwbench import load_results
from hwbench.errors import ResultsError
from hwbench.results import FORMAT, SCHEMA_VERSION, read_record, write_atomic


def record(n=2):
    return {
        "format": FORMAT, "schema_version": SCHEMA_VERSION, "run_id": "r1", "status": "complete",
        "environment": {"hostname": "h"}, "suite": {"name": "s"},
        "cases": [
            {"case_id": f"mlp:tiny/infer/bs{i}/fp32/eager/cpu", "status": "ok", "reason": "",
             "case": {"model": "mlp:tiny", "mode": "infer", "batch_size": i, "precision": "fp32", "backend": "eager",
                      "device": "cpu", "threads": None, "seq_len": None, "image_size": None, "variant": "none"},
             "metrics": {"latency_ms_p50": 1.0 * i, "throughput_samples_per_s": 1000.0, "x": float("nan")}}
            for i in range(1, n + 1)
        ],
    }


def test_write_atomic_roundtrip_and_no_temp_left(tmp_path):
    p = tmp_path / "r.json"
    write_atomic(p, record())
    assert read_record(p)["cases"][1]["metrics"]["latency_ms_p50"] == 2.0
    assert read_record(p)["cases"][0]["metrics"]["x"] is None  # NaN stored as null
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert (p.stat().st_mode & 0o777) == 0o666 & ~mask  # readable like any file the user writes


def test_load_results_one_row_per_case(tmp_path):
    write_atomic(tmp_path / "a.json", record(2))
    write_atomic(tmp_path / "b.json", record(3))
    df = load_results(tmp_path)
    assert len(df) == 5
    assert {"case_id", "status", "latency_ms_p50", "batch_size", "family", "size", "results_file"} <= set(df.columns)
    assert list(load_results(tmp_path / "a.json")["batch_size"]) == [1, 2]


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda t: t[: len(t) // 2], "truncated results file"),
        (lambda t: "{" + t[5:], "corrupted results file"),
        (lambda t: "[]", "not an hwbench results file"),
        (lambda t: t.replace(f'"schema_version": {SCHEMA_VERSION}', '"schema_version": 99'), "schema_version 99 is newer"),
        (lambda t: t.replace('"cases"', '"casez"'), "missing field 'cases'"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, mutate, needle):
    p = tmp_path / "r.json"
    p.write_text(mutate(json.dumps(record(), indent=1)))
    with pytest.raises(ResultsError) as e:
        read_record(p)
    assert needle in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(ResultsError, match="no such results file"):
        read_record(tmp_path / "x.json")
    with pytest.raises(ResultsError, match="no results files"):
        load_results(tmp_path)


def test_golden_v1_file_is_upgraded(tmp_path):
    """A file written by schema version 1 (before collectors) still loads."""
    from conftest import ROOT

    rec = read_record(ROOT / "tests" / "golden" / "results_v1.json")
    assert rec["schema_version"] == SCHEMA_VERSION == 2
    assert rec["idle_baseline"] == {} and rec["collectors"]["active"] == []
    for c in rec["cases"]:
        assert c["energy"] == {} and c["collectors"] == {} and isinstance(c["flags"], list)
    df = load_results(ROOT / "tests" / "golden" / "results_v1.json")
    assert len(df) == 4 and (df["status"] == "ok").all() and "energy_j" not in df.columns
