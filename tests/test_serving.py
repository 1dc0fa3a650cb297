"""Serving under load (hwbench.serving, docs/serving.md): the pure parts, each against a
known answer -- LoadGen's percentile rule, SLO and goodput rules, the capacity search on
constructed latency-vs-load functions with a known capacity, the arrival processes'
statistics, the continuous-batching scheduler on a fake clock, suite validation, the
derived columns and procure's price at the SLO from constructed results. One real
LoadGen test (threads, no process) checks that hwbench's percentiles of the per-query
latencies are LoadGen's own."""

import math
import tomllib
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwbench import load_results
from hwbench.analysis import cost
from hwbench.analysis.serving import capacity_from_points
from hwbench.errors import ConfigError
from hwbench.prices import parse_prices
from hwbench.records import (CaseIdentity, CaseResult, Energy, Environment, Facts, LoadPoint, Measurement, RunRecord,
                             Segment, Serving, SuiteRef)
from hwbench.results import write_atomic
from hwbench.serving import arrivals, capacity, generation, slo
from hwbench.spec import parse_suite


# ------------------------------------------------------------------ percentiles, SLO, goodput
def test_percentile_is_loadgens_index_rule():
    # 200 values 1..200: floor(200 * 0.99) = 198 -> the 199th smallest
    vals = list(range(200, 0, -1))
    assert slo.percentile_lg(vals, 99) == 199
    assert slo.percentile_lg(vals, 50) == 101
    assert slo.percentile_lg(vals, 100) == 200  # clamped to the largest
    assert slo.percentile_lg([], 99) is None


@given(st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=300), st.floats(0.1, 100))
def test_percentile_is_a_value_that_occurred_and_bounded(vals, q):
    p = slo.percentile_lg(vals, q)
    assert p in vals and min(vals) <= p <= max(vals)
    # at least q % of the values are at most p
    assert sum(v <= p for v in vals) >= math.floor(len(vals) * q / 100)


def test_slo_met_and_goodput():
    lat = [1.0] * 98 + [5.0, 20.0]  # p99 (index 99) = 20, p98 = 5
    assert slo.slo_met(lat, 10, 99) is False
    assert slo.slo_met(lat, 10, 98) is True
    assert slo.slo_met(lat, None, 99) is None
    ok = [slo.request_ok(x, 10) for x in lat]
    assert slo.goodput_rps(ok, 2.0) == 99 / 2.0
    assert slo.request_ok(ttft_ms=1500, ttft_slo_ms=2000, tpot_ms=120, tpot_slo_ms=100) is False
    assert slo.request_ok(ttft_ms=1500, ttft_slo_ms=2000, tpot_ms=None, tpot_slo_ms=100) is False
    assert slo.request_ok(ttft_ms=1500, ttft_slo_ms=2000) is True


# ------------------------------------------------------------------ the capacity search
def mm1(mu: float, base_ms: float):
    """An M/M/1-like latency at offered rate q: base / (1 - q / mu) (infinite at mu)."""
    return lambda q: base_ms / (1 - q / mu) if q < mu else math.inf


@given(st.floats(100, 1e5), st.floats(0.5, 5), st.floats(2, 50), st.floats(0.02, 0.3), st.floats(0.1, 4))
@settings(max_examples=200, deadline=None)
def test_capacity_search_finds_the_known_capacity(mu, base, slo_factor, tol, guess_factor):
    slo_ms = base * slo_factor
    true_cap = mu * (1 - base / slo_ms)  # where base / (1 - q / mu) == slo
    lat = mm1(mu, base)
    guess = mu * guess_factor  # the calibration under- or overestimates the service rate
    s = capacity.find_capacity(lambda q: lat(q) <= slo_ms, guess, rel_tol=tol, max_probes=60)
    if true_cap < 0.1 * guess:
        assert s.capacity is None
        return
    assert s.converged, s
    assert s.capacity <= true_cap * (1 + 1e-9)  # never above the boundary
    fail = min(q for q, ok in s.probes if not ok)
    # the failing bound is at or past the boundary (at it, the latency rounds up past the SLO)
    assert fail >= true_cap * (1 - 1e-9)
    assert fail - s.capacity <= tol * fail * (1 + 1e-9)  # the stopping rule
    assert s.capacity >= true_cap * (1 - tol) - 1e-9


def test_capacity_search_reports_none_and_probe_limit():
    s = capacity.find_capacity(lambda q: False, 1000.0)
    assert s.capacity is None and s.probes == [(100.0, False)] and "missed already" in s.stopped
    s = capacity.find_capacity(lambda q: q <= 700, 1000.0, rel_tol=1e-6, max_probes=4)
    assert len(s.probes) == 4 and not s.converged and s.capacity <= 700
    s = capacity.find_capacity(lambda q: q <= 3500, 1000.0, rel_tol=0.05)  # the guess was 3.5x too low
    assert [q for q, _ in s.probes[:4]] == [100.0, 1000.0, 2000.0, 4000.0] and 3500 * 0.95 <= s.capacity <= 3500
    assert capacity.find_capacity(lambda q: True, 0.0).capacity is None


def test_capacity_over_listed_points_needs_every_lower_point():
    assert capacity_from_points([(10, True), (20, True), (40, False), (80, True)]) == 20
    assert capacity_from_points([(10, False), (20, True)]) is None
    assert capacity_from_points([(10, None)]) is None


# ------------------------------------------------------------------ arrivals and lengths
@pytest.mark.parametrize("rate,seed", [(5.0, 0), (37.5, 1), (500.0, 2), (2000.0, 12345)])
def test_poisson_arrivals_have_exponential_gaps_and_dispersion_one(rate, seed):
    # seeded: deterministic; bounds at about 4 standard errors of each statistic
    duration = 20000 / rate  # about 20000 arrivals
    t = np.array(arrivals.arrival_times("poisson", rate, duration, seed))
    n = len(t)
    assert abs(n - rate * duration) < 4 * math.sqrt(rate * duration)  # count ~ Poisson(rate x T)
    gaps = np.diff(t)
    assert abs(gaps.mean() * rate - 1) < 0.03  # mean interval 1 / rate
    assert abs(gaps.std() / gaps.mean() - 1) < 0.04  # exponential: CV 1
    counts = np.histogram(t, bins=np.arange(0, duration, 20 / rate))[0]  # ~20 per bin, ~1000 bins
    assert 0.8 < counts.var() / counts.mean() < 1.2  # index of dispersion ~1 (standard error ~0.045)
    assert t.min() >= 0 and t.max() < duration and np.all(gaps > 0)


def test_constant_arrivals_are_evenly_spaced_dispersion_zero():
    t = np.array(arrivals.arrival_times("constant", 50.0, 2.0, 0))
    assert len(t) == 100 and np.allclose(np.diff(t), 0.02)
    counts = np.histogram(t, bins=np.linspace(-0.01, 1.99, 11))[0]  # edges between arrivals
    assert counts.var() == 0


def test_seeded_arrivals_repeat_and_lengths_follow_their_distribution():
    assert arrivals.arrival_times("poisson", 10, 5, 7) == arrivals.arrival_times("poisson", 10, 5, 7)
    ls = arrivals.lengths("uniform", 32, 5000, 1)
    assert min(ls) == 16 and max(ls) == 32 and abs(np.mean(ls) - 24) < 0.5
    assert arrivals.lengths("fixed", 7, 3, 0) == [7, 7, 7]
    with pytest.raises(ValueError):
        arrivals.arrival_times("bursty", 1, 1, 0)


# ------------------------------------------------------------------ continuous batching
class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def test_scheduler_admits_between_iterations_and_times_tokens():
    clk = FakeClock()

    def prefill(slot, n):
        clk.t += 0.010  # 10 ms prefill
        return "tok"

    def decode(slots, toks):
        clk.t += 0.001  # 1 ms per batched decode step
        return toks

    served = generation.serve(prefill, decode, [0.0, 0.0025, 1.0], [8, 8, 8], [3, 2, 1], max_running=4, clock=clk,
                              sleep=clk.sleep)
    a, b, c = served.requests
    fa, fb, fc = (generation.request_figures(r) for r in (a, b, c))
    # a: prefill 0-10 ms (first token), iteration 1 decodes a (10-11); b (arrived at
    # 2.5 ms) is admitted at iteration 2: prefill 11-21, then one decode of a and b (21-22)
    assert fa["ttft_s"] == pytest.approx(0.010)
    assert fb["ttft_s"] == pytest.approx(0.021 - 0.0025)  # waited for a's decode, then its own prefill
    assert a.made == 3 and b.made == 2 and c.made == 1
    assert fa["tpot_s"] == pytest.approx((a.last_s - a.first_s) / 2)
    assert fc["tpot_s"] is None and fc["ttft_s"] == pytest.approx(0.010)  # idle until 1 s, then served alone
    assert a.last_s == b.last_s == pytest.approx(0.022)  # one batched decode gave both their last token
    assert served.decode_rows == [1, 2]  # c finished at its prefill: no decode
    assert all(r.tok is None for r in served.requests)  # nothing held once requests leave


def test_scheduler_respects_max_running():
    clk = FakeClock()
    running = []

    def prefill(slot, n):
        clk.t += 0.001
        running.append(1)
        return 0

    def decode(slots, toks):
        clk.t += 0.001
        return toks

    served = generation.serve(prefill, decode, [0.0] * 6, [4] * 6, [5] * 6, max_running=2, clock=clk, sleep=clk.sleep)
    firsts = sorted(r.first_s for r in served.requests)
    # two at a time: the third starts only after the first two finished
    assert firsts[2] > max(r.done_s for r in served.requests if r.first_s in firsts[:2]) - 1e-12


def test_scheduler_runs_one_decode_per_iteration_and_reuses_freed_slots():
    clk = FakeClock()
    log = []

    def prefill(slot, n):
        clk.t += 0.001
        log.append(("prefill", slot))
        return 100 * len(log)  # a token naming the call that made it

    def decode(slots, toks):
        clk.t += 0.001
        log.append(("decode", list(slots), list(toks)))
        return [t + 1 for t in toks]

    # two slots, three requests at 0 s of 2, 4 and 3 tokens
    served = generation.serve(prefill, decode, [0.0] * 3, [4] * 3, [2, 4, 3], max_running=2, clock=clk,
                              sleep=clk.sleep)
    assert log == [("prefill", 0), ("prefill", 1), ("decode", [0, 1], [100, 200]),  # the first leaves slot 0
                   ("prefill", 0), ("decode", [0, 1], [400, 201]),  # the third takes it, beside the second
                   ("decode", [0, 1], [401, 202])]
    assert [r.slot for r in served.requests] == [0, 1, 0]
    assert [r.made for r in served.requests] == [2, 4, 3]
    assert served.decode_rows == [2, 2, 2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 0.05), st.integers(1, 6)), min_size=1, max_size=12), st.integers(1, 4))
def test_scheduler_batches_exactly_the_running_requests_in_each_decode(reqs, max_running):
    """Whatever the arrivals and lengths: each decode call gets distinct slots in
    ascending order, at most max_running, exactly the requests running at that moment
    (admitted, not complete); every request gets its tokens, one from its prefill and
    one per decode row after it."""
    clk = FakeClock()
    reqs = sorted(reqs)
    calls = []

    def prefill(slot, n):
        clk.t += 0.002
        return 0

    def decode(slots, toks):
        calls.append((clk.t, list(slots)))
        clk.t += 0.001
        return toks

    served = generation.serve(prefill, decode, [a for a, _ in reqs], [4] * len(reqs), [o for _, o in reqs],
                              max_running=max_running, clock=clk, sleep=clk.sleep)
    assert [r.made for r in served.requests] == [o for _, o in reqs]
    assert sum(len(s) for _, s in calls) == sum(o - 1 for _, o in reqs) == sum(served.decode_rows)
    for t, slots in calls:
        assert slots == sorted(set(slots)) and len(slots) <= max_running
        running = sorted(r.slot for r in served.requests if r.first_s <= t < r.done_s)
        assert slots == running


# ------------------------------------------------------------------ suite files
BASE = """
[suite]
name = "s"
[settings]
latency_slo_ms = 15
scenario_duration_s = 2
"""


def suite(extra: str, settings_extra: str = "") -> str:
    return BASE + settings_extra + extra


def test_suite_expands_scenarios_load_points_and_request_rates():
    s = parse_suite(suite("""
[[matrix]]
models = ["mlp:tiny"]
batch_sizes = [8]
scenarios = ["single_stream", "multi_stream", "offline", "server"]
server_qps = [100, 400]
[[matrix]]
models = ["llama:tiny"]
modes = ["generate"]
seq_lens = [16]
output_lens = [8]
request_rates = [1, 2]
arrival = "constant"
"""))
    ids = [c.case_id for c in s.cases]
    assert ids == ["mlp:tiny/infer/bs8/fp32/eager/cpu/single_stream", "mlp:tiny/infer/bs8/fp32/eager/cpu/multi_stream",
                   "mlp:tiny/infer/bs8/fp32/eager/cpu/offline", "mlp:tiny/infer/bs8/fp32/eager/cpu/server@100qps",
                   "mlp:tiny/infer/bs8/fp32/eager/cpu/server@400qps",
                   "llama:tiny/generate/bs1/seq16+gen8/fp32/eager/cpu/constant@1rps",
                   "llama:tiny/generate/bs1/seq16+gen8/fp32/eager/cpu/constant@2rps"]
    assert s.spec.settings.latency_slo_percentile == 99


@pytest.mark.parametrize("extra,settings_extra,needle", [
    ('models = ["mlp:tiny"]\nmodes = ["train"]\nscenarios = ["offline"]', "", "matrix[0].scenarios: LoadGen scenarios serve inference"),
    ('models = ["mlp:tiny"]\nscenarios = ["batch"]', "", "matrix[0].scenarios[0]: 'batch' is not allowed"),
    ('models = ["mlp:tiny"]\nscenarios = ["server"]\nserver_qps = [0]', "", "matrix[0].server_qps[0]: must be a rate above 0"),
    ('models = ["mlp:tiny"]\nserver_qps = [10]', "", "matrix[0].server_qps: applies to the Server scenario"),
    ('models = ["llama:tiny"]\nmodes = ["generate"]\nrequest_rates = [-1]', "", "matrix[0].request_rates[0]"),
    ('models = ["llama:tiny"]\nrequest_rates = [1]', "", "matrix[0].request_rates: applies to generation under load"),
    ('models = ["llama:tiny"]\nmodes = ["generate"]\nrequest_rates = [1]\narrival = "bursty"', "",
     "matrix[0].arrival: 'bursty' is not allowed"),
    ('models = ["mlp:tiny"]\nscenarios = ["server"]\nserver_qps = [10]', "", "server_qps[0]: 10 queries/s for scenario_duration_s = 2 s"),
    ('models = ["mlp:tiny"]\nscenarios = ["server"]', "latency_slo_percentile = 0\n", "settings.latency_slo_percentile"),
    ('models = ["mlp:tiny"]\nscenarios = ["server"]', "latency_slo_percentile = 100.5\n", "settings.latency_slo_percentile"),
    ('models = ["mlp:tiny"]\nscenarios = ["offline"]', "ttft_slo_ms = 0\n", "settings.ttft_slo_ms"),
    ('models = ["mlp:tiny"]\nscenarios = ["offline"]', "repeats = 3\n", "settings.repeats: 3 repeats"),
    ('models = ["mlp:tiny"]\nlatency_slo_ms = 5', "", "matrix[0].latency_slo_ms: applies to serving blocks"),
])
def test_bad_serving_input_is_one_line_naming_the_field(extra, settings_extra, needle):
    with pytest.raises(ConfigError) as e:
        parse_suite(suite("[[matrix]]\n" + extra + "\n", settings_extra), "f.toml")
    msg = str(e.value)
    assert msg.startswith("f.toml: ") and "\n" not in msg and needle in msg, msg


def test_capacity_search_without_an_slo_is_refused():
    text = '[suite]\nname = "s"\n[[matrix]]\nmodels = ["mlp:tiny"]\nscenarios = ["server"]\n'
    with pytest.raises(ConfigError, match=r"matrix\[0\]\.server_qps: left out, the capacity search needs settings.latency_slo_ms"):
        parse_suite(text, "f.toml")


def test_shipped_serving_suites_validate():
    for name in ("serving", "serving-tiny"):
        from hwbench.spec import load_suite

        s = load_suite(name)
        assert any(c.scenario == "server" for c in s.cases) and any(c.arrival == "poisson" for c in s.cases)


# ------------------------------------------------------------------ derived columns and procure
SETTINGS = {"latency_slo_ms": 10.0, "latency_slo_percentile": 99.0, "ttft_slo_ms": 100.0, "tpot_slo_ms": 20.0,
            "noise_threshold": 0.1}


def served_case(case_id: str, scenario: str, points, *, load=None, cap=None, energy_j=None, mode="infer",
                arrival="none"):
    ident = CaseIdentity(model="mlp:tiny", mode=mode, batch_size=8, precision="fp32", backend="eager", device="cpu",
                         scenario=scenario, load=load, arrival=arrival)
    return CaseResult(
        case_id=case_id, case=ident, status="ok", device_name="CPU-X",
        measurement=Measurement(raw_times_s=[[0.001] * 10], first_iter_s=0.001, warmup_s=0.01, measured_s=2.0,
                                serving=Serving(scenario=scenario, points=points, capacity_qps_at_slo=cap)),
        facts=Facts(params=10, flops_per_sample=100.0),
        energy=(Energy(energy_j=energy_j, energy_source="rapl", energy_window_s=2.0) if energy_j else None),
    )


def point(offered, lat_ms, duration=2.0, **kw):
    return LoadPoint(offered_qps=offered, achieved_qps=len(lat_ms) / duration, duration_s=duration,
                     latencies_s=[x / 1e3 for x in lat_ms], **kw)


def write_run(tmp_path, cases):
    rec = RunRecord(run_id="r", created="2026-11-25T00:00:00+00:00", status="complete",
                    suite=SuiteRef(name="s", path="s.toml", hash="abc", resolved={"settings": SETTINGS}),
                    segments=[Segment(index=0, started="x", environment=Environment(hostname="h"))], cases=cases)
    write_atomic(tmp_path / "r.json", rec)
    return tmp_path / "r.json"


def test_columns_from_per_query_latencies(tmp_path):
    ok = [1.0] * 198 + [9.0] * 2  # p99 = sorted[floor(200 x 0.99) = 198] = 9 <= 10
    bad = [1.0] * 190 + [50.0] * 10  # p99 = 50 > 10; 190 requests within the SLO
    f = write_run(tmp_path, [
        served_case("a/server@100qps", "server", [point(100.0, ok)], load=100.0, energy_j=40.0),
        served_case("a/server@200qps", "server", [point(200.0, bad)], load=200.0),
        served_case("a/offline", "offline", [point(None, [100.0] * 50)]),
    ])
    df = load_results(f).set_index("case_id")
    a, b, o = df.loc["a/server@100qps"], df.loc["a/server@200qps"], df.loc["a/offline"]
    assert a.latency_ms_p99 == 9.0 and a.latency_ms_p50 == 1.0 and bool(a.slo_met) and a.scenario == "server"
    assert a.offered_qps == 100.0 and a.achieved_qps == 100.0 and a.goodput_rps == 100.0
    assert b.latency_ms_p99 == 50.0 and not bool(b.slo_met) and b.goodput_rps == 95.0
    assert a.capacity_qps_at_slo == 100.0 and b.capacity_qps_at_slo == 100.0  # the highest passing, lower all pass
    assert a.energy_per_request_j == pytest.approx(40.0 / 200)
    assert o.slo_met is pd_na() and math.isnan(o.goodput_rps)  # Offline: no latency SLO
    assert a.throughput_samples_per_s == 100.0


def test_a_test_loadgen_judged_invalid_is_flagged_with_the_checks_that_failed(tmp_path):
    """LoadGen's own verdict travels with the row: a load point whose summary says
    ``Result is : INVALID`` flags ``loadgen_invalid`` naming the failed checks; a VALID
    one (or a point without LoadGen) carries no flag (known answers)."""
    invalid = {"Result is": "INVALID", "Performance constraints satisfied": "Yes", "Min duration satisfied": "NO",
               "Min queries satisfied": "Yes", "Early stopping satisfied": "NO"}
    f = write_run(tmp_path, [
        served_case("a/server@100qps", "server", [point(100.0, [1.0] * 200, loadgen_summary=invalid,
                                                        loadgen_log="r.loadgen/a")], load=100.0),
        served_case("a/server@50qps", "server", [point(50.0, [1.0] * 200, loadgen_summary={"Result is": "VALID"})],
                    load=50.0),
        served_case("a/offline", "offline", [point(None, [100.0] * 50)]),
    ])
    df = load_results(f).set_index("case_id")
    bad = df.loc["a/server@100qps"]
    assert "loadgen_invalid" in bad.quality_flags
    assert ("loadgen_invalid: LoadGen judged the server test at 100 q/s INVALID (Min duration satisfied; "
            "Early stopping satisfied: no); see r.loadgen/a/mlperf_log_summary.txt") in bad.flag_details
    for cid in ("a/server@50qps", "a/offline"):
        assert "loadgen_invalid" not in df.loc[cid].quality_flags


def pd_na():
    import pandas as pd

    return pd.NA


def test_generation_columns(tmp_path):
    p = point(2.0, [500.0] * 100, duration=50.0, ttft_s=[0.05] * 99 + [0.5], tpot_s=[0.01] * 100,
              itl_max_s=[0.02] * 100, output_tokens=[10] * 100)
    f = write_run(tmp_path, [served_case("g/poisson@2rps", "generate", [p], load=2.0, mode="generate",
                                         arrival="poisson")])
    r = load_results(f).iloc[0]
    assert r.scenario == "generate" and r.arrival == "poisson"
    assert r.ttft_ms_p99 == 500.0 and r.tpot_ms_p99 == 10.0
    assert not bool(r.slo_met)  # TTFT p99 500 ms > 100 ms
    assert r.goodput_rps == pytest.approx(99 / 50.0)  # every request but the slow-TTFT one
    assert r.tokens_per_s == pytest.approx(1000 / 50.0)
    assert r.capacity_qps_at_slo is pd_na() or math.isnan(r.capacity_qps_at_slo)


RENT = """
[[machine]]
match = "CPU-X"
usd_per_hour = 3.6
source = "test rate"
date = 2026-11-01
"""


def test_procure_prices_the_capacity_row_at_the_slo(tmp_path):
    search = served_case("a/server", "server", [point(50.0, [1.0] * 100), point(400.0, [1.0] * 800)], cap=400.0,
                         energy_j=90.0)
    listed = served_case("b/server@100qps", "server", [point(100.0, [1.0] * 200)], load=100.0)
    f = write_run(tmp_path, [search, listed])
    df = load_results(f)
    frame, _ = cost.price_cases(df, parse_prices(tomllib.loads(RENT), "p.toml"))
    frame = frame.set_index("case_id")
    s, b = frame.loc["a/server"], frame.loc["b/server@100qps"]
    # $3.6/h = $0.001/s; at 400 requests/s: 1e6 requests take 2500 s -> $2.5
    assert s.priced_at_slo and s.cost_usd_per_1m_requests_at_slo == pytest.approx(2.5)
    assert s.energy_per_request_j == pytest.approx(90.0 / 900)
    assert b.priced_at_slo and b.cost_usd_per_1m_requests_at_slo == pytest.approx(10.0)  # 100 /s


def test_procure_tokens_at_slo_from_tokens_per_request():
    r = {"capacity_qps_at_slo": 2.0, "offered_qps": 2.0, "mode": "generate", "tokens_per_s": 30.0, "achieved_qps": 1.5}
    out = cost.at_slo(r, 3.6)
    # 20 tokens per request at 2 requests/s = 40 tokens/s; $3.6/h -> 1e6 tokens take 25000 s = $25
    assert out["cost_usd_per_1m_tokens_at_slo"] == pytest.approx(25.0)
    assert cost.at_slo({**r, "offered_qps": 1.0}, 3.6)["priced_at_slo"] is False


# ------------------------------------------------------------------ a real LoadGen test (threads only)
def test_loadgen_server_p99_is_loadgens_own(tmp_path):
    from hwbench.serving import sut

    r = sut.run_test("server", lambda n: time.sleep(0.0003), max_batch=4, max_batch_wait_s=0.0005,
                     outdir=tmp_path / "lg", duration_s=0.5, min_queries=100, target_qps=400.0, slo_ms=15.0)
    lat_ms = [x * 1e3 for x in r.latencies_s]
    assert len(lat_ms) >= 100 and sum(r.batches) == len(lat_ms)
    for q in (50, 90, 99):
        ours, theirs = slo.percentile_lg(lat_ms, q), sut.summary_percentile_ms(r.summary, q)
        assert abs(ours - theirs) <= 0.01 * theirs, (q, ours, theirs)
    assert (tmp_path / "lg" / "mlperf_log_summary.txt").exists() and (tmp_path / "lg" / "mlperf_log_detail.txt").exists()
    assert not (tmp_path / "lg" / "mlperf_log_trace.json").exists()
    assert r.summary["Scenario"] == "Server"


def test_sut_failure_is_raised_with_its_reason(tmp_path):
    from hwbench.serving import sut

    def boom(n):
        raise RuntimeError("kernel exploded")

    with pytest.raises(RuntimeError, match="the SUT failed during the LoadGen test: kernel exploded"):
        sut.run_test("single_stream", boom, max_batch=1, max_batch_wait_s=0, outdir=tmp_path / "lg", duration_s=0.1,
                     min_queries=5)


# ------------------------------------------------------------------ the report's frames
def test_workload_of_strips_the_scenario_and_load():
    from hwbench.analysis.serving import workload_of

    base = "encoder:tiny/infer/bs16/seq32/fp32/eager/cpu"
    for sfx in ("/offline", "/server", "/server@100qps", "/server@2.5e+03qps", "/single_stream", "/multi_stream"):
        assert workload_of(base + sfx) == base
    assert workload_of("llama:tiny/generate/bs8/seq32+gen16/fp32/eager/cpu/poisson@5rps") == \
        "llama:tiny/generate/bs8/seq32+gen16/fp32/eager/cpu"
    assert workload_of(base) == base


def test_capacity_beside_fixed_batch_throughput(tmp_path):
    from hwbench.analysis.serving import capacity_vs_fixed

    fixed = CaseResult(
        case_id="a", case=CaseIdentity(model="mlp:tiny", mode="infer", batch_size=8, precision="fp32",
                                       backend="eager", device="cpu"), status="ok", device_name="CPU-X",
        measurement=Measurement(raw_times_s=[[0.008] * 10], first_iter_s=0.008, warmup_s=0.01, measured_s=0.08),
        facts=Facts(params=10, flops_per_sample=100.0))  # 8 samples / 8 ms = 1000 samples/s
    f = write_run(tmp_path, [
        fixed,
        served_case("a/offline", "offline", [point(None, [1.0] * 1600)]),  # 800 samples/s
        served_case("a/server", "server", [point(25.0, [1.0] * 50), point(250.0, [1.0] * 500)], cap=250.0),
    ])
    g = capacity_vs_fixed(load_results(f)).iloc[0]
    assert g.workload == "a" and g.fixed_batch_samples_per_s == pytest.approx(1000.0)
    assert g.offline_samples_per_s == pytest.approx(800.0) and g.capacity_qps_at_slo == 250.0
    assert g.capacity_over_fixed == pytest.approx(0.25) and g.offline_over_fixed == pytest.approx(0.8)
