"""hwbench history: runs ordered by time, a trend per case, change points (PELT via
ruptures) naming the first run after each step and what changed in its environment."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwbench.analysis import history as hist
from hwbench.results import write_atomic
from test_compare import case, cli, record

STEP = "encoder:tiny/infer/bs1/seq32/fp32/eager/cpu"
FLAT = "mlp:tiny/infer/bs1/fp32/eager/cpu"


def runs(n=10, step_at=5, step=1.3, noise=0.02, seed=0):
    """``n`` runs a day apart; STEP gets ``step`` x slower from run ``step_at`` on, where
    torch changes; FLAT only has noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        level = step if i >= step_at else 1.0
        cases = [case(STEP, [list(2e-3 * level * rng.lognormal(rng.normal(0, noise), 0.03, 50))]),
                 case(FLAT, [list(1e-4 * rng.lognormal(rng.normal(0, noise), 0.03, 50))])]
        out.append((f"run{i}.json", record(cases, run_id=f"run{i}", created=f"2026-11-{10 + i:02d}T00:00:00+00:00",
                                           torch_version="2.13" if i >= step_at else "2.12",
                                           hwbench_git_commit=f"{i:x}" * 40)))
    return out


def test_a_step_is_found_at_the_first_run_after_it_with_its_cause():
    given = runs()
    h = hist.history(given[::-1])  # any order in, oldest first out
    assert list(h.runs["run_id"]) == [f"run{i}" for i in range(10)]
    cps = h.changes
    assert list(cps["case_id"]) == [STEP]
    cp = cps.iloc[0]
    assert cp["run_index"] == 5 and cp["run_id"] == "run5"
    assert cp["step"] == pytest.approx(0.3, abs=0.05)
    assert "torch_version 2.12 -> 2.13" in cp["env_changes"] and "hwbench_git_commit" in cp["env_changes"]
    t = h.trends.set_index("case_id")
    assert t.loc[STEP, "change"] == pytest.approx(0.3, abs=0.08) and len(t.loc[STEP, "spark"]) == 10
    assert t.loc[FLAT, "runs"] == 10
    assert h.series["change_point"].sum() == 1
    assert "PELT" in h.method and "ruptures" in h.method


def test_noise_alone_and_small_steps_give_no_change_point():
    rng = np.random.default_rng(3)
    # 30 runs at 3 % run-to-run noise: about 2.5 % of such series show a false step
    false = sum(bool(hist.change_points(np.exp(rng.normal(0, 0.03, 30)))) for _ in range(40))
    assert false <= 3, false
    assert hist.change_points([1.0] * 5 + [1.02] * 5) == []  # below the 5 % threshold
    assert hist.change_points([1.0, 1.5, 1.0]) == []  # too short to tell
    got = hist.change_points([1.0] * 6 + [0.8] * 6)
    assert [c["index"] for c in got] == [6] and got[0]["step"] == pytest.approx(-0.2)


def test_case_glob_and_other_metrics():
    h = hist.history(runs(), case_glob="mlp:*")
    assert set(h.trends["case_id"]) == {FLAT} and h.changes.empty


def test_cli_formats(tmp_path):
    for name, rec in runs():
        write_atomic(tmp_path / name, rec)
    code, out, err = cli("history", tmp_path)
    assert code == 0, err
    assert STEP in out and "step +" in out and "run5" in out and max(map(len, out.splitlines())) <= 80
    code, out, _ = cli("history", tmp_path, "--format", "markdown", "--case", "encoder:*")
    assert code == 0 and out.startswith("### hwbench history") and "torch_version" in out and FLAT not in out
    code, out, _ = cli("history", tmp_path, "--format", "csv")
    assert out.splitlines()[0].startswith("case_id,run_index") and len(out.splitlines()) == 21
    code, out, _ = cli("history", tmp_path, "--format", "json")
    doc = json.loads(out)
    assert doc["change_points"][0]["run_id"] == "run5" and len(doc["runs"]) == 10
    code, _, err = cli("history", tmp_path, "--case", "nothing*")
    assert code == 2 and "no ok cases" in err


# ------------------------------------------------------------------ outliers (issue 19)
def _series(kind, n=12, noise=0.01, seed=1):
    x = np.exp(np.random.default_rng(seed).normal(0, noise, n))
    if kind == "step":
        x[6:] *= 1.3
    elif kind == "middle":
        x[6] *= 1.14
    elif kind == "last":
        x[-1] *= 1.14
    return x


@pytest.mark.parametrize("seed", range(5))
def test_known_answers_step_single_outlier_and_no_change(seed):
    """A single outlying nightly used to be two change points (+14 % at it, -12 % two
    runs later); last, it put a change point on a run whose value did not change."""
    step = hist.change_points(_series("step", seed=seed))
    assert [c["index"] for c in step] == [6] and step[0]["step"] == pytest.approx(0.3, abs=0.05)
    assert hist.outliers(_series("step", seed=seed)) == []
    for kind, at in (("middle", 6), ("last", 11)):
        x = _series(kind, seed=seed)  # 1 % noise: 14 % is 14 sigma, named an outlier
        assert hist.change_points(x) == [], kind
        out = hist.outliers(x)
        assert [o["index"] for o in out] == [at] and out[0]["change"] == pytest.approx(0.14, abs=0.03)
    assert hist.change_points(_series("none", seed=seed)) == [] and hist.outliers(_series("none", seed=seed)) == []


def test_at_noisier_levels_an_outlier_adds_no_false_steps_beyond_noise_alone():
    """At 2 % run-to-run noise a 14 % outlier is 7 sigma; the false-step rate with it
    (middle or last) stays near that of noise alone (the old code: nearly every series)."""
    false = {k: sum(bool(hist.change_points(_series(k, seed=s, noise=0.02))) for s in range(100))
             for k in ("middle", "last", "none")}
    assert false["none"] <= 4 and false["middle"] <= 6 and false["last"] <= 6, false


def test_a_two_run_step_at_the_end_is_a_step_not_an_outlier():
    x = np.array([1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.3, 1.31])
    assert [c["index"] for c in hist.change_points(x)] == [7] and hist.outliers(x) == []


def test_history_marks_the_outlier_and_counts_a_duplicated_run_once(tmp_path):
    given = runs(n=10, step_at=99)  # no step
    _, last = given[-1]
    c0 = last.cases[0]
    slow = c0.model_copy(update={"measurement": c0.measurement.model_copy(
        update={"raw_times_s": [[t * 1.5 for t in r] for r in c0.measurement.raw_times_s]})})
    given[-1] = (given[-1][0], last.model_copy(update={"cases": [slow, *last.cases[1:]]}))
    h = hist.history(given + [("copy.json", given[3][1])])
    assert len(h.runs) == 10 and any("run3 is given 2 times" in n for n in h.notes)
    assert h.changes.empty
    assert list(h.outliers["run_id"]) == ["run9"] and h.outliers.iloc[0]["case_id"] == STEP
    assert h.series.loc[h.series["outlier"], "run_id"].tolist() == ["run9"]
    for name, rec in given:
        write_atomic(tmp_path / name, rec)
    code, out, _ = cli("history", tmp_path)
    flat = " ".join(out.split())
    assert code == 0 and "outlier at run 9 (run9)" in flat and "not a step" in flat
    assert max(map(len, out.splitlines())) <= 80


def _penalised_l2(y, bkps, pen):
    """The objective both searches minimise: each segment's sum of squared deviations
    from its mean, plus ``pen`` per change point."""
    starts = [0, *bkps[:-1]]
    return sum(float(((y[a:b] - y[a:b].mean()) ** 2).sum()) for a, b in zip(starts, bkps)) + pen * (len(bkps) - 1)


def _optimal_partitioning(y, pen, min_size):
    """The exact optimum of the penalised l2 cost by dynamic programming over every
    segmentation (Jackson et al.'s optimal partitioning, O(n^2)): the known answer."""
    n = y.size
    best = [0.0] + [np.inf] * n  # best[t]: the optimum of y[:t], the first segment unpenalised
    for t in range(min_size, n + 1):
        for s in [0, *range(min_size, t - min_size + 1)]:
            if np.isfinite(best[s]):
                seg = y[s:t]
                best[t] = min(best[t], best[s] + float(((seg - seg.mean()) ** 2).sum()) + (pen if s else 0.0))
    return best[n]


@settings(max_examples=60, deadline=None)
@given(st.integers(4, 60), st.integers(0, 2**32 - 1))
def test_search_is_never_worse_than_reference_pelt_and_near_the_optimum(n, seed):
    """On noisy series with steps and spikes the compiled search's penalised l2 cost is
    never above that of ruptures' reference Pelt(l2) (what history used before) and
    within 5 % of the exact optimum (optimal partitioning). PELT's pruning with a
    minimum segment size is not exact: on 3,000 such series both searches missed the
    optimum on 0.2 % of them, by at most 3.3 %; they gave different breakpoints once,
    the compiled search the cheaper (the next test)."""
    import ruptures

    rng = np.random.default_rng(seed)
    y = rng.normal(0, 0.03, n) + (rng.random(n) < 0.1) * 0.2 \
        + (np.arange(n) >= rng.integers(0, n)) * rng.normal(0, 0.1)
    pen = hist.PENALTY * hist.robust_sigma(y) ** 2 * np.log(n)
    got = _penalised_l2(y, hist.search(y, pen), pen)
    ref = ruptures.Pelt(model="l2", min_size=hist.MIN_SIZE, jump=1).fit(y.reshape(-1, 1)).predict(pen=pen)
    assert got <= _penalised_l2(y, [int(b) for b in ref], pen) * (1 + 1e-9) + 1e-12
    assert got <= _optimal_partitioning(y, pen, hist.MIN_SIZE) * 1.05 + 1e-12


def test_search_differs_from_reference_pelt_only_to_be_cheaper():
    """The one series of those 3,000 (seed 2897) where the breakpoints differ: ruptures'
    Pelt returns 8 change points at a penalised cost of 0.16528, the compiled search 9
    at 0.16482 (the exact optimum, 0.16417, is lower still)."""
    import ruptures

    rng = np.random.default_rng(2897)
    n = int(rng.integers(4, 61))
    y = rng.normal(0, 0.03, n) + (rng.random(n) < 0.1) * 0.2 \
        + (np.arange(n) >= rng.integers(0, n)) * rng.normal(0, 0.1)
    pen = hist.PENALTY * hist.robust_sigma(y) ** 2 * np.log(n)
    got = hist.search(y, pen)
    ref = [int(b) for b in ruptures.Pelt(model="l2", min_size=hist.MIN_SIZE, jump=1).fit(y.reshape(-1, 1)).predict(pen=pen)]
    assert got == [10, 12, 17, 19, 21, 25, 31, 33, 39] and ref == [10, 12, 17, 19, 25, 31, 33, 39]
    assert _penalised_l2(y, got, pen) == pytest.approx(0.164825, abs=1e-6)
    assert _penalised_l2(y, ref, pen) == pytest.approx(0.165276, abs=1e-6)
    assert _optimal_partitioning(y, pen, hist.MIN_SIZE) == pytest.approx(0.164169, abs=1e-6)


def test_change_point_in_5000_runs():
    """A series of 5,000 runs with one 8 % step at a known run (2 % noise): the step is
    found at that run and nowhere else (the reference PELT in Python did not return in
    496 s on such a series; this one returns in well under a second)."""
    rng = np.random.default_rng(7)
    x = np.exp(rng.normal(0, 0.02, 5000) + (np.arange(5000) >= 3217) * np.log(1.08))
    got = hist.change_points(x)
    assert [c["index"] for c in got] == [3217]
    assert got[0]["step"] == pytest.approx(0.08, abs=0.005)
    assert hist.change_points(np.exp(rng.normal(0, 0.02, 5000))) == []
