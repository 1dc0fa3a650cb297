"""The store (hwbench.store) and ``hwbench query``: the cached ``cases`` frame is the
``load_results`` frame, a second read parses no JSON, changed and removed files are
noticed, read-only folders and caches work, and the command's formats and errors."""

import json
import os
import shutil

import pandas as pd
import pytest

from hwbench.analysis.derive import load_results
from hwbench.store import Store, cases_frame, connect, load_cases
from conftest import ROOT

EXAMPLES = ROOT / "results" / "examples"
GOLDEN = ROOT / "tests" / "golden"


def cli(*args):
    """The command in this process (click's runner): (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from hwbench.cli import cli as group

    r = CliRunner().invoke(group, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def folder(tmp_path):
    """A results folder: the examples, the old-schema golden files and one JSON file
    that is not a results file."""
    d = tmp_path / "runs"
    d.mkdir()
    for p in [*EXAMPLES.glob("*.json"), *GOLDEN.glob("*.json")]:
        shutil.copy(p, d / p.name)
    (d / "notes.json").write_text('{"hello": 1}')
    return d


def read(store, paths):
    warnings = []
    store.warn = warnings.append
    return cases_frame(store, store.entries(paths)), warnings


def test_the_cached_cases_frame_is_load_results_and_the_second_read_parses_nothing(folder, tmp_path):
    ref_warn = []
    ref = load_results([folder], warn=ref_warn.append)
    store = Store(tmp_path / "cache")
    first, w1 = read(store, [folder])
    assert store.parses == len(list(folder.glob("*.json")))
    pd.testing.assert_frame_equal(first, ref)
    again = Store(tmp_path / "cache")
    second, w2 = read(again, [folder])
    assert again.parses == 0  # no JSON read: every file came from the cache
    pd.testing.assert_frame_equal(second, ref)
    assert w1 == w2 == ref_warn and len(ref_warn) == 1 and "notes.json" in ref_warn[0]
    # the same files named one by one (relative paths as given)
    files = sorted(str(p) for p in folder.glob("*.json") if p.name != "notes.json")
    pd.testing.assert_frame_equal(read(again, files)[0], load_results(files))


def test_a_changed_file_is_read_again_and_a_removed_one_dropped(folder, tmp_path):
    store = Store(tmp_path / "cache")
    read(store, [folder])
    smoke = folder / "smoke-cpu-amd-epyc-2cores.json"
    doc = json.loads(smoke.read_text())
    doc["run_id"] = "changed-run"
    doc["cases"] = doc["cases"][:2]
    smoke.write_text(json.dumps(doc))
    os.utime(smoke, ns=(1, 1))  # an mtime the first one did not have, whatever the clock's resolution
    (folder / "parallel-cpu-amd-epyc-2cores.json").unlink()
    again = Store(tmp_path / "cache")
    got, _ = read(again, [folder])
    assert again.parses == 1
    pd.testing.assert_frame_equal(got, load_results([folder], warn=lambda m: None))
    assert (got["run_id"] == "changed-run").sum() == 2
    entries = list((tmp_path / "cache" / "files").iterdir())
    assert len(entries) == len(list(folder.glob("*.json")))  # the removed file's entry is gone


def test_multi_node_parts_are_joined_as_load_results_joins_them(tmp_path):
    from hwbench.results import write_atomic
    from test_multinode import case, part

    d = tmp_path / "parts"
    d.mkdir()
    write_atomic(d / "a.json", part(0, [case([[1.0]], [0, 1])]))
    write_atomic(d / "b.json", part(1, [case([[3.0]], [2, 3])]))
    write_atomic(d / "x.json", part(0, [case([[1.0]], [0, 1])]).model_copy(update={"node": None, "run_id": "solo"}))
    ref_warn = []
    ref = load_results([d], warn=ref_warn.append)
    got, warnings = read(Store(tmp_path / "cache"), [d])
    pd.testing.assert_frame_equal(got, ref)
    assert warnings == ref_warn


def test_a_read_only_folder_works_and_an_unwritable_cache_falls_back_with_a_warning(folder, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    os.chmod(folder, 0o555)
    try:
        pd.testing.assert_frame_equal(load_cases([folder], warn=lambda m: None, cache=tmp_path / "c"),
                                      load_results([folder], warn=lambda m: None))
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        warnings = []
        df = load_cases([folder], warn=warnings.append, cache=ro / "cache")
        assert len(df) and "cannot write" in warnings[0]
    finally:
        os.chmod(folder, 0o755)


def test_an_unwritable_cache_falls_back_to_a_temporary_one(folder, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    warnings = []
    df = load_cases([folder], warn=warnings.append, cache=blocker / "cache")  # a file on the way
    assert "cannot write" in warnings[0] and len(df) == len(load_results([folder], warn=lambda m: None))


def test_the_tables_join_and_count(folder, tmp_path):
    store = Store(tmp_path / "cache")
    con = connect(store, store.entries([folder]))
    ref = load_results([folder], warn=lambda m: None)
    assert con.execute("select count(*) from cases").fetchall()[0][0] == len(ref)
    runs = con.execute("select count(*), sum(n_cases) from runs").fetchall()[0]
    assert runs == (len(list(folder.glob("*.json"))) - 1, len(ref))
    # samples hold the raw times: their median per case is the frame's latency_ms_p50 for one-repeat cases
    got = con.sql("select c.case_id, c.run_id, c.latency_ms_p50, median(s.time_s) * 1e3 as m, count(*) as n "
                  "from cases c join samples s using (results_file, run_id, case_id) "
                  "where c.repeats = 1 group by all").df()
    assert len(got) and (got["m"] - got["latency_ms_p50"]).abs().max() < 1e-9 * got["m"].max()
    assert con.execute("select count(distinct metric) from series").fetchall()[0][0] > 0
    seg = con.execute("select count(*) from segments s join runs r using (results_file, run_id)").fetchall()[0][0]
    assert seg >= runs[0]


def test_query_command_formats_and_errors(folder, tmp_path):
    n = len(load_results([folder], warn=lambda m: None))
    rc, out, err = cli("query", "select count(*) as n from cases", folder, "--format", "csv")
    assert rc == 0 and out.splitlines() == ["n", str(n)] and "notes.json" in err
    rc, out, _ = cli("query", "select run_id, n_cases from runs order by run_id", folder, "--format", "json")
    assert rc == 0 and sum(r["n_cases"] for r in json.loads(out)) == n
    rc, out, _ = cli("query", "select * from cases", folder)
    assert rc == 0 and max(map(len, out.splitlines())) <= 80 and f"({n} rows)" in out and "not shown" in out
    pq = tmp_path / "out.parquet"
    rc, _, err = cli("query", "select case_id, latency_ms_p50 from cases", folder, "--format", "parquet", "--out", pq)
    import duckdb

    assert rc == 0 and duckdb.connect().execute(f"select count(*) from '{pq}'").fetchall()[0][0] == n
    (folder / "notes.json").unlink()  # no warning: the error is the only line
    rc, _, err = cli("query", "selec 1", folder)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "syntax error" in err and "Traceback" not in err
    rc, _, err = cli("query", "select nope from cases", folder)
    assert rc == 2 and "nope" in err.strip().splitlines()[-1]
    rc, _, err = cli("query", "select 1", folder, "--format", "parquet")
    assert rc == 2 and "--out" in err


def test_history_through_the_store_is_the_history_of_the_records(tmp_path):
    from hwbench.analysis import history as hist
    from hwbench.commands.regression import _read
    from hwbench.results import write_atomic
    from hwbench.store import history as store_history
    from test_history import runs

    d = tmp_path / "nightly"
    d.mkdir()
    for name, rec in runs():
        write_atomic(d / name, rec)
    shutil.copy(d / "run3.json", d / "run3-copy.json")  # a run given twice counts once, warned
    for metric, glob in (("latency_ms_p50", None), ("throughput_samples_per_s", "encoder:*"), ("nope", None)):
        ref = hist.history(_read((str(d),), "RESULTS"), case_glob=glob, metric=metric, threshold=0.05)
        store = Store(tmp_path / "cache")
        warnings = []
        got = store_history.history(store, store.entries([d]), case_glob=glob, metric=metric, threshold=0.05,
                                    warn=warnings.append)
        for k in ("runs", "series", "trends", "changes", "outliers"):
            pd.testing.assert_frame_equal(getattr(got, k), getattr(ref, k))
        assert got.method == ref.method and len(warnings) == 1 and "run3" in warnings[0]
    assert len(ref.changes) == 0 and len(got.changes) == 0  # "nope" is no column: nothing
    assert store.parses == 0


def test_a_synthetic_fleet_counts_right_and_the_second_query_reads_no_json(tmp_path, monkeypatch):
    """The scale check's pass/fail part (tests/perf/bench_store.py times it): copies of
    the examples with new run ids; the second query parses nothing."""
    import sys

    import hwbench.store as store_module

    sys.path.insert(0, str(ROOT / "tests" / "perf"))
    from make_fleet import make

    files = make(tmp_path / "fleet", 12)
    want = sum(len(json.loads(p.read_text())["cases"]) for p in files)
    parses = []
    real = store_module.Store

    class Counting(real):
        def close(self):
            parses.append(self.parses)
            super().close()

    monkeypatch.setattr(store_module, "Store", Counting)
    for _ in range(2):
        rc, out, err = cli("query", "select count(*) as n, count(distinct run_id) as runs from cases",
                           tmp_path / "fleet", "--format", "csv", "--cache", tmp_path / "cache")
        assert rc == 0, err
        assert out.splitlines()[1] == f"{want},12"
    assert parses == [12, 0]


def test_a_running_runs_journal_appends_are_noticed(tmp_path):
    """A run going on appends its cases to a journal beside the file and leaves the file
    alone (hwbench.journal): the store sees each append (known answer: the case count
    grows by one per journalled case, and the frame equals load_results')."""
    from hwbench.journal import JournalWriter
    from hwbench.results import read_record, write_atomic

    d = tmp_path / "runs"
    d.mkdir()
    full = read_record(EXAMPLES / "smoke-cpu-amd-epyc-2cores.json")
    path = d / "run.json"
    running = full.model_copy(update={"status": "running", "cases": list(full.cases[:3])})
    write_atomic(path, running)
    w = JournalWriter(path, running)
    store = Store(tmp_path / "cache")
    assert len(cases_frame(store, store.entries([d]))) == 3
    for n, case in enumerate(full.cases[3:5], start=4):
        w.case(case)
        again = Store(tmp_path / "cache")
        frame = cases_frame(again, again.entries([d]))
        assert len(frame) == n
        pd.testing.assert_frame_equal(frame, load_results([d]))
    w.close()
