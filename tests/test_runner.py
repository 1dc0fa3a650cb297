"""The runner with real worker processes: failures stay inside their case, the suite
goes on, and every finished case is in the file."""

import json
import os

import pytest

from hwbench import env, runner
from hwbench.errors import ResultsError, UserError
from hwbench.results import read_record
from hwbench.spec import load_suite
from conftest import write_suite

BODY = '[[matrix]]\nmodels=["mlp:tiny","encoder:tiny"]\nmodes=["infer"]\nbatch_sizes=[2]\n'


def run(tmp_path, body=BODY, settings="", filters=(), fault=None, kind="raise"):
    s = load_suite(write_suite(tmp_path, body, settings=settings))
    if fault:
        os.environ["HWBENCH_INJECT_FAULT"] = f"{fault}/*={kind}"
    try:
        r = runner.Runner(s, tmp_path / "out.json")
        rec = r.run(runner.plan(s, filters), r.new_record(env.fingerprint()))
    finally:
        os.environ.pop("HWBENCH_INJECT_FAULT", None)
    assert read_record(tmp_path / "out.json")["cases"] == json.loads(json.dumps(rec["cases"]))
    return {c["case"]["model"]: c for c in rec["cases"]}, rec


def test_ok_cases_have_stats_raw_times_and_timing(tmp_path):
    cases, rec = run(tmp_path)
    assert rec["status"] == "complete"
    for c in cases.values():
        assert c["status"] == "ok", c["reason"]
        m = c["metrics"]
        assert m["latency_ms_p50"] > 0 and m["throughput_samples_per_s"] > 0
        assert m["iterations"] == sum(len(r) for r in c["raw_times_ms"]) >= 3
        assert m["params"] > 0 and m["flops_per_sample"] > 0
        assert 0 < c["timing"]["fixed_cost_s"] < c["timing"]["wall_s"]


@pytest.mark.parametrize(
    "kind,status,reason",
    [
        ("raise", "failed", "RuntimeError: injected failure"),
        ("segfault", "failed", "worker killed by signal SIGSEGV"),
        ("exit", "failed", "worker exited with code 7"),
    ],
)
def test_a_broken_case_is_recorded_and_the_suite_goes_on(tmp_path, kind, status, reason):
    cases, rec = run(tmp_path, fault="mlp:tiny", kind=kind)
    assert cases["mlp:tiny"]["status"] == status
    assert reason in cases["mlp:tiny"]["reason"]
    assert cases["encoder:tiny"]["status"] == "ok"
    assert rec["status"] == "complete"


def test_hang_is_killed_at_the_timeout(tmp_path):
    cases, _ = run(tmp_path, settings="timeout_s = 3", fault="mlp:tiny", kind="hang")
    assert cases["mlp:tiny"]["status"] == "timeout"
    assert "timeout_s = 3" in cases["mlp:tiny"]["reason"]
    assert cases["mlp:tiny"]["timing"]["wall_s"] < 10
    assert cases["encoder:tiny"]["status"] == "ok"


def test_a_model_larger_than_the_memory_limit_is_oom(tmp_path):
    # mlp:large has 3.5 GB of fp32 weights: torch's own allocator fails under a 2 GiB cap.
    body = '[[matrix]]\nmodels=["mlp:large","encoder:tiny"]\nmodes=["train"]\n'
    cases, _ = run(tmp_path, body=body, settings="memory_limit_gb = 2")
    assert cases["mlp:large"]["status"] == "oom", cases["mlp:large"]["reason"]
    assert "allocate" in cases["mlp:large"]["reason"]
    assert cases["encoder:tiny"]["status"] == "ok"


def test_allocating_until_failure_is_oom(tmp_path):
    cases, _ = run(tmp_path, settings="memory_limit_gb = 1.5", fault="mlp:tiny", kind="oom")
    assert cases["mlp:tiny"]["status"] == "oom", cases["mlp:tiny"]["reason"]
    assert cases["encoder:tiny"]["status"] == "ok"


def test_unsupported_cases_are_skipped_with_reason(tmp_path):
    body = '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer","train"]\nprecisions=["int8","tf32"]\ndevices=["cpu","cuda:7"]\n'
    s = load_suite(write_suite(tmp_path, body))
    reasons = {p.case.case_id: p.skip_reason for p in runner.plan(s)}
    assert reasons["mlp:tiny/infer/bs1/int8/eager/cpu"] is None
    assert "inference-only" in reasons["mlp:tiny/train/bs1/int8/eager/cpu"]
    assert "tf32 needs a CUDA GPU" in reasons["mlp:tiny/infer/bs1/tf32/eager/cpu"]
    assert "device cuda:7" in reasons["mlp:tiny/infer/bs1/int8/eager/cuda:7"]


def test_filters(tmp_path):
    s = load_suite(write_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny","encoder:tiny"]\nmodes=["infer","train"]\n'))
    ids = lambda f: [p.case.case_id for p in runner.plan(s, f)]  # noqa: E731
    assert ids(["encoder"]) == ["encoder:tiny/infer/bs1/seq32/fp32/eager/cpu", "encoder:tiny/train/bs1/seq32/fp32/eager/cpu"]
    assert ids(["family=mlp,mode=train"]) == ["mlp:tiny/train/bs1/fp32/eager/cpu"]
    assert len(ids(["mode=infer", "mode=train"])) == 4
    with pytest.raises(UserError, match="unknown field 'colour'"):
        ids(["colour=red"])
    with pytest.raises(UserError, match="matched none"):
        ids(["nothing-like-this"])


def test_resume_keeps_finished_reruns_failed_and_refuses_other_suites(tmp_path):
    cases, rec = run(tmp_path, fault="mlp:tiny")
    assert cases["mlp:tiny"]["status"] == "failed"
    path = tmp_path / "out.json"
    s = load_suite(tmp_path / "suite.toml")
    environment = env.fingerprint()
    resumed = runner.open_resume(path, s, environment)
    assert [c["case"]["model"] for c in resumed["cases"]] == ["encoder:tiny"]
    kept = resumed["cases"][0]
    r = runner.Runner(s, path)
    rec2 = r.run(runner.plan(s), resumed)
    by = {c["case"]["model"]: c for c in rec2["cases"]}
    assert by["mlp:tiny"]["status"] == "ok" and by["encoder:tiny"] == kept and len(rec2["cases"]) == 2
    # another suite content, another machine: refused
    s2 = load_suite(write_suite(tmp_path, BODY.replace("[2]", "[3]"), name="other.toml"))
    with pytest.raises(ResultsError, match="suite .* changed"):
        runner.open_resume(path, s2, environment)
    with pytest.raises(ResultsError, match="another machine"):
        runner.open_resume(path, s, {**environment, "hostname": "elsewhere"})
