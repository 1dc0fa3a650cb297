"""Reports for humans: numbers with units, tables that fit any width, warnings counted,
several runs told apart (terminal, markdown, CSV)."""

import io
import json

import pytest
from rich.console import Console

import hwbench
from hwbench.analysis.derive import record_rows, to_frame
from hwbench.records import Energy, Flag
from hwbench.report import format as fm
from hwbench.report.fit import Column, abbreviate_ids, cut, fit, output_width
from hwbench.report.table import flag_summary, render_report
from hwbench.results import read_record, write_atomic
from conftest import ROOT, hwbench as cli
from test_dataframe import _ident, ok_case, run_record, skipped_case

EXAMPLE = ROOT / "results" / "examples" / "smoke-cpu-amd-epyc-2cores.json"


# ------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("ms,text", [(0.0000421, "42.1 ns"), (0.0421, "42.1 µs"), (0.999, "999 µs"), (0.99996, "1.00 ms"),
                                     (4.2, "4.20 ms"), (123.4, "123 ms"), (1234.5, "1.23 s"), (None, ""),
                                     (float("nan"), "")])
def test_latency_has_adaptive_units_and_3_significant_digits(ms, text):
    assert fm.duration_ms(ms) == text


def test_numbers_for_humans():
    assert [fm.rate(x) for x in (0.555, 42.0, 999.4, 55940.0, 306173.0, 2.5e6)] == \
        ["0.555", "42.0", "999", "55.9k", "306k", "2.50M"]
    assert fm.percent(0.1234) == "12.3%" and fm.percent(0.00042) == "0.0420%" and fm.percent(1.0) == "100%"
    assert fm.flops(0.002837, "cpu") == "2.84 GFLOP/s" and fm.flops(312.4, "cuda:0") == "312 TFLOP/s"
    assert fm.energy_j(0.000884) == "884 µJ" and fm.energy_j(0.0321) == "32.1 mJ" and fm.energy_j(2.5) == "2.50 J"
    assert fm.nbytes(24 * 2**20) == "24.0 MiB" and fm.nbytes(80 * 2**30) == "80.0 GiB" and fm.nbytes(512) == "512 B"
    assert fm.count(1_557_611_200) == "1.56 B" and fm.count(109_483_778) == "109 M" and fm.count(26122) == "26.1 K"
    assert "e+" not in "".join(fm.rate(10.0**k) for k in range(-3, 10))


# -------------------------------------------------------------------------- fitting
def test_case_ids_lose_only_what_every_row_shares():
    ids = ["mlp:tiny/infer/bs1/fp32/eager/cpu", "cnn:tiny/train/bs8/img64/fp32/eager/cpu",
           "mlp:tiny/infer/bs1/bf16/eager/cpu"]
    short, common = abbreviate_ids(ids)
    assert short == ["mlp/infer/bs1/fp32", "cnn/train/bs8/img64/fp32", "mlp/infer/bs1/bf16"]
    assert common == ["tiny", "eager", "cpu"]
    assert abbreviate_ids(ids[:1]) == (ids[:1], [])  # a single case keeps its whole id


def test_fit_drops_whole_columns_never_cuts_numbers():
    rows = [{"k": f"case-{i}", "a": f"{i}.00 ms", "b": "12.3k", "c": "x" * 30} for i in range(3)]
    cols = [Column("k", "case", str, priority=0, align="left"), Column("a", "p50", str, priority=0),
            Column("b", "samples/s", str, priority=1), Column("c", "reason", str, priority=2, align="left", shrink=True)]
    wide = fit(rows, cols, 200)
    assert wide.hidden == [] and "x" * 30 in wide.lines[2]
    narrow = fit(rows, cols, 40)
    assert all(len(line) <= 40 for line in narrow.lines) and "12.3k" in narrow.lines[2] and "…" in narrow.lines[2]
    tiny = fit(rows, cols, 24)
    assert tiny.hidden == ["samples/s", "reason"] and all("ms" in line for line in tiny.lines[2:])
    c = cut("mlp:tiny/infer/bs1/fp32/eager/cpu", 15, middle=True)
    assert len(c) == 15 and c.startswith("mlp:ti") and c.endswith("ger/cpu") and "…" in c


def test_pipes_get_columns_or_120(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert output_width(io.StringIO()) == 120
    monkeypatch.setenv("COLUMNS", "80")
    assert output_width(io.StringIO()) == 80


# -------------------------------------------------------------------- the summary
def _record():
    cases = []
    for p in ("fp32", "bf16"):
        for b in (1, 8, 64):
            cases.append(ok_case(_ident("encoder:tiny", "train", b, p, seq_len=32), 0.05 * b + 0.01,
                                 energy=Energy(energy_j=0.1 * b, energy_source="estimated", energy_window_s=0.2),
                                 flags=[Flag(flag="energy_estimated", detail="not measured")]))
    cases.append(ok_case(_ident("decoder:tiny", "generate", 4, "fp32", seq_len=32, gen_tokens=16), 80.0))
    cases.append(skipped_case(_ident(precision="fp16"), reason="fp16 training on CPU is refused"))
    failed = skipped_case(_ident(precision="bf16", bs=8)).model_copy(
        update={"status": "failed", "reason": "RuntimeError: [enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator"})
    return run_record(cases + [failed])


@pytest.mark.parametrize("width", [80, 120, 200])
def test_summary_shows_every_case_p50_and_throughput_at_any_width(width, tmp_path):
    from hwbench.commands.run import print_summary

    rec = _record()
    buf = io.StringIO()
    con = Console(file=buf, width=width, highlight=False)
    print_summary(con, rec, tmp_path / "r.json")
    out = buf.getvalue()
    lines = out.splitlines()
    assert max(map(len, lines)) <= width, "\n".join(line for line in lines if len(line) > width)
    df = to_frame(record_rows(rec))
    for r in df[df["status"] == "ok"].itertuples():
        row = next(line for line in lines if fm.duration_ms(r.latency_ms_p50) in line and
                   fm.rate(r.throughput_samples_per_s) in line)
        assert row
    assert "failed" in out and "skipped" in out and "cases: ok 7, skipped 1, failed 1" in out
    assert "~" in out and "estimated energy" in out  # an estimate never reads as a measurement
    assert "energy_estimated" not in out  # a machine fact, said before the run, not per case


def test_flag_summary_is_a_handful_of_lines_naming_the_worst():
    rec = run_record([ok_case(_ident(bs=b), 1.0, flags=[Flag(flag="energy_window_short", detail="0.05 s window")])
                      for b in range(1, 33)])
    df = to_frame(record_rows(rec))
    df["quality_flags"] = [[*f, "noisy"] for f in df["quality_flags"]]
    df["latency_iqr_rel"] = [i / 10 for i in range(32)]
    lines = flag_summary(df, 80)
    assert len(lines) <= 6 and all(len(line) <= 80 for line in lines)
    i = next(k for k, line in enumerate(lines) if "noisy in 32 of 32 cases" in line)
    assert "bs32" in lines[i + 1] and "310%" in lines[i + 1]  # the worst first
    k = next(k for k, line in enumerate(lines) if "energy_window_short in 32 of 32 cases, e.g. " in line)
    assert "0.05 s window" in lines[k + 1]


# ---------------------------------------------------------------- several runs
@pytest.fixture
def two_hosts(tmp_path):
    """Two runs of one suite: a real results file and a copy from another host."""
    rec = read_record(EXAMPLE)
    seg = rec.segments[0]
    other = rec.model_copy(update={
        "run_id": "b2b2b2b2b2b2", "status": "interrupted", "created": "2026-12-01T08:00:00+00:00",
        "segments": [seg.model_copy(update={"environment": seg.environment.model_copy(update={"hostname": "otherhost"})})],
        "cases": rec.cases[:5],
    })
    write_atomic(tmp_path / "a" / "one.json", rec)
    write_atomic(tmp_path / "b" / "two.json", other)
    return tmp_path / "a" / "one.json", tmp_path / "b" / "two.json", rec.environment.hostname


def test_report_over_two_hosts_tells_the_runs_apart(two_hosts):
    a, b, host = two_hosts
    table = cli("report", a, b, env={"COLUMNS": "80"})
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    assert lines[0].startswith(host) and any(line.startswith("otherhost") for line in lines)
    assert "INTERRUPTED (incomplete run)" in table.stdout and "b2b2b2b2" in table.stdout
    md = cli("report", a, b, "--format", "markdown").stdout
    assert f"### {host}" in md and "### otherhost" in md and "INTERRUPTED" in md
    assert md.count("| mlp:tiny/infer/bs1/fp32/eager/cpu |") == 2
    csv = cli("report", a, b, "--format", "csv").stdout.splitlines()
    header = csv[0].split(",")
    assert {"hostname", "run_id", "created", "run_status", "case_id", "latency_ms_p50", "throughput_samples_per_s",
            "quality_flags"} <= set(header)
    hosts = {line.split(",")[header.index("hostname")] for line in csv[1:]}
    assert hosts == {host, "otherhost"}
    js = json.loads(cli("report", a, b, "--format", "json").stdout)
    assert {r["run_id"] for r in js} == {"b2b2b2b2b2b2", read_record(a).run_id}
    assert isinstance(js[0]["quality_flags"], list) and isinstance(js[0]["latency_ms_p50"], float)


def test_report_table_width_options(two_hosts, tmp_path):
    a, _, _ = two_hosts
    df = hwbench.load_results(a)
    narrow = render_report(df, 80)
    wide = render_report(df, 80, wide=True)
    assert max(map(len, narrow)) <= 80 and max(map(len, wide)) > 80 and "not shown for width" in narrow[-1]
    picked = cli("report", a, "--columns", "latency_ms_p99,cpu_util_pct_mean", env={"COLUMNS": "80"})
    assert picked.returncode == 0 and "latency_ms_p99" in picked.stdout and "%" in picked.stdout
    bad = cli("report", a, "--columns", "latency_p99")
    assert bad.returncode == 2 and "no column 'latency_p99'; did you mean latency_ms_p99" in bad.stderr
    pytest.importorskip("pyarrow")
    pq = cli("report", a, "--format", "parquet", "--output", tmp_path / "r.parquet")
    assert pq.returncode == 0, pq.stderr
    import pandas as pd

    assert len(pd.read_parquet(tmp_path / "r.parquet")) == len(df)
    assert cli("report", a, "--format", "parquet").returncode == 2  # needs --output


def test_errors_name_the_real_cause():
    r = cli("report", ROOT / "hwbench" / "suites" / "smoke.toml")
    assert r.returncode == 2 and "smoke.toml: not a results file" in r.stderr and r.stderr.count("\n") == 1
    bare = cli()
    assert bare.returncode == 0 and bare.stdout.count("Usage: hwbench") == 1 and not bare.stderr


def test_list_models_and_env_read_at_a_glance():
    m = cli("list", "models", env={"COLUMNS": "80"})
    assert m.returncode == 0 and max(map(len, m.stdout.splitlines())) <= 80
    xl = next(line for line in m.stdout.splitlines() if line.startswith("decoder:xl"))
    assert "1.56 B" in xl
    rows = json.loads(cli("list", "models", "--format", "json").stdout)
    assert {"name", "family", "size", "params", "modes", "default_shape", "description"} <= set(rows[0])
    assert cli("list", "models", "--format", "csv").stdout.startswith("name,family,size,params")
    e = cli("env", env={"COLUMNS": "80"})
    assert e.returncode == 0 and "cpu_freq_max_mhz" in e.stdout and max(map(len, e.stdout.splitlines())) <= 80
    clock = next(line for line in e.stdout.splitlines() if line.startswith("cpu_freq_max_mhz"))
    assert "MFU" in clock  # says what the clock is used for, or why CPU MFU stays empty
