"""The streaming reader (hwbench.results_stream) and the frame built case by case
(hwbench.analysis.frame): the same DataFrame as the whole-file path, the same one-line
errors for bad input, and the full reader where the stream does not go."""

import json
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwbench import journal
from hwbench.analysis import frame
from hwbench.analysis.derive import load_results_and_records
from hwbench.analysis.frame import load_results
from hwbench.analysis.stats import latency_stats_ms, sorted_percentiles
from hwbench.errors import ResultsError
from hwbench.records import CaseIdentity, CaseResult, Facts, LoadPoint, Measurement, SamplerResult, Serving
from hwbench.results import read_record, write_atomic
from hwbench import results_stream
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "perf"))
import bench_large_run  # noqa: E402

EXAMPLES = ROOT / "results" / "examples"
GOLDEN = ROOT / "tests" / "golden"


def whole(paths):
    """load_results as it was: every file read whole, every row derived, one to_frame."""
    said = []
    return load_results_and_records(paths, said.append)[0], said


def streamed(paths, *, allow_full=()):
    """load_results through the stream; the full reader may read only ``allow_full``."""
    said = []
    real = read_record

    def only(p, *a, **k):
        assert str(p) in map(str, allow_full), f"{p} was read whole"
        return real(p, *a, **k)

    import hwbench.results as results

    results.read_record, old = only, results.read_record
    try:
        return load_results(paths, said.append), said
    finally:
        results.read_record = old


@pytest.fixture
def small_chunks(monkeypatch):
    """Buffers and row chunks far smaller than a case file: every refill and chunk edge."""
    monkeypatch.setattr(results_stream, "CHUNK_CHARS", 3000)
    monkeypatch.setattr(frame, "CHUNK_ROWS", 7)


def varied_record():
    """The parallel example (upgraded from schema 3) with failed, oom and skipped cases,
    repeats, serving load points, and a sampler whose info holds text that looks like
    a case boundary (in a string, and between nested objects)."""
    rec = read_record(EXAMPLES / "parallel-cpu-amd-epyc-2cores.json")
    smoke = read_record(EXAMPLES / "smoke-cpu-amd-epyc-2cores.json")
    base = smoke.cases[0]
    ident = CaseIdentity(model="mlp:tiny", mode="infer", batch_size=8, precision="fp32", backend="eager", device="cpu")
    extra = [
        base.model_copy(update={"case_id": base.case_id + "/again", "status": "failed", "reason": "boom",
                                "measurement": None, "facts": None}),
        base.model_copy(update={"case_id": base.case_id + "/oom", "status": "oom", "reason": "out of memory",
                                "measurement": None}),
        CaseResult(case_id="skipped/one", case=ident, status="skipped", reason="needs cuda"),
        base.model_copy(update={"case_id": base.case_id + "/repeats", "measurement": base.measurement.model_copy(
            update={"raw_times_s": [[0.002, 0.003], [0.0025] * 7, [0.004]]})}),
        base.model_copy(update={"case_id": base.case_id + "/trap", "collectors": {"host": SamplerResult(
            info={"note": '}, {"case_id": "x"}', "nested": [{"a": 1}, {"case_id": "y"}]})}}),
    ]
    train = next(c for c in smoke.cases if c.case.mode == "train" and c.status == "ok")
    extra.append(CaseResult(  # the train case's input pipeline: both get an input headroom
        case_id=train.case_id + "/data", status="ok", device_name="CPU",
        case=train.case.model_copy(update={"mode": "data", "num_workers": 2, "pin_memory": False}),
        measurement=Measurement(raw_times_s=[[0.0001] * 20], first_iter_s=0.001, warmup_s=0.01, measured_s=0.002),
        facts=Facts(params=0, flops_per_sample=0.0, data_bytes_per_sample=1000.0, data_loader_wait_s=0.0001)))
    for load, lat in ((100.0, [0.001] * 50), (200.0, [0.002] * 49 + [0.05])):
        extra.append(CaseResult(
            case_id=f"mlp:tiny/infer/bs8/fp32/eager/cpu/server@{load:g}qps", status="ok", device_name="CPU",
            case=ident.model_copy(update={"scenario": "server", "load": load, "latency_slo_ms": 10.0}),
            measurement=Measurement(raw_times_s=[[0.001] * 10], first_iter_s=0.001, warmup_s=0.01, measured_s=2.0,
                                    serving=Serving(scenario="server", points=[LoadPoint(
                                        offered_qps=load, achieved_qps=load, duration_s=2.0, latencies_s=lat)])),
            facts=Facts(params=10, flops_per_sample=100.0)))
    return rec.model_copy(update={"cases": [*rec.cases, *smoke.cases, *extra]})


def one_case_per_line(rec, path):
    """``rec`` as JSON with one case a line (as tests/perf/bench_large_run.py writes)."""
    d = json.loads(rec.model_dump_json())
    cases = d.pop("cases")
    text = json.dumps(d)[:-1] + ', "cases": [\n' + ",\n".join(json.dumps(c) for c in cases) + "\n]}\n"
    path.write_text(text)
    return path


def test_examples_stream_to_the_same_frame():
    for p in [*sorted(EXAMPLES.glob("*.json")), EXAMPLES]:
        got, said = streamed(p)
        want, said_whole = whole(p)
        pd.testing.assert_frame_equal(got, want)
        assert said == said_whole


@pytest.mark.parametrize("layout", ["indented", "one case a line"])
def test_varied_file_streams_to_the_same_frame(tmp_path, small_chunks, layout):
    rec = varied_record()
    p = tmp_path / "r.json"
    write_atomic(p, rec) if layout == "indented" else one_case_per_line(rec, p)
    got, _ = streamed(p)
    pd.testing.assert_frame_equal(got, whole(p)[0])
    assert len(got) == len(rec.cases)
    assert set(got["status"]) == {"ok", "failed", "oom", "skipped"}
    assert got.set_index("case_id").loc["mlp:tiny/infer/bs8/fp32/eager/cpu/server@100qps", "capacity_qps_at_slo"] == 100.0
    assert got["scaling_efficiency"].notna().any()  # the rules across rows ran
    assert got["input_headroom"].notna().sum() == 2 and got["input_bound"].notna().sum() == 1


def test_generated_large_file_streams_to_the_same_frame(tmp_path, small_chunks):
    p = tmp_path / "big.json"
    bench_large_run.generate(p, 120)
    got, _ = streamed(p)
    pd.testing.assert_frame_equal(got, whole(p)[0])
    assert got["case_id"].is_unique and len(got) == 120


def test_a_folder_streams_with_the_same_warnings(tmp_path):
    write_atomic(tmp_path / "a.json", varied_record())
    (tmp_path / "b.json").write_text('{"not": "ours"}')
    (tmp_path / "c.json").write_text('{"format": "hwbench-results", "schema_version": 4, "run_id": "x"')
    got, said = streamed(tmp_path, allow_full=[tmp_path / "b.json", tmp_path / "c.json"])
    want, said_whole = whole(tmp_path)
    pd.testing.assert_frame_equal(got, want)
    assert said == said_whole and len(said) == 2 and all(w.startswith("skipped ") for w in said)


def test_uncompacted_journal_is_merged_by_the_full_reader(tmp_path):
    rec = varied_record()
    p = tmp_path / "r.json"
    write_atomic(p, rec.model_copy(update={"status": "running", "cases": rec.cases[:3]}))
    w = journal.JournalWriter(p, rec)
    for c in rec.cases[3:]:
        w.case(c)
    w.case(rec.cases[0])  # run again: goes last
    w.close()
    got, _ = streamed(p, allow_full=[p])
    pd.testing.assert_frame_equal(got, whole(p)[0])
    assert len(got) == len(rec.cases) and got["case_id"].iloc[-1] == rec.cases[0].case_id


@pytest.mark.parametrize("name", ["results_v1.json", "results_v2.json", "results_v3.json"])
def test_older_schemas_load_as_before(name):
    p = GOLDEN / name
    # schema 3 is streamed (its upgrade changes only the header); 1 and 2 are read whole
    got, _ = streamed(p, allow_full=[] if name.endswith("v3.json") else [p])
    pd.testing.assert_frame_equal(got, whole(p)[0])


def bad_files(tmp_path):
    rec = varied_record()
    write_atomic(tmp_path / "good.json", rec)
    text = (tmp_path / "good.json").read_text()
    out = {"truncated": text[: len(text) * 2 // 3], "corrupted": text.replace('"status"', '"status" "', 1)}
    bad = json.loads(rec.model_dump_json())
    bad["cases"][5]["measurement"]["raw_times_s"][0][1] = -1.0
    out["invalid case"] = json.dumps(bad, indent=1)
    bad = json.loads(rec.model_dump_json())
    bad["cases"][2]["status"] = "great"
    bad["segments"][0]["index"] = -1
    out["two invalid fields"] = json.dumps(bad, indent=1)
    out["extra text"] = text + "\n{}"
    out["suite file"] = '[suite]\nname = "x"\n'
    out["newer"] = text.replace('"schema_version": 4', '"schema_version": 9', 1)
    for name, t in out.items():
        (tmp_path / f"{name}.json").write_text(t)
    return [tmp_path / f"{name}.json" for name in out]


def test_bad_files_give_the_full_readers_one_line_error(tmp_path, small_chunks):
    for p in bad_files(tmp_path):
        with pytest.raises(ResultsError) as want:
            read_record(p)
        with pytest.raises(ResultsError) as got:
            load_results(p)
        assert str(got.value) == str(want.value)
        assert "\n" not in str(got.value) and str(p) in str(got.value)


def test_the_stream_gives_up_rather_than_guess(tmp_path):
    for p in bad_files(tmp_path):
        with pytest.raises(results_stream.Unstreamable):
            s = results_stream.CaseStream(p)
            list(s.cases())
            s.finish()


def test_a_case_boundary_inside_a_case_is_read_case_by_case(tmp_path, monkeypatch):
    """The batch splits at the last ``}, {"case_id"`` in the buffer; where that text is
    inside a case (here: the last case's sampler info) the batch does not parse, and
    those cases are read one at a time: the same records."""
    rec = varied_record()
    trap = next(c for c in rec.cases if c.case_id.endswith("/trap"))
    rec = rec.model_copy(update={"cases": [c for c in rec.cases if c is not trap] + [trap]})
    p = write_atomic(tmp_path / "r.json", rec) or tmp_path / "r.json"
    one = results_stream.CaseStream._one
    calls = []
    monkeypatch.setattr(results_stream.CaseStream, "_one", lambda self: calls.append(1) or one(self))
    s = results_stream.CaseStream(p)
    assert list(s.cases()) == rec.cases
    assert s.finish() == rec.model_copy(update={"cases": []})
    assert len(calls) == len(rec.cases)  # the one batch failed: every case read alone
    calls.clear()
    write_atomic(p, rec.model_copy(update={"cases": rec.cases[:-1]}))
    s = results_stream.CaseStream(p)
    assert list(s.cases()) == rec.cases[:-1] and len(calls) == 1  # a batch, then the last case


# ---------------------------------------------------------------- the pieces
@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.floats(1e-9, 10.0), min_size=1, max_size=40), min_size=1, max_size=4))
def test_latency_stats_are_numpys_bit_for_bit(raw):
    flat = np.asarray([t for r in raw for t in r], dtype=float) * 1e3
    p25, p50, p75, p90, p99 = np.percentile(flat, [25, 50, 75, 90, 99])
    std = float(flat.std(ddof=1)) if flat.size > 1 else 0.0
    st_ = latency_stats_ms(raw)
    assert [st_["latency_ms_p50"], st_["latency_ms_p90"], st_["latency_ms_p99"]] == [p50, p90, p99]
    assert st_["latency_ms_mean"] == float(flat.mean()) and st_["latency_ms_std"] == std
    assert st_["latency_iqr_rel"] == (float((p75 - p25) / p50) if p50 > 0 else 0.0)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60),
       st.lists(st.floats(0, 100) | st.integers(0, 100), min_size=1, max_size=5))
def test_sorted_percentiles_are_numpys(vals, pcts):
    s = np.sort(np.asarray(vals, dtype=float))
    # numpy divides the percentile by 100 first: the same quantile
    assert sorted_percentiles(s, [p / 100 for p in pcts]) == [float(np.percentile(s, p)) for p in pcts]


@given(st.lists(st.floats(0, 1e4) | st.integers(0, 1000), min_size=0, max_size=60), st.integers(0, 100) | st.floats(0, 100))
def test_percentile_is_numpys(vals, q):
    from hwbench.analysis.stats import percentile

    want = float(np.percentile(np.asarray(vals, dtype=float), q)) if vals else None
    assert percentile(vals, q) == want
    assert percentile([*vals, float("nan")], q) != percentile([*vals, float("nan")], q)  # NaN: numpy's NaN


def test_lazy_table_rows_are_to_dict_records():
    from hwbench.report.table import lazy_rows

    df = whole(EXAMPLES)[0]
    want = df.to_dict("records")
    got = lazy_rows(df)
    for w, g in zip(want, got):
        for k, v in w.items():
            assert type(g[k]) is type(v) and (g[k] == v or pd.isna(v) and pd.isna(g[k]) if not isinstance(v, list)
                                              else g[k] == v), k
    assert got[0].get("no such column") is None


def test_report_output_is_the_same_streamed(tmp_path, monkeypatch):
    """The CLI's table and csv read the files as streams; the text equals the one
    rendered from the whole-file frame."""
    from click.testing import CliRunner

    from hwbench.cli import cli
    from hwbench.commands.report import _render
    from hwbench.report.table import check_columns

    p = write_atomic(tmp_path / "r.json", varied_record()) or tmp_path / "r.json"
    df = whole(p)[0]
    monkeypatch.setenv("COLUMNS", "100")
    for fmt in ("table", "csv", "json", "markdown"):
        out = tmp_path / f"out.{fmt}"
        r = CliRunner().invoke(cli, ["report", str(p), "--format", fmt, "--output", str(out)])
        assert r.exit_code == 0, r.output
        assert out.read_text() == _render(df, fmt, str(out), False, check_columns(df, []), None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_results(p)  # no warning for a good file


def test_multi_node_parts_take_the_full_path_joined(tmp_path):
    from test_multinode import case, part

    write_atomic(tmp_path / "a.json", varied_record())
    write_atomic(tmp_path / "p0.json", part(0, [case([[1.0, 2.0, 3.0]], [0, 1])]))
    write_atomic(tmp_path / "p1.json", part(1, [case([[1.5, 1.0, 3.5]], [2, 3])]))
    got, said = streamed(tmp_path, allow_full=[tmp_path / n for n in ("a.json", "p0.json", "p1.json")])
    want, said_whole = whole(tmp_path)
    pd.testing.assert_frame_equal(got, want)
    assert said == said_whole and (got["nnodes"] == 2).sum() == 1  # the parts joined into one row
