"""hwbench ab: the paired decision on constructed inputs with known answers (pure), and
the command with real side servers, workers and files on a tiny CPU suite."""

import json
import math
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwbench.analysis import paired
from hwbench.analysis.compare import VERDICTS
from hwbench.analysis.paired import CaseInput, abba, decide, pair_stats, verdict

from conftest import ROOT, hwbench


# ------------------------------------------------------------------ the decision (pure)
def test_abba_order():
    assert [s[0].upper() for _, s in abba(4)] == list("BNNBBNNB")
    assert [k for k, _ in abba(3)] == [0, 0, 1, 1, 2, 2]


def test_constant_2x_is_regressed_and_half_is_improved():
    base = [0.010] * 6
    [r] = decide([CaseInput("c", "ok", "ok", tuple(base), tuple(b * 2 for b in base))])
    assert (r["verdict"], r["regression"]) == ("regressed", True)
    assert r["ratio"] == pytest.approx(2.0) and r["ci_low"] == pytest.approx(2.0) and r["p_value"] == 0.0
    [r] = decide([CaseInput("c", "ok", "ok", tuple(base), tuple(b / 2 for b in base))])
    assert (r["verdict"], r["regression"]) == ("improved", False)


def test_2x_with_noise_is_regressed_by_the_t_test():
    rng = np.random.default_rng(1)
    base = 0.01 * np.exp(rng.normal(0, 0.05, 6))
    new = base * 2 * np.exp(rng.normal(0, 0.05, 6))
    [r] = decide([CaseInput("c", "ok", "ok", tuple(base), tuple(new))])
    assert (r["verdict"], r["rule"]) == ("regressed", "t-test")
    assert r["ci_low"] < r["ratio"] < r["ci_high"]


def test_symmetric_noise_is_unchanged_when_narrow_and_inconclusive_when_wide():
    base = (1.0,) * 6
    narrow = tuple(base[k] * (1.01 if k % 2 else 1 / 1.01) for k in range(6))
    [r] = decide([CaseInput("c", "ok", "ok", base, narrow)])
    assert r["ratio"] == pytest.approx(1.0) and r["p_value"] == pytest.approx(1.0)
    assert (r["verdict"], r["rule"]) == ("unchanged", "ci99")  # CI about [0.983, 1.017] inside +-5 %
    wide = tuple(base[k] * (1.1 if k % 2 else 1 / 1.1) for k in range(6))
    [r] = decide([CaseInput("c", "ok", "ok", base, wide)])
    # sd of the log ratios 0.104, t[0.995, 5] = 4.03: CI exp(+-0.172) = [0.842, 1.19]
    assert r["ci_low"] == pytest.approx(math.exp(-4.0321 * 0.10441 / math.sqrt(6)), rel=1e-3)
    assert (r["verdict"], r["rule"], r["regression"]) == ("inconclusive", "none", False)


def test_the_ci_rule_decides_where_the_correction_leaves_the_test_short():
    """A 33 % slowdown over 3 pairs among nine quiet cases: t = 12.5 with 2 degrees of
    freedom, p = 0.0063, 0.063 after Benjamini-Hochberg over 10 cases -- the test
    alone says nothing. Its 99 % CI, exp(0.282 -+ 9.925 * 0.0225) = [1.060, 1.66],
    lies wholly beyond +5 %: regressed by rule ci99."""
    m, a = 0.282, 0.039
    slow = tuple(math.exp(x) for x in (m - a, m, m + a))
    cases = [CaseInput(f"quiet{i}", "ok", "ok", (1.0,) * 3, (1.1, 1 / 1.1, 1.0)) for i in range(9)]
    rows = {r["case_id"]: r for r in decide([*cases, CaseInput("slow", "ok", "ok", (1.0,) * 3, slow)])}
    s = rows["slow"]
    assert s["p_value"] < 0.01 < 0.05 < s["p_adjusted"]
    assert s["ci_low"] == pytest.approx(1.060, abs=1e-3)
    assert (s["verdict"], s["rule"], s["regression"]) == ("regressed", "ci99", True)
    assert all(rows[f"quiet{i}"]["verdict"] == "inconclusive" for i in range(9))


def test_drift_cancels_in_abba_and_fools_a_blocked_order():
    """A machine that slows down 1 % per repeat, both sides identical: in ABBA order the
    pairs' log ratios are +d, -d, ... (mean 0); run all of A then all of B, every
    pair says 'B is 6 % slower'."""
    pairs, rate = 6, 0.01
    t = lambda slot: 0.01 * math.exp(rate * slot)  # noqa: E731
    base, new = [0.0] * pairs, [0.0] * pairs
    for slot, (k, side) in enumerate(abba(pairs)):
        (base if side == "base" else new)[k] = t(slot)
    [r] = decide([CaseInput("c", "ok", "ok", tuple(base), tuple(new))])
    assert r["ratio"] == pytest.approx(1.0) and r["verdict"] != "regressed"
    blocked_base = [t(k) for k in range(pairs)]
    blocked_new = [t(pairs + k) for k in range(pairs)]
    [r] = decide([CaseInput("c", "ok", "ok", tuple(blocked_base), tuple(blocked_new))])
    assert r["verdict"] == "regressed"  # what interleaving is for


@pytest.mark.parametrize("base,new,expect", [
    ("ok", "failed", ("failed", True)),
    ("failed", "failed", ("failed", False)),
    ("failed", "ok", ("new", False)),
    (None, "ok", ("new", False)),
    ("ok", None, ("missing", False)),
    ("ok", "skipped", ("missing", False)),
    ("skipped", "skipped", ("unchanged", False)),
])
def test_status_verdicts_are_compares(base, new, expect):
    [r] = decide([CaseInput("c", base, new, (), (), "b why" if base != "ok" else "", "n why" if new != "ok" else "")])
    assert (r["verdict"], r["regression"], r["rule"]) == (*expect, "status")


def test_one_pair_and_bad_values_say_why():
    [r] = decide([CaseInput("c", "ok", "ok", (1.0,), (2.0,))])
    assert (r["verdict"], r["rule"]) == ("inconclusive", "none") and "fewer than 2" in r["note"]
    s = pair_stats([1.0, -1.0, float("nan"), 0.0, 1.0], [1.1, 1.0, 1.0, 1.0, 1.1])
    assert s.n_pairs == 2 and s.dropped == 3


def _check_rule(r, threshold, alpha):
    """The verdict the module docstring's rules give for this row's numbers."""
    if r["rule"] == "status":
        return
    if r["ratio"] is None or r["ci_low"] is None:
        assert (r["verdict"], r["rule"]) == ("inconclusive", "none")
        return
    ch, lo, hi, pa = r["ratio"] - 1, r["ci_low"] - 1, r["ci_high"] - 1, r["p_adjusted"]
    if pa < alpha and abs(ch) >= threshold:
        want = ("regressed" if ch > 0 else "improved", "t-test")
    elif lo >= threshold:
        want = ("regressed", "ci99")
    elif hi <= -threshold:
        want = ("improved", "ci99")
    elif pa < alpha:
        want = ("unchanged", "t-test")
    elif -threshold < lo and hi < threshold:
        want = ("unchanged", "ci99")
    else:
        want = ("inconclusive", "none")
    assert (r["verdict"], r["rule"]) == want
    assert r["regression"] == (r["verdict"] == "regressed")


values = st.one_of(st.floats(min_value=1e-9, max_value=1e6), st.sampled_from([0.0, -1.0, float("nan"), float("inf")]))


@settings(max_examples=300, deadline=None)
@given(cases=st.lists(st.tuples(st.lists(values, max_size=12), st.lists(values, max_size=12)), min_size=1, max_size=6),
       threshold=st.sampled_from([0.0, 0.01, 0.05, 0.5]), alpha=st.sampled_from([0.01, 0.05]),
       const=st.booleans())
def test_property_never_raises_and_agrees_with_the_rule(cases, threshold, alpha, const):
    inputs = []
    for i, (b, n) in enumerate(cases):
        if const and b:  # constant and tied ratios
            n = [x * 1.5 for x in b]
        inputs.append(CaseInput(f"c{i}", "ok", "ok", tuple(b), tuple(n)))
    rows = decide(inputs, threshold=threshold, alpha=alpha)
    assert len(rows) == len(inputs)
    for r in rows:
        assert r["verdict"] in VERDICTS and r["rule"] in paired.RULES
        if r["ci_low"] is not None:
            assert r["ci_low"] <= r["ratio"] * (1 + 1e-9) and r["ratio"] <= r["ci_high"] * (1 + 1e-9)
            assert 0 <= r["p_value"] <= 1 and 0 <= r["p_adjusted"] <= 1
        _check_rule(r, threshold, alpha)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-0.5, max_value=0.5), min_size=2, max_size=30))
def test_property_stats_match_scipy(d):
    from scipy import stats

    s = pair_stats([1.0] * len(d), [math.exp(x) for x in d])
    if np.std(d, ddof=1) > 1e-9:
        assert s.p_value == pytest.approx(stats.ttest_1samp(d, 0).pvalue, rel=1e-6, abs=1e-12)
        ci = stats.ttest_1samp(d, 0).confidence_interval(0.99)
        assert math.log(s.ci_low) == pytest.approx(ci.low, abs=1e-9)
        assert math.log(s.ci_high) == pytest.approx(ci.high, abs=1e-9)


def test_verdict_without_numbers_is_inconclusive():
    assert verdict(None, (None, None), None) == ("inconclusive", "none")


# ------------------------------------------------------------------ the command, real processes
SUITE = """
[suite]
name = "abt"
[settings]
warmup_iters = 2
min_time_s = 0.2
min_iters = 5
timeout_s = 120
idle_baseline_s = 0
[[matrix]]
models = ["mlp:tiny"]
modes = ["infer"]
batch_sizes = [512]
devices = ["cpu"]
[[matrix]]
models = ["encoder:tiny"]
modes = ["infer"]
batch_sizes = [2]
devices = ["cpu"]
"""
MLP = "mlp:tiny/infer/bs512/fp32/eager/cpu"


@pytest.fixture
def suite(tmp_path):
    p = tmp_path / "ab.toml"
    p.write_text(SUITE)
    return p


def _ab(suite, out, *args, timeout=900):
    r = hwbench("ab", suite, "--out", out, "--format", "json", *args, timeout=timeout)
    assert "Traceback" not in r.stderr, r.stderr
    return r, (json.loads(r.stdout) if r.stdout.strip().startswith("{") else None)


def test_no_difference_exits_0_with_one_file_per_side_in_abba_order(suite, tmp_path):
    """Identical sides. --threshold 25: what must not happen is a *regression*, and the
    two side servers are separate processes whose memory layout may differ (Mytkowicz
    et al.): a small, real, persistent difference between two identical servers is
    possible and is not what this test is about. The paired test itself is what keeps
    the load of a shared runner from looking like a regression."""
    import hwbench
    from hwbench.results import read_record

    out = tmp_path / "out"
    r, doc = _ab(suite, out, "--pairs", "6", "--threshold", "25")
    assert r.returncode == 0, r.stdout + r.stderr
    assert {row["verdict"] for row in doc["rows"]} <= {"unchanged", "inconclusive", "improved"}
    files = sorted(out.glob("*.json"))
    assert len(files) == 2 and {doc["sides"][s]["results"] for s in ("base", "new")} == {str(f) for f in files}
    df = hwbench.load_results([str(f) for f in files])
    assert sorted(df["case_id"].unique()) == sorted(row["case_id"] for row in doc["rows"]) and len(df) == 4
    recs = {read_record(f).ab.side: read_record(f) for f in files}
    assert recs["base"].ab.job_id == recs["new"].ab.job_id == doc["job_id"]
    assert recs["base"].ab.python == recs["new"].ab.python == sys.executable
    # the resolved suite says what the file holds: --pairs repeats, not the suite's own
    assert {rec.suite.resolved["settings"]["repeats"] for rec in recs.values()} == {6}
    # the order, from the times each side recorded: per case A B B A A B ..., never overlapping
    runs = sorted((rep.started, rep.ended, side, rep.case_id, rep.pair)
                  for side, rec in recs.items() for rep in rec.ab.repeats)
    for (_, end, *_), (start, *_) in zip(runs, runs[1:]):
        assert end <= start
    for cid in {x[3] for x in runs}:
        got = [(pair, side) for _, _, side, c, pair in runs if c == cid]
        assert got == abba(6)
    # the verdict's ratios are the files' repeat medians, pair by pair
    from hwbench.ab import repeat_medians

    med = {s: repeat_medians(doc["sides"][s]["results"]) for s in ("base", "new")}
    for row in doc["rows"]:
        b, n = med["base"][row["case_id"]][2], med["new"][row["case_id"]][2]
        assert len(b) == len(n) == 6
        assert row["pair_ratios"] == pytest.approx([y / x for x, y in zip(b, n)])


def test_a_library_flag_that_slows_the_mlp_exits_1_naming_it(suite, tmp_path):
    """MKL limited to SSE4.2 (no AVX): the mlp's matrix products run about 4x slower on
    one thread (measured 0.37 -> 1.4 to 1.8 ms). Both sides on one thread: on a shared
    2-core machine two OpenMP threads stall each other at every barrier."""
    r, doc = _ab(suite, tmp_path / "out", "--pairs", "6", "--filter", "mlp",
                 "--base-env", "OMP_NUM_THREADS=1", "--new-env", "OMP_NUM_THREADS=1",
                 "--new-env", "MKL_ENABLE_INSTRUCTIONS=SSE4_2")
    assert r.returncode == 1, r.stdout + r.stderr
    [row] = doc["rows"]
    assert (row["case_id"], row["verdict"], row["regression"]) == (MLP, "regressed", True)
    assert doc["sides"]["new"]["env"] == {"OMP_NUM_THREADS": "1", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}


@pytest.mark.parametrize("args,needle", [
    (["--base-python", "/nonexistent/python"], "--base-python /nonexistent/python: no such file"),
    (["--new-python", "/"], "--new-python /: not an executable file"),
    (["--new-env", "OMP_NUM_THREADS"], "--new-env 'OMP_NUM_THREADS': expected NAME=VALUE"),
    (["--base-env", "1X=2"], "--base-env '1X=2': expected NAME=VALUE"),
    (["--filter", "nomatch"], "--filter matched none"),
    (["--pairs", "1"], "--pairs"),
    (["--new-python", "/bin/true"], "the new side cannot start"),
])
def test_bad_input_is_one_line_exit_2(suite, tmp_path, args, needle):
    r = hwbench("ab", suite, "--out", tmp_path / "out", *args, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not list((tmp_path / "out").glob("*.json"))


def test_a_bad_suite_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[suite]\nname = 'x'\n[[matrix]]\nmodels = ['nosuch:tiny']\n")
    r = hwbench("ab", bad, "--out", tmp_path / "out")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_side_server_that_dies_fails_its_case_with_the_reason(suite, tmp_path):
    """The new side's server is killed (SIGKILL) at its third repeat: that case fails on
    the new side with the reason (exit 1: ok on base, failed on new); the case after it
    is not compared; the base side's file keeps what it ran."""
    fake = tmp_path / "dying-python"
    fake.write_text(f"""#!{sys.executable}
import os, signal
from hwbench import ab
real = ab._Server.repeat
count = [0]
def repeat(self, req):
    count[0] += 1
    if count[0] == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, req)
ab._Server.repeat = repeat
ab.serve()
""")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    r, doc = _ab(suite, tmp_path / "out", "--pairs", "3", "--new-python", fake)
    assert r.returncode == 1, r.stdout + r.stderr
    rows = {row["case_id"]: row for row in doc["rows"]}
    mlp = rows[MLP]
    assert (mlp["verdict"], mlp["regression"], mlp["rule"]) == ("failed", True, "status")
    assert "new side server" in mlp["note"] and "killed by SIGKILL" in mlp["note"]
    other = rows["encoder:tiny/infer/bs2/seq32/fp32/eager/cpu"]
    assert other["verdict"] == "failed" and "not run" in other["note"]
    from hwbench.results import read_record

    base = read_record(doc["sides"]["base"]["results"])
    assert [c.case_id for c in base.cases] == [MLP] and base.cases[0].status == "ok"


def test_sigterm_stops_the_job_closes_both_sides_and_exits_143(suite, tmp_path):
    import signal
    import subprocess
    import time

    import psutil

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "hwbench.cli", "ab", str(suite), "--out", str(out), "--pairs", "20"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # progress lines; the first says both sides are ready
            if "sides ready" in line:
                break
        children = psutil.Process(proc.pid).children(recursive=True)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    assert len(children) >= 2
    time.sleep(1.0)
    assert not [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    from hwbench.results import read_record

    files = sorted(out.glob("*.json"))
    assert len(files) == 2
    assert {read_record(f).status for f in files} <= {"interrupted", "running"}


def test_a_case_failing_on_the_new_side_is_failed_exit_1_in_an_80_column_table(suite, tmp_path):
    """The new side's mlp worker raises (fault injection in that side's environment):
    the case stops after its first pair and is `failed` (ok on base, failed on new:
    a regression); the other case is still compared. The table fits 80 columns."""
    r = hwbench("ab", suite, "--out", tmp_path / "out", "--pairs", "3", "--new-env",
                "HWBENCH_INJECT_FAULT=mlp:*=raise", timeout=900)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    [row] = [line for line in lines if line.startswith("failed ")]
    assert row.split()[-2:] == ["status", "mlp/bs512"]
    assert any("mlp/bs512: new: failed: RuntimeError: injected failure" in line for line in lines)
    assert "REGRESSION: 1 regressed or failed." in r.stdout
    assert [line for line in lines if "encoder/bs2/seq32" in line and line.split()[0] != "failed"]
