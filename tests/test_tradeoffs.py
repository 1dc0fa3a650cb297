"""Trade-off analyses on constructed frames with known answers, and their CLI views."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwbench.analysis import tradeoffs as tr
from hwbench.analysis.derive import to_frame
from conftest import ROOT, hwbench

SMOKE = ROOT / "results" / "examples" / "smoke-cpu-amd-epyc-2cores.json"


def frame(rows: list[dict]) -> pd.DataFrame:
    """Rows with the results schema (every column, typed), ok unless said otherwise."""
    base = {"status": "ok", "hostname": "h", "device_name": "cpu0", "run_id": "r", "suite": "s", "mode": "infer",
            "precision": "fp32", "backend": "eager", "variant": "none", "device": "cpu", "family": "mlp",
            "size": "tiny", "model": "mlp:tiny", "batch_size": 1}
    out = []
    for i, r in enumerate(rows):
        row = {**base, **r}
        row.setdefault("model", f"{row['family']}:{row['size']}")
        row.setdefault("case_id", f"c{i}")
        out.append(row)
    return to_frame(out)


# ------------------------------------------------------------------- Pareto
def test_pareto_two_metrics_known_front():
    # (throughput max, energy min): a, b, c trade off; d is dominated by b; e has no energy
    df = frame([
        {"case_id": "a", "throughput_samples_per_s": 100.0, "energy_per_sample_j": 1.0},
        {"case_id": "b", "throughput_samples_per_s": 200.0, "energy_per_sample_j": 2.0},
        {"case_id": "c", "throughput_samples_per_s": 300.0, "energy_per_sample_j": 5.0},
        {"case_id": "d", "throughput_samples_per_s": 150.0, "energy_per_sample_j": 3.0},
        {"case_id": "e", "throughput_samples_per_s": 999.0},
        {"case_id": "f", "throughput_samples_per_s": 50.0, "energy_per_sample_j": 0.1, "status": "failed"},
    ])
    obj = {"throughput_samples_per_s": "max", "energy_per_sample_j": "min"}
    assert list(df["case_id"][tr.pareto_mask(df, obj)]) == ["a", "b", "c", "f"]
    assert list(tr.pareto_front(df, obj)["case_id"]) == ["c", "b", "a"]  # ok only, best throughput first


def test_pareto_three_metrics_and_ties():
    df = frame([
        {"case_id": "fast_inexact", "throughput_samples_per_s": 300.0, "energy_per_sample_j": 1.0, "rel_l2_error": 0.1},
        {"case_id": "slow_exact", "throughput_samples_per_s": 100.0, "energy_per_sample_j": 2.0, "rel_l2_error": 0.0},
        {"case_id": "dominated", "throughput_samples_per_s": 100.0, "energy_per_sample_j": 2.0, "rel_l2_error": 0.2},
        {"case_id": "twin", "throughput_samples_per_s": 300.0, "energy_per_sample_j": 1.0, "rel_l2_error": 0.1},
    ])
    two = tr.pareto_mask(df, {"throughput_samples_per_s": "max", "energy_per_sample_j": "min"})
    three = tr.pareto_mask(df, {"throughput_samples_per_s": "max", "energy_per_sample_j": "min", "rel_l2_error": "min"})
    assert list(df["case_id"][two]) == ["fast_inexact", "twin"]  # equal points both stay
    assert list(df["case_id"][three]) == ["fast_inexact", "slow_exact", "twin"]
    with pytest.raises(ValueError):
        tr.pareto_mask(df, {"throughput_samples_per_s": "up"})


def test_pareto_matches_brute_force_on_random_points():
    rng = np.random.default_rng(0)
    x, y = rng.random(60), rng.random(60)
    df = frame([{"throughput_samples_per_s": a, "energy_per_sample_j": b} for a, b in zip(x, y)])
    mask = tr.pareto_mask(df, {"throughput_samples_per_s": "max", "energy_per_sample_j": "min"}).to_numpy()
    want = [not any(x[j] >= x[i] and y[j] <= y[i] and (x[j] > x[i] or y[j] < y[i]) for j in range(60))
            for i in range(60)]
    assert mask.tolist() == want


# ---------------------------------------------------------- batch scaling
def test_knee_where_throughput_stops_growing():
    bs = [1, 2, 4, 8, 16, 32, 64]
    assert tr.knee(bs, [100 * min(b, 16) for b in bs]) == 16  # linear to 16, flat after
    assert tr.knee(bs, [100 * b for b in bs]) is None  # still growing at the largest batch
    assert tr.knee([1, 2, 4, 8], [100, 200, 205, 400]) is None  # a plateau then growth: not a knee
    assert tr.knee([1, 4, 16], [100, 400, 420]) == 4  # gain per doubling, not per step
    assert tr.knee([8], [1.0]) is None


def test_batch_scaling_curves_and_knees():
    rows = [{"batch_size": b, "precision": p, "case_id": f"{p}/bs{b}",
             "throughput_samples_per_s": 10.0 * min(b, cap), "latency_ms_p50": b / (10.0 * min(b, cap)) * 1e3}
            for p, cap in (("fp32", 4), ("bf16", 64)) for b in (16, 1, 2, 4, 8)]
    sc = tr.batch_scaling(frame(rows))
    fp32 = sc[sc["precision"] == "fp32"]
    assert fp32["batch_size"].tolist() == [1, 2, 4, 8, 16]
    assert fp32["knee_batch_size"].unique().tolist() == [4.0]
    assert fp32.loc[fp32["at_knee"], "batch_size"].tolist() == [4]
    assert fp32["gain_per_doubling"].round(6).tolist()[1:] == [1.0, 1.0, 0.0, 0.0]
    assert fp32["scaling_efficiency"].round(6).tolist() == [1.0, 1.0, 1.0, 0.5, 0.25]
    bf16 = sc[sc["precision"] == "bf16"]
    assert bf16["knee_batch_size"].isna().all() and not bf16["at_knee"].any()
    knees = tr.batch_knees(sc).set_index("precision")
    assert knees.loc["fp32", "best_batch_size"] == 4 and knees.loc["fp32", "batch_sizes"] == "1,2,4,8,16"


# ---------------------------------------------------------- size scaling
def test_power_law_recovers_exponent():
    x = np.array([1e5, 1e6, 1e7, 1e8])
    fit = tr.power_law(x, 3.0 * x ** -0.7)
    assert fit["exponent"] == pytest.approx(-0.7) and fit["coefficient"] == pytest.approx(3.0)
    assert fit["r2"] == pytest.approx(1.0) and fit["n_points"] == 4
    assert math.isnan(tr.power_law([5, 5], [1, 2])["exponent"])  # one distinct size: no fit
    two = tr.power_law([10, 1000], [1.0, 100.0])
    assert two["exponent"] == pytest.approx(1.0) and math.isnan(two["exponent_stderr"])


def test_size_scaling_per_family_workload():
    params = {"s": 1e6, "m": 8e6, "l": 64e6}
    rows = [{"family": "dec", "size": s, "params": int(n), "throughput_samples_per_s": 5e6 * n ** -1.0,
             "energy_per_sample_j": 1e-9 * n, "host_rss_peak_bytes": int(100 * n)} for s, n in params.items()]
    rows.append({"family": "dec", "size": "s", "params": 1_000_000, "batch_size": 8,  # another batch: no fit alone
                 "throughput_samples_per_s": 1.0})
    fits = tr.size_scaling(frame(rows)).set_index("metric")
    assert fits.loc["throughput_samples_per_s", "exponent"] == pytest.approx(-1.0)
    assert fits.loc["energy_per_sample_j", "exponent"] == pytest.approx(1.0)
    assert fits.loc["host_rss_peak_bytes", "exponent"] == pytest.approx(1.0)
    assert fits.loc["throughput_samples_per_s", "sizes"] == "s,m,l"
    assert len(fits) == 3  # memory_peak_bytes is empty


# ---------------------------------------------------------- speed-up
def test_speedup_against_fp32_eager_with_accuracy_cost():
    rows = [
        {"case_id": "fp32", "throughput_samples_per_s": 100.0, "energy_per_sample_j": 2.0},
        {"case_id": "bf16", "precision": "bf16", "throughput_samples_per_s": 250.0, "energy_per_sample_j": 1.0,
         "rel_l2_error": 0.004, "max_abs_error": 0.01},
        {"case_id": "compile", "backend": "compile", "throughput_samples_per_s": 150.0, "rel_l2_error": 1e-6},
        {"case_id": "bs8", "batch_size": 8, "precision": "bf16", "throughput_samples_per_s": 900.0},  # no baseline
        {"case_id": "other-host", "hostname": "g", "precision": "bf16", "throughput_samples_per_s": 1.0},
    ]
    sp = tr.speedup_table(frame(rows)).set_index("case_id")
    assert set(sp.index) == {"fp32", "bf16", "compile"}
    assert sp.loc["bf16", "speedup"] == pytest.approx(2.5) and sp.loc["compile", "speedup"] == pytest.approx(1.5)
    assert sp.loc["bf16", "energy_ratio"] == pytest.approx(0.5)
    assert sp.loc["bf16", "rel_l2_error"] == 0.004 and sp.loc["fp32", "rel_l2_error"] == 0.0
    lat = tr.speedup_table(frame([{"case_id": "a", "latency_ms_p50": 4.0},
                                  {"case_id": "b", "precision": "bf16", "latency_ms_p50": 1.0}]), metric="latency_ms_p50")
    assert lat.set_index("case_id").loc["b", "speedup"] == pytest.approx(4.0)  # lower latency = faster
    summ = tr.speedup_summary(tr.speedup_table(frame([
        {"case_id": "a1", "throughput_samples_per_s": 1.0},
        {"case_id": "b1", "precision": "bf16", "throughput_samples_per_s": 2.0, "rel_l2_error": 0.1},
        {"case_id": "a2", "batch_size": 2, "throughput_samples_per_s": 1.0},
        {"case_id": "b2", "batch_size": 2, "precision": "bf16", "throughput_samples_per_s": 8.0, "rel_l2_error": 0.3},
    ]))).set_index("precision")
    assert summ.loc["bf16", "speedup_geomean"] == pytest.approx(4.0) and summ.loc["bf16", "n_cases"] == 2
    assert summ.loc["bf16", "rel_l2_error_max"] == 0.3


def test_machine_summary_counts_status_and_flags():
    df = frame([{"quality_flags": ["noisy"]}, {"quality_flags": ["noisy", "throttled"]},
                {"status": "skipped", "reason": "no GPU"}, {"status": "oom", "hostname": "g"}])
    m = tr.machine_summary(df).set_index("hostname")
    assert m.loc["h", ["cases", "ok", "skipped", "not_ok"]].tolist() == [3, 2, 1, 0]
    assert m.loc["h", "quality_flags"] == "noisy 2, throttled 1" and m.loc["g", "not_ok"] == 1
    assert tr.not_ok_cases(df)["reason"].tolist()[0] == "no GPU"


# ---------------------------------------------------------- the CLI views
@pytest.mark.parametrize("view", ["tradeoffs", "scaling", "pareto"])
def test_report_views_on_the_smoke_results(view):
    r = hwbench("report", SMOKE, "--view", view, env={"COLUMNS": "100"})
    assert r.returncode == 0, r.stderr
    assert max(map(len, r.stdout.splitlines())) <= 100
    md = hwbench("report", SMOKE, "--view", view, "--format", "markdown")
    assert md.returncode == 0 and md.stdout.startswith("### ") and "|---" in md.stdout.replace(":---", "---")
    want = {"tradeoffs": "bf16", "scaling": "llama", "pareto": "mlp:tiny/infer/bs8/fp32/eager/cpu"}[view]
    assert want in md.stdout


def test_report_view_csv_and_option_conflicts(tmp_path):
    r = hwbench("report", SMOKE, "--view", "tradeoffs", "--format", "csv")
    assert r.returncode == 0 and r.stdout.startswith("run_id,hostname,mode,precision")
    bad = hwbench("report", SMOKE, "--view", "pareto", "--columns", "mfu")
    assert bad.returncode == 2 and "--view" in bad.stderr
    bad = hwbench("report", SMOKE, "--html", tmp_path / "x.html", "--view", "pareto")
    assert bad.returncode == 2 and "--html" in bad.stderr


def test_report_section_as_text_and_its_option_conflicts():
    md = hwbench("report", SMOKE, "--section", "models", "--format", "markdown")
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith("### Per model / mlp:tiny: Throughput against batch size")
    bad = hwbench("report", SMOKE, "--section", "models", "--view", "pareto")
    assert bad.returncode == 2 and "--view and --section" in bad.stderr


# ------------------------------------------------------------------- runs are never pooled
def two_runs(tmp_path):
    """A folder with two runs of one machine, the second twice as slow: in each run
    bf16 takes 0.7 x fp32's time (speed-up 1/0.7), at batch 1 and 2."""
    from hwbench.results import write_atomic
    from test_dataframe import _ident, ok_case, run_record

    for run, slow, when in (("runaaaa1", 1.0, "2026-11-25T10:00:00+00:00"), ("runbbbb2", 2.0, "2026-11-26T10:00:00+00:00")):
        cases = [ok_case(_ident(bs=b, precision=p), ms * b * slow)
                 for b in (1, 2) for p, ms in (("fp32", 10.0), ("bf16", 7.0))]
        write_atomic(tmp_path / f"{run}.json", run_record(cases, run_id=run, created=when))
    return tmp_path


def test_each_runs_speedups_are_its_own(tmp_path):
    from hwbench import load_results

    df = load_results(two_runs(tmp_path))
    sp = tr.speedup_table(df)
    assert len(sp) == 8  # 4 cases per run, each against its own baseline (the baselines at 1)
    for r in sp.to_dict("records"):
        base = df[(df["case_id"] == r["baseline_case_id"]) & (df["run_id"] == r["run_id"])]
        assert r["baseline_throughput_samples_per_s"] == base["throughput_samples_per_s"].iloc[0]
    bf16 = sp[sp["precision"] == "bf16"]
    assert bf16["speedup"].to_numpy() == pytest.approx([1 / 0.7] * 4)  # never 0.35 (the slow run's fp32 x 2)
    summ = tr.speedup_summary(sp).set_index(["run_id", "precision"])
    assert summ.loc[("runaaaa1", "bf16"), "speedup_geomean"] == pytest.approx(1 / 0.7)
    assert summ.loc[("runbbbb2", "bf16"), "speedup_geomean"] == pytest.approx(1 / 0.7)
    assert (summ["n_cases"] == 2).all()
    # one batch curve per run and precision, 2 points each; one Pareto front per run
    curves = tr.batch_scaling(df)
    assert len(curves) == 8 and (curves["n_points"] == 2).all()
    fronts = tr.pareto_fronts(df)
    assert fronts.groupby("run_id")["on_front_2d"].size().tolist() == [4, 4]


def test_a_folder_report_of_two_runs_keeps_each_runs_speedups_through_the_cli(tmp_path):
    folder = two_runs(tmp_path / "res")
    r = hwbench("report", folder, "--view", "tradeoffs", "--format", "csv")
    assert r.returncode == 0, r.stderr
    got = pd.read_csv(io.StringIO(r.stdout))
    bf16 = got[got["precision"] == "bf16"].set_index("run_id")
    assert bf16["speedup_geomean"].to_numpy() == pytest.approx([1 / 0.7] * 2)
    t = hwbench("report", folder, "--view", "tradeoffs", env={"COLUMNS": "80"})
    assert t.returncode == 0, t.stderr
    assert all(len(ln) <= 80 for ln in t.stdout.splitlines()), t.stdout
    flat = " ".join(t.stdout.split())
    assert "each of the 2 runs on its own" in flat and "runaaaa1" in t.stdout and "runbbbb2" in t.stdout
    assert "1.43×" in t.stdout and "0.714×" not in t.stdout and "0.35" not in t.stdout
    out = tmp_path / "r.html"
    h = hwbench("report", folder, "--html", out)
    assert h.returncode == 0, h.stderr
    page = out.read_text()
    assert "analysed each on its own" in page
    assert page.count(">1.43×<") >= 2 and ">0.714×<" not in page


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 10.0), st.floats(0.2, 5.0)), min_size=1, max_size=4))
def test_property_every_runs_speedup_is_its_own(runs):
    """Any number of runs of one machine, each with its own speed (``slow``) and its own
    bf16 effect (``gain``): every bf16 speed-up equals its own run's gain, whatever the
    other runs measured."""
    rows = []
    for i, (slow, gain) in enumerate(runs):
        for p, t in (("fp32", 100.0 / slow), ("bf16", 100.0 / slow * gain)):
            rows.append({"run_id": f"run{i}", "case_id": f"mlp:tiny/infer/bs1/{p}", "precision": p,
                         "throughput_samples_per_s": t})
    sp = tr.speedup_table(frame(rows))
    got = sp[sp["precision"] == "bf16"].set_index("run_id")["speedup"]
    assert len(got) == len(runs)
    for i, (_, gain) in enumerate(runs):
        assert got[f"run{i}"] == pytest.approx(gain)
