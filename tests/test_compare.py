"""hwbench compare: the statistics (ratio of medians, bootstrap interval, Mann-Whitney U,
Benjamini-Hochberg / Holm), verdicts, environment differences, exit codes, renderers,
a simulated false-alarm rate, and process-isolated repeats in the engine. Records are
built in memory; only the engine test and the CLI test run real workers."""

import json

import numpy as np
import pytest

from hwbench.analysis import compare as cmp
from hwbench.records import (CaseIdentity, CaseResult, Energy, Environment, Facts, Measurement, RunRecord, Segment,
                             SuiteRef)
from hwbench.results import write_atomic
from conftest import hwbench, run_suite


def cli(*args):
    """The command in this process (click's runner): (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from hwbench.cli import cli as group

    r = CliRunner().invoke(group, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def case(cid="mlp:tiny/infer/bs1/fp32/eager/cpu", times=None, status="ok", isolation="iteration", energy_j=None,
         device_name="cpu-model", reason=""):
    ok = status == "ok"
    model = cid.split("/")[0]
    return CaseResult(
        case_id=cid, status=status, reason=reason, device_name=device_name,
        case=CaseIdentity(model=model, mode="infer", batch_size=1, precision="fp32", backend="eager", device="cpu"),
        measurement=Measurement(raw_times_s=[list(r) for r in times], first_iter_s=0.01, warmup_s=0.02,
                                measured_s=float(sum(map(sum, times))), repeat_isolation=isolation) if ok else None,
        facts=Facts(params=10, flops_per_sample=100.0) if ok else None,
        energy=Energy(energy_j=energy_j, energy_source="estimated", energy_window_s=1.0) if ok and energy_j else None,
    )


def record(cases, run_id="r", created="2026-11-25T00:00:00+00:00", **env):
    environment = Environment(hostname=env.pop("hostname", "h"), cpu_model=env.pop("cpu_model", "cpu-model"), **env)
    return RunRecord(run_id=run_id, created=created, status="complete",
                     suite=SuiteRef(name="s", path="s.toml", hash="abc", resolved={}),
                     segments=[Segment(index=0, started=created, environment=environment)], cases=list(cases))


def draws(rng, median_ms, n, repeats=1, cv=0.05):
    """Raw times in seconds: lognormal around ``median_ms``."""
    return [list(median_ms / 1e3 * rng.lognormal(0, cv, n)) for _ in range(repeats)]


def repeat_draws(rng, median_ms, repeats=10, n=20, cv=0.05, drift=0.02):
    """Process-isolated repeats: each repeat has its own level (run-to-run drift)."""
    return [list(median_ms / 1e3 * rng.lognormal(rng.normal(0, drift), cv, n)) for _ in range(repeats)]


# ------------------------------------------------------------------ statistics
def test_min_p_value_and_minimum_samples():
    assert cmp.min_p_value(3, 3) == pytest.approx(0.1)  # 3 vs 3 repeats can never reach 0.05
    assert cmp.min_samples(0.05) == 4
    assert cmp.min_p_value(10, 10) < 0.05 / 1000  # repeats = 10 survives Holm over 1000 tests
    assert cmp.min_samples(0.05 / 100) == 8  # 2 / C(16, 8) = 1.6e-4


def test_ratio_of_medians_interval_covers_the_truth_and_is_seeded():
    rng = np.random.default_rng(1)
    a, b = rng.lognormal(0, 0.05, 200), 1.10 * rng.lognormal(0, 0.05, 200)
    r = cmp.ratio_of_medians(a, b, seed=3)
    assert r == cmp.ratio_of_medians(a, b, seed=3)
    assert r["ci_low"] < 1.10 < r["ci_high"] and r["ci_low"] < r["ratio"] < r["ci_high"]
    assert r["se_log"] > 0 and cmp.detectable_change(r["se_log"]) > 0
    same = cmp.ratio_of_medians([1.0, 1.0], [1.0, 1.0])
    assert same["ratio"] == same["ci_low"] == same["ci_high"] == 1.0


def test_holm_and_bh_adjustments():
    p = [0.01, 0.04, 0.03, 0.5]
    assert list(cmp.adjust(p, "holm")) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert list(cmp.adjust(p, "bh")) == pytest.approx([0.04, 0.0533333, 0.0533333, 0.5])


@pytest.mark.parametrize("change,ci,p,n,expect", [
    (0.20, (0.15, 0.25), 0.001, (10, 10), "regressed"),
    (-0.20, (-0.25, -0.15), 0.001, (10, 10), "improved"),
    (0.02, (0.01, 0.03), 0.001, (10, 10), "unchanged"),  # real but below the threshold
    (0.01, (-0.02, 0.03), 0.6, (10, 10), "unchanged"),  # the interval rules out 5 %
    (0.08, (-0.10, 0.30), 0.3, (10, 10), "inconclusive"),
    (0.30, (None, None), None, (1, 1), "regressed"),  # one value per side: the threshold alone
])
def test_verdict_rules(change, ci, p, n, expect):
    d = cmp.decide(change, ci, ci, p, threshold=0.05, alpha=0.05, n=n, per_run=n == (1, 1))
    assert d.verdict == expect


def test_higher_is_better_metrics_flip_direction():
    d = cmp.decide(-0.2, (None, None), (None, None), None, threshold=0.05, alpha=0.05, n=(1, 1), per_run=True,
                   higher_is_better=True)
    assert (d.verdict, d.rule) == ("regressed", "threshold")


def test_parse_metrics():
    ms = cmp.parse_metrics("energy_per_sample_j,memory_peak_bytes:2,throughput", 0.07)
    assert [m.name for m in ms] == ["latency_ms_p50", "energy_per_sample_j", "memory_peak_bytes"]
    assert [m.threshold for m in ms] == pytest.approx([0.07, 0.10, 0.02])
    from hwbench.errors import UserError

    with pytest.raises(UserError, match="unknown metric"):
        cmp.parse_metrics("bogus")


# ------------------------------------------------------------------ verdicts
def test_regression_improvement_failures_new_and_missing():
    rng = np.random.default_rng(0)
    ids = [f"mlp:tiny/infer/bs{i}/fp32/eager/cpu" for i in range(1, 8)]
    base = record([case(ids[0], repeat_draws(rng, 10), isolation="process"),
                   case(ids[1], repeat_draws(rng, 10), isolation="process"),
                   case(ids[2], repeat_draws(rng, 10), isolation="process"),
                   case(ids[3], repeat_draws(rng, 10), isolation="process"),
                   case(ids[4], repeat_draws(rng, 10), isolation="process"),
                   case(ids[5], status="failed", reason="boom")])
    new = record([case(ids[0], repeat_draws(rng, 13), isolation="process"),  # +30 %
                  case(ids[1], repeat_draws(rng, 7), isolation="process"),  # -30 %
                  case(ids[2], repeat_draws(rng, 10), isolation="process"),
                  case(ids[3], status="oom", reason="out of memory"),
                  case(ids[5], repeat_draws(rng, 10), isolation="process"),
                  case(ids[6], repeat_draws(rng, 10), isolation="process")])
    res = cmp.compare([base], [new])
    v = dict(zip(res.rows["case_id"], res.rows["verdict"]))
    assert v[ids[0]] == "regressed" and v[ids[1]] == "improved" and v[ids[2]] in ("unchanged", "inconclusive")
    assert v[ids[3]] == "failed" and v[ids[4]] == "missing" and v[ids[5]] == "new" and v[ids[6]] == "new"
    reg = dict(zip(res.rows["case_id"], res.rows["regression"]))
    assert reg[ids[0]] and reg[ids[3]] and not reg[ids[1]] and not reg[ids[4]]
    assert res.regressions == 2
    row = res.rows.set_index("case_id").loc[ids[0]]
    assert row["samples"] == "repeat" and row["n_baseline"] == 10
    assert row["ci_low"] < 0.3 < row["ci_high"] and row["throughput_change"] == pytest.approx(1 / (1 + row["change"]) - 1)
    assert list(res.rows["verdict"])[:2] == ["regressed", "failed"]  # worst first


def test_three_vs_three_repeats_fall_back_to_the_99_percent_interval():
    """Issue 19: 3 vs 3 repeats cannot reach p < 0.05, so a 2x slower case used to be
    "inconclusive" (exit 0). The fallback rule calls it regressed, naming the rule; a
    change that could be within the threshold stays inconclusive and says why."""
    rng = np.random.default_rng(0)
    cid = "mlp:tiny/infer/bs1/fp32/eager/cpu"
    res = cmp.compare([record([case(cid, repeat_draws(rng, 10, repeats=3), isolation="process")])],
                      [record([case(cid, repeat_draws(rng, 20, repeats=3), isolation="process")])])
    row = res.rows.iloc[0]
    assert (row["verdict"], row["rule"]) == ("regressed", "ci99") and row["ci99_low"] > 0.05
    assert "cannot reach p < 0.05" in row["note"] and "3 vs 3 repeats" in row["note"]
    res = cmp.compare([record([case(cid, repeat_draws(rng, 10, repeats=3), isolation="process")])],
                      [record([case(cid, repeat_draws(rng, 10.3, repeats=3), isolation="process")])])
    row = res.rows.iloc[0]
    assert row["verdict"] == "inconclusive" and "cannot reach p < 0.05; needs >= 4" in row["note"]


def test_iteration_units_say_their_verdicts_rest_on_iteration_noise():
    rng = np.random.default_rng(0)
    cid = "mlp:tiny/infer/bs1/fp32/eager/cpu"
    res = cmp.compare([record([case(cid, draws(rng, 10, 300))])], [record([case(cid, draws(rng, 10, 300))])])
    assert res.rows.iloc[0]["samples"] == "iteration"
    assert any("iteration noise only" in n for n in res.notes)


def test_metrics_without_samples_use_the_threshold_and_say_so():
    rng = np.random.default_rng(0)
    cid = "mlp:tiny/infer/bs1/fp32/eager/cpu"
    t = draws(rng, 10, 100)
    opts = cmp.Options(metrics=cmp.parse_metrics("energy_per_sample_j"))
    res = cmp.compare([record([case(cid, t, energy_j=1.0)])], [record([case(cid, t, energy_j=1.3)])], opts)
    row = res.rows.set_index("metric").loc["energy_per_sample_j"]
    assert row["verdict"] == "regressed" and "threshold only" in row["note"] and row["samples"] == "run"
    res = cmp.compare([record([case(cid, t, energy_j=1.0)])], [record([case(cid, t, energy_j=1.05)])], opts)
    assert res.rows.set_index("metric").loc["energy_per_sample_j", "verdict"] == "unchanged"  # energy: 10 %


def test_environment_differences_and_hardware():
    rng = np.random.default_rng(0)
    cid = "mlp:tiny/infer/bs1/fp32/eager/cpu"
    t = repeat_draws(rng, 10)
    a = record([case(cid, t, isolation="process")], torch_version="2.12", torch_num_threads=2)
    b = record([case(cid, t, isolation="process")], torch_version="2.13", torch_num_threads=1)
    res = cmp.compare([a], [b])
    diff = res.env.set_index("key")
    assert diff.loc["torch_version", "new"] == "2.13" and diff.loc["torch_num_threads", "baseline"] == "2"
    assert not res.hardware
    c = record([case(cid, t, isolation="process", device_name="other")], cpu_model="other-cpu")
    res = cmp.compare([a], [c])
    assert any("cpu_model" in h for h in res.hardware) and any("device" in h for h in res.hardware)


# ------------------------------------------------------------------ false alarms
@pytest.mark.slow
def test_simulated_null_sweeps_keep_the_false_alarm_rate():
    """Two runs of a 100-case sweep resampled from the same raw times (the null): with
    the threshold at 0 every significant difference is a false alarm. Benjamini-Hochberg
    at 5 % must keep the share of sweeps with any false alarm (= FDR under the complete
    null = FWER) near 5 %; without a correction nearly every sweep would raise one.
    With the default 5 % threshold no sweep raises one. Deterministic (seeded)."""
    rng = np.random.default_rng(20261125)
    n_cases, sweeps = 100, 30
    ids = [f"mlp:tiny/infer/bs{i}/fp32/eager/cpu" for i in range(n_cases)]
    # one pool of real-looking raw times per case: skewed, with outliers
    pools = [np.concatenate([rng.lognormal(np.log(1e-3 * (1 + i % 7)), 0.08, 180),
                             1e-3 * (1 + i % 7) * rng.uniform(1.3, 3.0, 20)]) for i in range(n_cases)]

    def run(run_id):
        return record([case(ids[i], [list(rng.choice(pools[i], 20)) for _ in range(10)], isolation="process")
                       for i in range(n_cases)], run_id=run_id)

    strict = cmp.Options(metrics=(cmp.Metric(cmp.LATENCY, "ms", threshold=0.0),), n_resamples=200)
    any_alarm = raw_alarms = default_alarms = 0
    for s in range(sweeps):
        res = cmp.compare([run(f"a{s}")], [run(f"b{s}")], strict)
        rows = res.rows
        any_alarm += bool(rows["verdict"].isin(["regressed", "improved"]).any())
        raw_alarms += int((rows["p_value"].astype(float) < 0.05).sum())
        # the verdicts the default 5 % threshold would give on the same numbers
        default_alarms += sum(cmp.judge({**r, "threshold": 0.05}, cmp.Metric(cmp.LATENCY, "ms"), r["p_adjusted"],
                                        len(rows)).verdict
                              in ("regressed", "improved") for r in rows.to_dict("records"))
    # P(X >= 5) for X ~ Binomial(30, 0.05) is 0.06; the Mann-Whitney test is valid, so
    # the raw rate is near 5 % (about 150 of the 3000 tests) -- the correction did the work
    assert any_alarm <= 4, any_alarm
    assert 60 <= raw_alarms <= 260, raw_alarms
    assert default_alarms == 0


def test_true_changes_are_found_among_many_null_cases():
    rng = np.random.default_rng(7)
    ids = [f"mlp:tiny/infer/bs{i}/fp32/eager/cpu" for i in range(100)]
    base = record([case(cid, repeat_draws(rng, 10), isolation="process") for cid in ids])
    new = record([case(cid, repeat_draws(rng, 12 if i < 5 else 10), isolation="process") for i, cid in enumerate(ids)])
    res = cmp.compare([base], [new], cmp.Options(n_resamples=200))
    regressed = set(res.rows.loc[res.rows["verdict"] == "regressed", "case_id"])
    assert regressed == set(ids[:5])


# ------------------------------------------------------------------ the command line
def _files(tmp_path, base_cases, new_cases, **env):
    write_atomic(tmp_path / "base.json", record(base_cases, run_id="base"))
    write_atomic(tmp_path / "new.json", record(new_cases, run_id="new", **env))
    return tmp_path / "base.json", tmp_path / "new.json"


@pytest.mark.e2e
def test_cli_exit_codes_formats_and_80_columns(tmp_path):
    rng = np.random.default_rng(0)
    long_id = "encoder:base/infer/bs8/seq128/fp32/eager/cpu"
    b, n = _files(tmp_path, [case(long_id, repeat_draws(rng, 10), isolation="process")],
                  [case(long_id, repeat_draws(rng, 15), isolation="process")], torch_version="2.13")
    r = hwbench("compare", b, n)  # the real console script, once
    assert r.returncode == 1, r.stderr
    assert "regressed    encoder:base/infer/bs8/seq128/fp32/eager/cpu" in r.stdout
    assert "torch_version: - -> 2.13" in r.stdout and " ms -> " in r.stdout
    assert max(map(len, r.stdout.splitlines())) <= 80, r.stdout
    code, out, _ = cli("compare", b, b)
    assert code == 0 and "no regression" in out
    code, out, _ = cli("compare", b, n, "--format", "markdown")
    assert code == 1 and "| regressed | `encoder:base/infer/bs8/seq128/fp32/eager/cpu`" in out
    code, out, _ = cli("compare", b, n, "--format", "json")
    js = json.loads(out)
    assert js["regressions"] == 1 and js["rows"][0]["verdict"] == "regressed"
    code, out, _ = cli("compare", b, n, "--format", "csv")
    assert "verdict" in out.splitlines()[0].split(",")
    assert cli("compare", n, b)[0] == 0  # an improvement passes ...
    assert cli("compare", n, b, "--fail-on", "improved")[0] == 1  # ... unless pinned
    assert cli("compare", b, n, "--threshold", "60")[0] == 0
    code, _, err = cli("compare", b, tmp_path / "nope.json")
    assert code == 2 and "nope.json" in err
    assert cli("compare", b, n, "--metric", "bogus")[0] == 2


def test_cli_refuses_different_hardware_with_exit_4(tmp_path):
    rng = np.random.default_rng(0)
    cid = "mlp:tiny/infer/bs1/fp32/eager/cpu"
    b, n = _files(tmp_path, [case(cid, repeat_draws(rng, 10), isolation="process")],
                  [case(cid, repeat_draws(rng, 10), isolation="process", device_name="x")], cpu_model="Other CPU")
    code, _, err = cli("compare", b, n)
    assert code == 4 and "not comparable" in err and "cpu_model" in err
    assert cli("compare", b, n, "--allow-different-hardware")[0] == 0


# ------------------------------------------------------------------ the engine
def test_three_repeats_run_in_three_processes_and_merge(tmp_path):
    body = '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer"]\nbatch_sizes=[2]\n'
    rows, out = run_suite(tmp_path, body, settings="repeats = 3\nmin_time_s = 0.01")
    c = out.record.cases[0]
    assert c.status == "ok" and c.measurement.repeat_isolation == "process"
    assert len(c.measurement.raw_times_s) == 3 and all(len(r) >= 3 for r in c.measurement.raw_times_s)
    assert c.facts.params > 0 and c.timing.wall_s > 0
    assert rows[c.case_id]["iterations"] == sum(map(len, c.measurement.raw_times_s))
    (tmp_path / "two").mkdir()
    rows, out = run_suite(tmp_path / "two", body, settings="repeats = 2\nmin_time_s = 0.01")
    assert out.record.cases[0].measurement.repeat_isolation == "iteration"


def test_a_failing_repeat_fails_the_case(tmp_path):
    body = '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer"]\nbatch_sizes=[2]\n'
    _, out = run_suite(tmp_path, body, settings="repeats = 3\nmin_time_s = 0.01", fault="mlp:tiny/*=raise")
    c = out.record.cases[0]
    assert c.status == "failed" and "injected failure" in c.reason and out.exit_code == 3
