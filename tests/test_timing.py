import time

import pytest
import torch

from hwbench import timing
from hwbench.analysis import stats


def test_measure_meets_min_iters_and_min_time():
    calls = []
    m = timing.measure(lambda: calls.append(time.sleep(0.002)), timing.Timer(torch.device("cpu")),
                       warmup_iters=2, warmup_s=0, min_time_s=0.05, min_iters=5, max_iters=10_000, repeats=2)
    assert len(m.raw_times_s) == 2
    for r in m.raw_times_s:
        assert len(r) >= 5 and sum(r) >= 0.05
        assert all(t >= 0.002 for t in r)
    assert m.window_end > m.window_start and m.first_iter_s >= 0.002
    assert len(calls) == 2 + sum(len(r) for r in m.raw_times_s)  # warmup not in raw times


def test_measure_respects_max_iters():
    m = timing.measure(lambda: None, timing.Timer(torch.device("cpu")), warmup_iters=0, warmup_s=0,
                       min_time_s=10, min_iters=1, max_iters=50, repeats=1)
    assert len(m.raw_times_s[0]) == 50


def test_stats_from_raw_times():
    s = stats.latency_stats_ms([[0.001, 0.002, 0.003], [0.004, 0.005]])
    assert s["latency_ms_p50"] == pytest.approx(3.0)
    assert s["latency_ms_mean"] == pytest.approx(3.0)
    assert s["latency_ms_min"] == pytest.approx(1.0)
    assert s["iterations"] == 5
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5
    assert stats.latency_stats_ms([]) == {}


def test_noise_flag_names_the_cause_that_triggered_it():
    assert stats.noise_flag({"latency_iqr_rel": 0.02, "latency_cv": 0.03}, 0.1) is None
    iqr = stats.noise_flag({"latency_iqr_rel": 0.3, "latency_cv": 0.03}, 0.1)
    assert iqr == "IQR/median 30.0% > 10%"
    # an IQR below the threshold is not shown as if it were the cause
    cv = stats.noise_flag({"latency_iqr_rel": 0.014, "latency_cv": 0.269}, 0.1)
    assert cv.startswith("CV 26.9% > 20%") and "IQR" not in cv


def test_warmup_goes_on_while_the_model_compiles_and_late_compiles_are_counted():
    """A fake compile counter: the step "compiles" in its first 5 calls (a backward
    compiled late, recompiles); warmup must run past them. Then one that never stops
    compiling: warmup gives up after max_recompile_steps and the window counts it."""
    calls = [0]

    def step():
        calls[0] += 1

    compiled = lambda: min(calls[0], 5)  # noqa: E731 - one compilation in each of the first 5 steps
    m = timing.measure(step, timing.Timer(torch.device("cpu")), warmup_iters=2, warmup_s=0, min_time_s=0,
                       min_iters=3, max_iters=3, repeats=1, compiles=compiled, max_recompile_steps=20)
    assert calls[0] == 6 + 3 and m.compiles_in_window == 0  # 5 compiling steps + 1 steady, then 3 timed
    calls[0] = 0
    m = timing.measure(step, timing.Timer(torch.device("cpu")), warmup_iters=2, warmup_s=0, min_time_s=0,
                       min_iters=3, max_iters=3, repeats=1, compiles=lambda: calls[0], max_recompile_steps=4)
    assert calls[0] == 2 + 4 + 3 and m.compiles_in_window == 3
    plain = timing.measure(step, timing.Timer(torch.device("cpu")), warmup_iters=2, warmup_s=0, min_time_s=0,
                           min_iters=1, max_iters=1, repeats=1)
    assert plain.compiles_in_window == 0


def test_warm_up_goes_on_while_the_group_wants_more():
    calls = []
    first, _ = timing.warm_up(lambda: calls.append(1) or 0.25, warmup_iters=1, warmup_s=0,
                              agree=lambda more: len(calls) < 4)  # another rank wants 4 iterations
    assert first == 0.25 and len(calls) == 4
    calls.clear()
    timing.warm_up(lambda: calls.append(1) or 0.25, warmup_iters=1, warmup_s=0)  # alone: the first is enough
    assert len(calls) == 1


def test_lockstep_rounds_run_the_steps_the_group_decides():
    rounds = timing.lockstep_rounds(lambda: 0.5, lambda stop: stop, repeats=2, min_iters=3, min_time_s=0, max_iters=10)
    assert rounds == [[0.5] * 3] * 2
    said = iter([False, True, False, False, True])  # rank 0's decisions, before each step
    rounds = timing.lockstep_rounds(lambda: 0.5, lambda stop: next(said), repeats=2, min_iters=0, min_time_s=0,
                                    max_iters=10)
    assert rounds == [[0.5], [0.5, 0.5]]
