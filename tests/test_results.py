"""Results files: typed records, atomic writes, validation on read with one-line
errors, upgrades from every older schema, loading into pandas."""

import json
import os

import pandas as pd
import pytest

from hwbench import load_results
from hwbench.errors import ResultsError
from hwbench.records import (SCHEMA_VERSION, CaseIdentity, CaseResult, Environment, Measurement, RunRecord, Segment,
                             SuiteRef, json_schema)
from hwbench.results import locked, read_record, safe_filename_part, write_atomic
from conftest import ROOT, hwbench

GOLDEN = ROOT / "tests" / "golden"


def record(n=2, hostname="h") -> RunRecord:
    cases = [
        CaseResult(
            case_id=f"mlp:tiny/infer/bs{i}/fp32/eager/cpu", status="ok",
            case=CaseIdentity(model="mlp:tiny", mode="infer", batch_size=i, precision="fp32", backend="eager", device="cpu"),
            measurement=Measurement(raw_times_s=[[0.001 * i] * 5], first_iter_s=0.01, warmup_s=0.02, measured_s=0.005 * i),
        )
        for i in range(1, n + 1)
    ]
    return RunRecord(run_id="r1", created="2026-11-25T00:00:00+00:00", status="complete",
                     suite=SuiteRef(name="s", path="s.toml", hash="abc", resolved={}),
                     segments=[Segment(index=0, started="x", environment=Environment(hostname=hostname))], cases=cases)


def test_records_are_frozen():
    r = record()
    with pytest.raises(Exception):
        r.status = "running"  # type: ignore[misc]
    with pytest.raises(Exception):
        r.cases[0].status = "failed"  # type: ignore[misc]


def test_write_atomic_roundtrip_and_no_temp_left(tmp_path):
    p = tmp_path / "r.json"
    write_atomic(p, record())
    back = read_record(p)
    assert back == record()
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert (p.stat().st_mode & 0o777) == 0o666 & ~mask  # readable like any file the user writes


def test_statistics_are_derived_at_load_from_raw_times(tmp_path):
    write_atomic(tmp_path / "a.json", record(2))
    write_atomic(tmp_path / "b.json", record(3))
    df = load_results(tmp_path)
    assert len(df) == 5
    assert {"case_id", "status", "latency_ms_p50", "batch_size", "family", "size", "results_file", "hostname"} <= set(df.columns)
    a = load_results(tmp_path / "a.json")
    assert list(a["batch_size"]) == [1, 2]
    assert list(a["latency_ms_p50"]) == pytest.approx([1.0, 2.0])
    assert list(a["throughput_samples_per_s"]) == pytest.approx([1000.0, 1000.0])


def _text(rec=None) -> str:
    return (rec or record()).model_dump_json(indent=1)


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda t: t[: len(t) // 2], "truncated results file"),
        (lambda t: "{" + t[5:], "corrupted results file"),
        (lambda t: "[]", "not an hwbench results file"),
        (lambda t: t.replace(f'"schema_version": {SCHEMA_VERSION}', '"schema_version": 99'), "schema_version 99 is newer"),
        (lambda t: t.replace('"cases"', '"casez"'), "casez: Extra inputs are not permitted"),
        (lambda t: t.replace('"batch_size": 1', '"batch_size": "one"'), "cases[0].case.batch_size"),
        (lambda t: t.replace('"batch_size": 1', '"batch_size": 1' + "0" * 40), "cases[0].case.batch_size"),
        (lambda t: t.replace('"batch_size": 1', '"batch_size": 1' + "0" * 5000), "not a results file"),
        (lambda t: t.replace('"status": "ok"', '"status": "great"'), "cases[0].status"),
        (lambda t: t.replace('"segments": [', '"segments": [], "x": ['), "segments"),
        (lambda t: t.replace('"resolved": {}', '"resolved": ' + "[" * 100000 + "]" * 100000), "nested too deeply"),
        (lambda t: t.replace('0.001', '1e400', 1), "cases[0].measurement.raw_times_s"),
    ],
)
def test_valid_json_that_is_not_valid_results_is_one_line(tmp_path, mutate, needle):
    p = tmp_path / "r.json"
    p.write_text(mutate(_text()))
    before = p.read_bytes()
    with pytest.raises(ResultsError) as e:
        read_record(p)
    msg = str(e.value)
    assert needle in msg and str(p) in msg and "\n" not in msg
    assert p.read_bytes() == before  # never touched


def test_report_and_resume_on_an_invalid_file_are_one_line_and_touch_nothing(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(_text().replace('"batch_size": 1', '"batch_size": [1]'))
    before = p.read_bytes()
    for args in (["report", p], ["run", ROOT / "tests" / "data" / "tiny.toml", "--resume", p]):
        r = hwbench(*args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
        assert "batch_size" in r.stderr
    assert p.read_bytes() == before


def test_a_folder_with_an_unrelated_json_skips_it_with_a_warning(tmp_path):
    write_atomic(tmp_path / "a.json", record(2))
    write_atomic(tmp_path / ".hidden.json", record(1))  # names starting with "." are not hidden
    (tmp_path / "package.json").write_text('{"name": "x"}')
    warnings = []
    df = load_results(tmp_path, warn=warnings.append)
    assert len(df) == 3
    assert len(warnings) == 1 and "package.json" in warnings[0] and "not an hwbench results file" in warnings[0]
    r = hwbench("report", tmp_path, "--format", "csv")
    assert r.returncode == 0 and "package.json" in r.stderr and "warning" in r.stderr
    # a file named explicitly must be a results file
    with pytest.raises(ResultsError, match="not an hwbench results file"):
        load_results(tmp_path / "package.json")


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(ResultsError, match="no such results file"):
        read_record(tmp_path / "x.json")
    with pytest.raises(ResultsError, match="no results files"):
        load_results(tmp_path)


def test_golden_v1_file_is_upgraded():
    """A file written by schema version 1 (before collectors) still loads."""
    rec = read_record(GOLDEN / "results_v1.json")
    assert rec.schema_version == SCHEMA_VERSION
    assert rec.segments[0].idle_baseline is None and len(rec.cases) == 4
    for c in rec.cases:
        assert c.energy is None and c.collectors == {} and c.measurement.raw_times_s
    df = load_results(GOLDEN / "results_v1.json")
    assert len(df) == 4 and (df["status"] == "ok").all() and df["latency_ms_p50"].notna().all()


def test_golden_v2_file_is_upgraded_and_rederived():
    """Schema 2 (collectors, energy, one environment) -> segments, raw data, derived stats."""
    raw = json.loads((GOLDEN / "results_v2.json").read_text())
    rec = read_record(GOLDEN / "results_v2.json")
    assert rec.segments[0].environment.hostname == raw["environment"]["hostname"]
    assert rec.segments[0].idle_baseline.power_w["cpu"] == raw["idle_baseline"]["cpu"]["power_w"]
    df = load_results(GOLDEN / "results_v2.json").set_index("case_id")
    for c in raw["cases"]:
        row = df.loc[c["case_id"]]
        # statistics re-derived from the stored raw times agree with what schema 2 stored
        assert row["latency_ms_p50"] == pytest.approx(c["metrics"]["latency_ms_p50"], rel=1e-9)
        assert row["energy_j"] == pytest.approx(c["energy"]["energy_j"])
        assert row["energy_per_sample_j"] == pytest.approx(c["energy"]["energy_per_sample_j"])
        assert row["threads_used"] == c["metrics"]["threads"] and pd.isna(row["threads"])


def test_golden_v3_file_is_upgraded_to_accelerators():
    """Schema 3 (``environment.gpus``, NVML's NVIDIA GPUs) -> schema 4's
    ``environment.accelerators`` of kind cuda, vendor nvidia, arch sm_<cc>; the rest of
    the file reads as it did."""
    raw = json.loads((GOLDEN / "results_v3.json").read_text())
    assert raw["schema_version"] == 3
    rec = read_record(GOLDEN / "results_v3.json")
    assert rec.schema_version == SCHEMA_VERSION == 4
    gpu = raw["segments"][0]["environment"]["gpus"][0]
    (acc,) = rec.segments[0].environment.accelerators
    assert (acc.kind, acc.vendor, acc.arch) == ("cuda", "nvidia", "sm_90")
    assert (acc.name, acc.uuid, acc.torch_device, acc.memory_total_bytes) == (
        gpu["name"], gpu["uuid"], gpu["torch_device"], gpu["memory_total_bytes"])
    assert "gpus" not in rec.segments[0].environment.model_dump()
    df = load_results(GOLDEN / "results_v3.json").set_index("case_id")
    for c in raw["cases"]:
        assert df.loc[c["case_id"], "status"] == c["status"]
        if c.get("energy"):
            assert df.loc[c["case_id"], "energy_source"] == c["energy"]["energy_source"]


def test_energy_source_is_open_and_ranked():
    """Schema 4: any kind's source name validates; sources rank counters first, an
    unlisted one just above the estimate."""
    from hwbench.records import Energy, energy_source_rank

    e = Energy(energy_j=1.0, energy_source="amdsmi_counter", energy_window_s=1.0)
    assert e.energy_source == "amdsmi_counter"
    with pytest.raises(ValueError):
        Energy(energy_j=1.0, energy_source="Bad Source!", energy_window_s=1.0)
    ranks = [energy_source_rank(s) for s in ("nvml_counter", "amdsmi_power", "rapl", "new_kind_power", "estimated")]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    parts = [("a", e), ("b", Energy(energy_j=2.0, energy_source="estimated", energy_window_s=1.0))]
    assert Energy.total(parts).energy_source == "estimated"


def test_json_schema_export():
    s = json_schema()
    assert s["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    r = hwbench("schema")
    assert r.returncode == 0 and json.loads(r.stdout)["title"].startswith("hwbench results file")


def test_the_lock_refuses_a_second_writer(tmp_path):
    p = tmp_path / "r.json"
    with locked(p):
        with pytest.raises(ResultsError, match=f"another hwbench run \\(pid {os.getpid()}\\) is writing"):
            with locked(p):
                pass
    with locked(p):  # released
        pass


@pytest.mark.parametrize("name,want", [("smoke", "smoke"), ("../../x", "x"), ("a/b\\c", "a-b-c"), ("\x00\x1b[31mred", "31mred"),
                                       ("..", "suite"), ("ü n i", "n-i"), ("x" * 300, "x" * 40)])
def test_safe_filename_part(name, want):
    assert safe_filename_part(name) == want
