"""hwbench compare decides by written rules, never crashes, never guesses (issue 19):
exact / approximate p-values at any size, the 99 % CI fallback where the test cannot
reach significance, zero baselines on absolute differences, duplicate runs counted
once, verdicts without a test saying why, machine_changed, bad raw times refused.
Property tests (hypothesis) check every verdict against an oracle of the stated rule."""

import json
import math
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwbench.analysis import compare as cmp
from hwbench.collectors.samplers import HostSampler
from hwbench.records import Flag, IdleBaseline, SamplerResult
from hwbench.results import write_atomic
from test_compare import case, cli, record, repeat_draws

CID = "mlp:base/infer/bs256/fp32/eager/cpu"
ALPHA = 0.05


# ------------------------------------------------------------------ the oracle
def oracle(r: dict, m_tests: int = 1, alpha: float = ALPHA, higher_is_better: bool = False) -> str:
    """The verdict rule of docs/regression.md, restated: fewer than 2 values a side -> no test
    (a per-run metric with one value per side: the threshold alone); significant after
    the correction -> the threshold decides the direction; else, where the test cannot
    reach alpha, a 99 % CI wholly beyond the threshold decides; a 95 % CI inside the
    threshold is unchanged; anything else is inconclusive."""
    ch, th = r["change"], r["threshold"]
    nb, nn = r["n_baseline"], r["n_new"]

    def moved(c):
        return "regressed" if (c < 0 if higher_is_better else c > 0) else "improved"

    if ch is None or th is None or not math.isfinite(ch):
        return "inconclusive"
    if nb < 2 or nn < 2:
        if r["samples"] == "run" and nb == nn == 1:
            return moved(ch) if abs(ch) >= th and ch != 0 else "unchanged"
        return "inconclusive"
    p = r["p_adjusted"]
    if p is not None and p < alpha:
        return moved(ch) if abs(ch) >= th and ch != 0 else "unchanged"
    reach = r["min_p"] is not None and r["min_p"] * m_tests < alpha
    lo, hi = r["ci99_low"], r["ci99_high"]
    if not reach and lo is not None:
        if lo >= th and lo > 0:
            return moved(lo)
        if hi <= -th and hi < 0:
            return moved(hi)
    if r["ci_low"] is not None and -th < r["ci_low"] and r["ci_high"] < th:
        return "unchanged"
    return "inconclusive"


def sample(kind: str, n: int, level: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "constant":
        return np.full(n, level)
    if kind == "ties":  # a coarse clock: a handful of distinct values
        return level * (1 + rng.integers(0, 4, n) / 20)
    if kind == "zeros":  # e.g. accuracy deviations, exact in most runs
        return np.where(rng.random(n) < 0.6, 0.0, level * rng.lognormal(0, 0.3, n))
    return level * rng.lognormal(0, 0.05, n)


SIZES = st.one_of(st.integers(1, 12), st.integers(13, 400), st.sampled_from([1000, 10**5]))
KINDS = st.sampled_from(["continuous", "ties", "constant", "zeros"])
FACTORS = st.sampled_from([1.0, 1.01, 1.2, 2.0, 0.5, 0.0])
METRICS = st.sampled_from([cmp.Metric(cmp.LATENCY, "ms"), cmp.Metric("max_abs_error", "", False, 0.10, 1e-3)])


@settings(max_examples=45, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nb=SIZES, nn=SIZES, kb=KINDS, kn=KINDS, factor=FACTORS, metric=METRICS, seed=st.integers(0, 2**16),
       unit=st.sampled_from(["iteration", "repeat", "run"]))
def test_any_samples_any_size_never_raise_and_follow_the_rule(nb, nn, kb, kn, factor, metric, seed, unit):
    a = sample(kb, nb, 1.0, seed)
    b = sample(kn, nn, factor, seed + 1)
    r = cmp.assess(a, b, metric, samples=unit, options=cmp.Options(n_resamples=300), seed=seed)
    assert r["verdict"] == oracle(r), r
    assert r["rule"] in cmp.RULES
    ma, mb = float(np.median(a)), float(np.median(b))
    if ma > 0:
        assert r["effect"] == "relative" and r["change"] == pytest.approx(mb / ma - 1)
    else:
        assert r["effect"] == "absolute" and r["threshold"] == metric.abs_threshold
        assert r["change"] is None if metric.abs_threshold is None else r["change"] == pytest.approx(mb - ma)
    if r["p_value"] is not None:
        assert 0 <= r["p_value"] <= 1 and 0 <= r["min_p"] <= 1
    for lo, hi in (("ci_low", "ci_high"), ("ci99_low", "ci99_high")):
        if r[lo] is not None:
            assert r[lo] <= r[hi]
    if r["ci99_low"] is not None and r["ci_low"] is not None:
        assert r["ci99_low"] <= r["ci_low"] and r["ci_high"] <= r["ci99_high"]
    if r["verdict"] in ("regressed", "improved"):
        assert r["rule"] in ("test", "ci99", "threshold")
        assert (r["rule"] == "threshold") == (nb == nn == 1)  # no verdict without a test, unless 1 vs 1 per run
    if r["verdict"] == "inconclusive" and r["ci99_low"] is not None and r["threshold"] is not None \
            and r["min_p"] * 1 >= ALPHA:  # the fallback spoke: the change could be within the threshold
        assert r["ci99_low"] < r["threshold"] and r["ci99_high"] > -r["threshold"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(repeats=st.sampled_from([1, 2, 3, 5, 10]), iters=st.sampled_from([1, 3, 50, 20_000]),
       kind=st.sampled_from(["continuous", "ties", "constant"]), factor=st.sampled_from([1.0, 1.02, 2.0]),
       cases=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_whole_comparisons_follow_the_rule_and_count_a_copied_run_once(repeats, iters, kind, factor, cases, seed):
    ids = [f"mlp:tiny/infer/bs{i + 1}/fp32/eager/cpu" for i in range(cases)]
    iso = "process" if repeats >= 3 else "iteration"

    def times(level, s):
        return [list(1e-3 * sample(kind, iters, level, s + k)) for k in range(repeats)]

    base = record([case(c, times(1.0, seed + 7 * i), isolation=iso) for i, c in enumerate(ids)], run_id="b")
    new = record([case(c, times(factor, seed + 1000 + 7 * i), isolation=iso) for i, c in enumerate(ids)], run_id="n")
    opts = cmp.Options(n_resamples=300)
    res = cmp.compare([base], [new], opts)
    m_tests = int(res.rows["p_value"].notna().sum())
    for r in res.rows.to_dict("records"):
        r = {k: cmp._num(v) if k in ("change", "threshold", "p_adjusted", "min_p", "ci_low", "ci_high", "ci99_low",
                                     "ci99_high") else v for k, v in r.items()}
        assert r["verdict"] == oracle(r, m_tests), r
    again = cmp.compare([base, base], [new, new], opts)  # the same runs twice: counted once
    assert list(again.rows["verdict"]) == list(res.rows["verdict"])
    assert list(again.rows["n_baseline"]) == list(res.rows["n_baseline"])
    assert any("given 2 times: counted once" in n for n in again.notes)


# ------------------------------------------------------------------ p-values at any size
def test_min_p_value_never_overflows_and_stays_exact_where_it_can():
    assert cmp.min_p_value(3, 3) == 0.1 and cmp.min_p_value(4, 4) == pytest.approx(2 / 70)
    assert cmp.min_p_value(500, 500) == pytest.approx(2 / math.comb(1000, 500))
    assert cmp.min_p_value(600, 600) == 0.0 and cmp.min_p_value(10**5, 1) == pytest.approx(2 / (10**5 + 1))
    assert cmp.min_p_value(10**5, 10**5) == 0.0


def test_rank_test_is_exact_where_cheap_and_approximate_beyond():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(0)
    a, b = rng.random(5), rng.random(7)
    assert cmp.rank_test(a, b) == pytest.approx(mannwhitneyu(a, b, method="exact").pvalue)
    a, b = rng.random(8), rng.random(50_000)  # scipy's "auto" would run the exact test for minutes
    assert cmp.rank_test(a, b) == pytest.approx(mannwhitneyu(a, b, method="asymptotic").pvalue)
    assert cmp.rank_test([1.0], b) is None and cmp.rank_test([2.0, 2.0], [2.0, 2.0]) == 1.0


def test_a_file_against_itself_with_thousands_of_iterations(tmp_path):
    """Issue 19: OverflowError in min_p_value for > ~515 samples a side, exit 1."""
    rng = np.random.default_rng(0)
    f = tmp_path / "a.json"
    write_atomic(f, record([case(CID, [list(1e-3 * rng.lognormal(0, 0.05, 3000))])], run_id="a"))
    code, out, err = cli("compare", f, f)
    assert code == 0 and "no regression" in out and "Traceback" not in err


# ------------------------------------------------------------------ the fallback rule
def _repeats(levels_ms):
    """Process-isolated repeats of 20 iterations each at these levels (ms)."""
    return [[lv / 1e3 * (1 + 0.001 * k) for k in range(20)] for lv in levels_ms]


def test_known_answer_three_repeats_twice_as_slow_regresses_with_exit_1(tmp_path):
    """Issue 19: mlp:base bs256 193 ms -> 381 ms with repeats = 3 was "inconclusive",
    exit 0. Mann-Whitney cannot reach 0.05 with 3 vs 3; the 99 % CI rule decides."""
    base = record([case(CID, _repeats([190, 193, 197]), isolation="process")], run_id="base")
    new = record([case(CID, _repeats([375, 381, 390]), isolation="process")], run_id="new")
    write_atomic(tmp_path / "base.json", base)
    write_atomic(tmp_path / "new.json", new)
    code, out, _ = cli("compare", tmp_path / "base.json", tmp_path / "new.json")
    assert code == 1 and "regressed    mlp:base/infer/bs256" in out and "rule: ci99" in out
    assert "REGRESSION: 1 regressed" in out and max(map(len, out.splitlines())) <= 80
    row = cmp.compare([base], [new]).rows.iloc[0]
    assert row["ci99_low"] > 0.9 and row["change"] == pytest.approx(381.0 / 193.0 - 1, rel=1e-3)
    # the same numbers as improvements the other way round, and a small change stays open
    assert cmp.compare([new], [base]).rows.iloc[0]["verdict"] == "improved"
    near = record([case(CID, _repeats([192, 196, 201]), isolation="process")], run_id="near")
    row = cmp.compare([base], [near]).rows.iloc[0]
    assert row["verdict"] in ("inconclusive", "unchanged") and row["rule"] in ("none", "ci95")


def test_the_fallback_does_not_bypass_a_test_that_can_decide():
    """With 10 vs 10 repeats the test decides (and is corrected over the sweep); the
    99 % interval is only the fallback where the test cannot reach alpha."""
    d = cmp.decide(0.3, (0.2, 0.4), (0.15, 0.45), 0.2, threshold=0.05, alpha=0.05, n=(10, 10), test_can_reach=True)
    assert d.verdict == "inconclusive" and d.rule == "none" and "not significant after the correction" in d.why
    d = cmp.decide(0.3, (0.2, 0.4), (0.15, 0.45), 0.2, threshold=0.05, alpha=0.05, n=(3, 3), test_can_reach=False)
    assert (d.verdict, d.rule) == ("regressed", "ci99")
    d = cmp.decide(0.3, (0.2, 0.4), (0.01, 0.45), 0.2, threshold=0.05, alpha=0.05, n=(3, 3), test_can_reach=False)
    assert d.verdict == "inconclusive" and "could" not in d.why and "reaches inside" in d.why


def test_one_sample_against_many_has_no_verdict_and_says_why():
    rng = np.random.default_rng(1)
    base = record([case(CID, [[0.010]])], run_id="one")
    new = record([case(CID, [list(0.02 * rng.lognormal(0, 0.02, 150))])], run_id="many")
    row = cmp.compare([base], [new]).rows.iloc[0]
    assert row["verdict"] == "inconclusive" and row["rule"] == "none"
    assert "1 vs 150 values: no test" in row["note"]


# ------------------------------------------------------------------ zero baselines
def _accuracy_case(err):
    c = case("mlp:tiny/infer/bs1/fp32/inductor/cpu", [[0.001, 0.0011]])
    from hwbench.records import Accuracy

    facts = c.facts.model_copy(update={"accuracy": Accuracy(max_abs_error=err, rel_l2_error=err,
                                                            accuracy_model="compiled")})
    return c.model_copy(update={"facts": facts})


def test_a_zero_baseline_compares_on_the_absolute_difference(tmp_path):
    """Issue 19: max_abs_error 0 -> 0.5 could never regress (no ratio: inconclusive)."""
    write_atomic(tmp_path / "a.json", record([_accuracy_case(0.0)], run_id="a"))
    write_atomic(tmp_path / "b.json", record([_accuracy_case(0.5)], run_id="b"))
    write_atomic(tmp_path / "c.json", record([_accuracy_case(1e-6)], run_id="c"))
    code, out, _ = cli("compare", tmp_path / "a.json", tmp_path / "b.json", "--metric", "max_abs_error")
    flat = " ".join(out.split())
    assert code == 1 and "[max_abs_error]" in out and "zero baseline: absolute change, threshold 0.001" in flat
    code, out, _ = cli("compare", tmp_path / "a.json", tmp_path / "c.json", "--metric", "max_abs_error")
    assert code == 0  # 1e-6: fp32 rounding, below the absolute threshold
    opts = cmp.Options(metrics=cmp.parse_metrics("max_abs_error"))
    rows = cmp.compare([record([_accuracy_case(0.0)])], [record([_accuracy_case(0.0)])], opts).rows
    assert rows.set_index("metric").loc["max_abs_error", "verdict"] == "unchanged"


# ------------------------------------------------------------------ selections, duplicates
def test_a_selection_matching_nothing_or_files_without_cases_is_one_line_exit_2(tmp_path):
    rng = np.random.default_rng(0)
    write_atomic(tmp_path / "a.json", record([case(CID, repeat_draws(rng, 10), isolation="process")], run_id="a"))
    write_atomic(tmp_path / "e.json", record([], run_id="e"))
    code, out, err = cli("compare", tmp_path / "a.json", tmp_path / "a.json", "--case", "nomatch:*")
    assert code == 2 and "no case matches --case 'nomatch:*'" in err and len(err.strip().splitlines()) == 1
    for b, n in (("e.json", "e.json"), ("a.json", "e.json"), ("e.json", "a.json")):
        code, _, err = cli("compare", tmp_path / b, tmp_path / n)
        assert code == 2 and "e.json: no cases in this run: nothing to compare" in err and "Traceback" not in err


def test_a_copied_run_in_a_folder_counts_once_with_a_warning(tmp_path):
    """Issue 19: the same run twice doubled n and turned inconclusive into regressed."""
    rng = np.random.default_rng(3)
    (tmp_path / "base").mkdir()
    (tmp_path / "new").mkdir()
    write_atomic(tmp_path / "base" / "a.json", record([case(CID, repeat_draws(rng, 10, repeats=4),
                                                            isolation="process")], run_id="a"))
    shutil.copy(tmp_path / "base" / "a.json", tmp_path / "base" / "a (copy).json")
    write_atomic(tmp_path / "new" / "b.json", record([case(CID, repeat_draws(rng, 10.6, repeats=4),
                                                           isolation="process")], run_id="b"))
    code, out, err = cli("compare", tmp_path / "base", tmp_path / "new", "--format", "json")
    assert "BASELINE: run a is given 2 times" in err and "counted once" in err
    assert json.loads(out)["rows"][0]["n_baseline"] == 4
    code, out, err = cli("history", tmp_path / "base", tmp_path / "new")
    assert code == 0 and "2 runs" in out and "given 2 times" in err


# ------------------------------------------------------------------ bad raw times
@pytest.mark.parametrize("bad", [-0.001, 0.0])
def test_negative_or_zero_raw_times_are_refused_naming_file_and_field(tmp_path, bad):
    good = record([case(CID, [[0.01, 0.011, 0.012]])], run_id="g")
    doc = json.loads(good.model_dump_json())
    doc["cases"][0]["measurement"]["raw_times_s"][0][1] = bad
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    write_atomic(tmp_path / "good.json", good)
    code, _, err = cli("compare", tmp_path / "good.json", tmp_path / "bad.json")
    assert code == 2 and "bad.json" in err and "cases[0].measurement.raw_times_s[0][1]" in err
    assert "greater than or equal to 0.000000000001" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ parallel throughput
def test_parallel_throughput_uses_the_group_batch_as_load_results_does():
    c = case(CID, _repeats([100, 101, 102]), isolation="process")
    c = c.model_copy(update={"case": c.case.model_copy(update={"parallelism": "ddp", "world_size": 2,
                                                                "batch_size": 8}),
                             "facts": c.facts.model_copy(update={"global_batch_size": 16})})
    rec = record([c])
    row = cmp.compare([rec], [rec]).rows.iloc[0]
    from hwbench.analysis.derive import case_row

    assert row["throughput_baseline"] == pytest.approx(16 / (row["baseline"] / 1e3))
    assert row["throughput_baseline"] == pytest.approx(case_row(rec, c)["throughput_samples_per_s"], rel=0.02)


# ------------------------------------------------------------------ machine_changed
def _loaded(cid, levels, system_pct, worker_pct=100.0, steal=None, idle=None, throttle=None, ncpu=2):
    summary = {"cpu_util_pct_mean": system_pct, "proc_cpu_pct_mean": worker_pct}
    if steal is not None:
        summary["cpu_steal_pct_mean"] = steal
    c = case(cid, _repeats(levels), isolation="process")
    flags = [Flag(flag="throttled", detail=f"nvidia:0: {throttle}")] if throttle else []
    c = c.model_copy(update={"collectors": {"host": SamplerResult(summary=summary, info={"logical_cpus": ncpu})},
                             "flags": flags})
    rec = record([c])
    if idle is not None:
        seg = rec.segments[0].model_copy(update={"idle_baseline": IdleBaseline(duration_s=1.0, cpu_util_pct=idle)})
        rec = rec.model_copy(update={"segments": [seg]})
    return rec


def test_machine_changed_marks_a_busier_runner_with_the_figures(tmp_path):
    """Worker one core of two (50 % of the machine): background = system - 50 %."""
    lv = [100, 101, 102, 103, 104, 105]
    quiet = _loaded(CID, lv, system_pct=53.0)
    busy = _loaded(CID, [x * 1.5 for x in lv], system_pct=95.0)
    res = cmp.compare([quiet], [busy])
    row = res.rows.iloc[0]
    assert row["verdict"] == "regressed" and row["machine_changed"]
    assert row["machine"] == "background CPU 3.0 -> 45.0 % of the machine" and "machine_changed:" in row["note"]
    assert res.load["baseline"]["background_cpu_pct"] == pytest.approx(3.0) and res.machine_changed == 1
    write_atomic(tmp_path / "q.json", quiet)
    write_atomic(tmp_path / "b.json", busy)
    code, out, _ = cli("compare", tmp_path / "q.json", tmp_path / "b.json")
    assert code == 1 and "[machine_changed]" in out and "background CPU 45.0 %" in out
    assert "rerun before blaming the change" in " ".join(out.split()) and max(map(len, out.splitlines())) <= 80
    # below the 10-point rule: not marked
    assert not cmp.compare([quiet], [_loaded(CID, lv, system_pct=60.0)]).rows.iloc[0]["machine_changed"]


@pytest.mark.parametrize("base,new,expect", [
    (dict(steal=0.5), dict(steal=8.0), "CPU steal 0.5 -> 8.0 % of the machine"),
    (dict(idle=1.0), dict(idle=30.0), "idle-baseline CPU 1.0 -> 30.0 % of the machine"),
    (dict(), dict(throttle="hw_thermal, sw_power_cap"), "GPU throttled (hw_thermal) in the new run only"),
    (dict(throttle="sw_power_cap"), dict(), None),  # the workload's own power cap: not the machine
    (dict(steal=0.5), dict(steal=3.0), None),
])
def test_machine_changed_rules(base, new, expect):
    lv = [100, 101, 102, 103]
    res = cmp.compare([_loaded(CID, lv, 53.0, **base)], [_loaded(CID, lv, 53.0, **new)])
    row = res.rows.iloc[0]
    assert row["machine_changed"] == (expect is not None)
    if expect:
        assert row["machine"] == expect


def test_host_sampler_summarises_steal_time_as_a_share_of_the_machine():
    s = HostSampler.__new__(HostSampler)
    s.logical_cpus = 4
    samples = [(0.0, {"cpu_busy_counter_s": 0.0, "cpu_steal_counter_s": 10.0}),
               (2.0, {"cpu_busy_counter_s": 4.0, "cpu_steal_counter_s": 10.8})]
    out = s.summarise(samples, 0.0, 2.0)
    assert out["cpu_steal_pct_mean"] == pytest.approx(100 * 0.8 / (2.0 * 4))
    assert out["cpu_util_pct_mean"] == pytest.approx(50.0)
