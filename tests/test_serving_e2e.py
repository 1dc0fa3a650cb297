"""Serving end to end (full tier): the shipped ``serving-tiny`` suite through the real
CLI once -- LoadGen scenarios in real workers, generation under Poisson load -- then
its results file, LoadGen's own logs beside it, and ``hwbench procure`` on it.

Nothing here asserts a timing ratio (the machine is shared): the checks are that the
cases ran, that hwbench's p99 of each Server load point is LoadGen's own (both from one
run), that it can be recomputed from the per-query latencies kept in the file, that
capacity was searched with its rule, and that procure prices the capacity rows."""

import math
import re

import pytest

from conftest import hwbench

PRICES = """
[[machine]]
match = "*"
usd_per_hour = 3.6
source = "test rate"
date = 2026-11-01
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    out = tmp_path_factory.mktemp("serving")
    r = hwbench("run", "serving-tiny", "--out", out, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    (path,) = out.glob("serving-tiny-*.json")
    from hwbench import load_results
    from hwbench.results import read_record

    return path, load_results(path).set_index("case_id"), read_record(path)


def test_every_case_ran_and_names_its_loadgen_logs(served):
    path, df, rec = served
    assert set(df["status"]) == {"ok"}, df["reason"].dropna().tolist()
    assert set(df["scenario"].dropna()) == {"offline", "server", "generate"}
    for cid, row in df[df["scenario"].isin(["offline", "server"])].iterrows():
        log = path.parent / row["loadgen_log"]
        assert not row["loadgen_log"].startswith("/") and (log / "mlperf_log_summary.txt").is_file(), cid
        assert (log / "mlperf_log_detail.txt").is_file()


def test_server_p99_is_loadgens_and_recomputes_from_the_file(served):
    path, df, rec = served
    from hwbench.serving.slo import percentile_lg
    from hwbench.serving.sut import parse_summary

    checked = 0
    for c in rec.cases:
        s = c.measurement.serving if c.measurement else None
        if s is None or s.scenario != "server":
            continue
        for p in s.points:
            summary = parse_summary((path.parent / p.loadgen_log / "mlperf_log_summary.txt").read_text())
            theirs = int(summary["99.00 percentile latency (ns)"]) / 1e6
            ours = percentile_lg([x * 1e3 for x in p.latencies_s], 99)
            assert abs(ours - theirs) <= 0.01 * theirs, (c.case_id, ours, theirs)
            checked += 1
        row = df.loc[c.case_id]
        assert row["loadgen_latency_ms_p99"] == pytest.approx(row["latency_ms_p99"], rel=0.01)
    assert checked >= 3


def test_capacity_is_searched_and_the_listed_point_judged(served):
    path, df, rec = served
    for model in ("mlp:tiny", "encoder:tiny"):
        row = df.loc[f"{model}/infer/bs16/{'seq32/' if model == 'encoder:tiny' else ''}fp32/eager/cpu/server"]
        assert row["capacity_rule"].startswith(("converged", "stopped", "the SLO is missed")), row["capacity_rule"]
        if not math.isnan(row["capacity_qps_at_slo"]):
            assert bool(row["slo_met"]) and row["offered_qps"] == row["capacity_qps_at_slo"]
            assert row["latency_ms_p99"] <= 50
    listed = df.loc["encoder:tiny/infer/bs16/seq32/fp32/eager/cpu/server@100qps"]
    assert listed["offered_qps"] == 100 and listed["slo_met"] is not None
    assert listed["slo_met"] == (listed["latency_ms_p99"] <= 50)
    gen = df.loc["llama:tiny/generate/bs8/seq32+gen16/fp32/eager/cpu/poisson@5rps"]
    assert gen["ttft_ms_p99"] > 0 and gen["tpot_ms_p99"] > 0 and gen["queries"] >= 1
    served_gen = next(c.measurement.serving for c in rec.cases if c.case_id == gen.name)
    assert served_gen.decode_batching == "batched"  # one decode forward per iteration (slot KV cache)
    assert 1 <= served_gen.points[0].mean_batch <= 8


def test_procure_prices_the_capacity_at_the_slo(served, tmp_path):
    path, df, rec = served
    prices = tmp_path / "p.toml"
    prices.write_text(PRICES)
    r = hwbench("procure", path, "--prices", prices, "--format", "csv")
    assert r.returncode == 0, r.stderr
    import io

    import pandas as pd

    frame = pd.read_csv(io.StringIO(r.stdout)).set_index("case_id")
    priced = frame[frame["priced_at_slo"] == True]  # noqa: E712
    for cid, row in priced.iterrows():
        # $3.6/h: 1e6 requests at capacity q take 1e6 / q s = 1e6 / q / 3600 h
        assert row["cost_usd_per_1m_requests_at_slo"] == pytest.approx(3.6 * 1e6 / (df.loc[cid, "capacity_qps_at_slo"] * 3600))
    caps = df["capacity_qps_at_slo"].dropna()
    assert len(priced) == len(df[df["offered_qps"] == df["capacity_qps_at_slo"]]) and len(caps)
    text = hwbench("procure", path, "--prices", prices)
    assert text.returncode == 0 and "Serving at the SLO" in text.stdout
    assert all(len(ln) <= 80 for ln in text.stdout.splitlines())
    assert re.search(r"USD/1M req", text.stdout)


def test_serving_report_view_and_html(served, tmp_path):
    path, df, rec = served
    r = hwbench("report", path, "--view", "serving", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    assert "latency vs offered load" in r.stdout and "fixed-batch throughput beside serving capacity" in r.stdout
    assert all(len(ln) <= 80 for ln in r.stdout.splitlines())
    html = tmp_path / "r.html"
    r = hwbench("report", path, "--html", html)
    assert r.returncode == 0, r.stderr
    text = html.read_text()
    assert "Serving under load" in text and 'aria-label="Latency against offered load per workload"' in text
