"""Two model instances in the LoadGen SUT end to end (full tier: real workers):
``mlp:tiny`` with ``instances = 2`` at one Server load point and Offline. No timing
ratio is asserted (the machine is shared): the cases ran, both instances served,
every sample was counted once in the batch figures, and the p99 of the Server point is
LoadGen's own (its ``mlperf_log_summary.txt``), recomputable from the file."""

import pytest

from conftest import run_suite

BODY = """
[[matrix]]
models = ["mlp:tiny"]
batch_sizes = [8]
scenarios = ["server", "offline"]
server_qps = [400]
"""
SETTINGS = """
instances = 2
scenario_duration_s = 0.5
min_query_count = 100
latency_slo_ms = 50
max_batch_wait_ms = 1
timeout_s = 120
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("instances")
    rows, out = run_suite(tmp, BODY, settings=SETTINGS)
    return tmp, rows, out


def test_two_instances_serve_and_loadgen_agrees(ran):
    from hwbench.serving.slo import percentile_lg
    from hwbench.serving.sut import parse_summary

    tmp, rows, out = ran
    base = "mlp:tiny/infer/bs8/fp32/eager/cpu/inst2"
    assert set(rows) == {base + "/server@400qps", base + "/offline"}
    assert all(r["status"] == "ok" for r in rows.values()), [r["reason"] for r in rows.values()]
    assert all(r["instances"] == 2 for r in rows.values())
    results = next((tmp / "out").glob("*.json"))
    for c in out.record.cases:
        s = c.measurement.serving
        assert c.case.instances == 2 and s.instance_threads is not None and s.instance_threads >= 1
        (p,) = s.points
        assert len(p.instance_batches) == 2 and all(n > 0 for n in p.instance_batches), p.instance_batches
        samples = round(p.achieved_qps * p.duration_s)
        assert samples == len(p.latencies_s)  # Server and Offline: one latency per sample
        assert p.mean_batch == pytest.approx(samples / sum(p.instance_batches))
        assert len(c.measurement.raw_times_s[0]) == sum(p.instance_batches)  # one time per forward pass
        if s.scenario == "server":
            summary = parse_summary((results.parent / p.loadgen_log / "mlperf_log_summary.txt").read_text())
            theirs = int(summary["99.00 percentile latency (ns)"]) / 1e6
            ours = percentile_lg([x * 1e3 for x in p.latencies_s], 99)
            assert abs(ours - theirs) <= 0.01 * theirs, (ours, theirs)
            assert rows[c.case_id]["latency_ms_p99"] == pytest.approx(theirs, rel=0.01)
