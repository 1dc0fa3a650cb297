"""Running suites through hwbench.run_suite with real worker processes: failures stay
inside their case, every finished case is in the file, resume keeps what was measured,
and death is classified."""

import json
import os
import signal
import threading

import pytest

import hwbench
from hwbench import api, launch, planning, runner
from hwbench.errors import ResultsError, UserError
from hwbench.results import read_record
from hwbench.spec import load_suite
from conftest import run_suite, write_suite

BODY = '[[matrix]]\nmodels=["mlp:tiny","encoder:tiny"]\nmodes=["infer"]\nbatch_sizes=[2]\n'


def by_model(rows):
    return {r["model"]: r for r in rows.values()}


@pytest.mark.e2e
def test_ok_cases_have_raw_times_derived_stats_and_timing(tmp_path):
    rows, out = run_suite(tmp_path, BODY)
    assert out.exit_code == 0 and out.record.status == "complete"
    assert read_record(out.path) == out.record
    for c in out.record.cases:
        assert c.status == "ok", c.reason
        assert c.facts.params > 0 and c.facts.flops_per_sample > 0
        assert 0 < c.timing.fixed_cost_s < c.timing.wall_s
        assert c.segment == 0
    for r in rows.values():
        assert r["latency_ms_p50"] > 0 and r["throughput_samples_per_s"] > 0 and r["iterations"] >= 3


@pytest.mark.parametrize(
    "kind,status,reason",
    [
        ("raise", "failed", "RuntimeError: injected failure"),
        ("segfault", "failed", "worker killed by signal SIGSEGV"),
        ("exit", "failed", "worker exited with code 7"),
    ],
)
def test_a_broken_case_is_recorded_the_suite_goes_on_and_exit_is_3(tmp_path, kind, status, reason):
    rows, out = run_suite(tmp_path, BODY, fault=f"mlp:tiny/*={kind}")
    m = by_model(rows)
    assert m["mlp:tiny"]["status"] == status and reason in m["mlp:tiny"]["reason"]
    assert m["encoder:tiny"]["status"] == "ok"
    assert out.record.status == "complete" and out.exit_code == api.EXIT_CASES_FAILED == 3


def test_hang_is_killed_at_the_timeout(tmp_path):
    rows, out = run_suite(tmp_path, BODY, settings="timeout_s = 3", fault="mlp:tiny/*=hang")
    m = by_model(rows)
    assert m["mlp:tiny"]["status"] == "timeout" and "timeout_s = 3" in m["mlp:tiny"]["reason"]
    assert out.record.cases[0].timing.wall_s < 30  # killed at the timeout, not left to the end (any load)
    assert m["encoder:tiny"]["status"] == "ok" and out.exit_code == 3


def test_a_model_larger_than_the_memory_limit_is_oom(tmp_path):
    # mlp:large has 3.5 GB of fp32 weights: torch's own allocator fails under a 2 GiB cap.
    body = '[[matrix]]\nmodels=["mlp:large","encoder:tiny"]\nmodes=["train"]\n'
    rows, _ = run_suite(tmp_path, body, settings="memory_limit_gb = 2")
    m = by_model(rows)
    assert m["mlp:large"]["status"] == "oom", m["mlp:large"]["reason"]
    assert m["encoder:tiny"]["status"] == "ok"


def test_allocating_until_failure_is_oom(tmp_path):
    rows, _ = run_suite(tmp_path, BODY, settings="memory_limit_gb = 1.5", fault="mlp:tiny/*=oom")
    m = by_model(rows)
    assert m["mlp:tiny"]["status"] == "oom", m["mlp:tiny"]["reason"]
    assert m["encoder:tiny"]["status"] == "ok"


def test_death_classification_reads_what_the_kernel_says(tmp_path):
    kill, segv = -signal.SIGKILL, -signal.SIGSEGV
    # the OOM killer: SIGKILL while any oom_kill counter rose (vmstat covers bare metal and cgroup v1)
    assert launch.classify_death(kill, {"vmstat": 3}, {"vmstat": 4}, None)[0] == "oom"
    assert launch.classify_death(kill, {"cgroup1:/x": 0}, {"cgroup1:/x": 1}, None)[0] == "oom"
    assert launch.classify_death(kill, {"vmstat": 3}, {"vmstat": 3}, None) == ("failed", "worker killed by signal SIGKILL")
    # RLIMIT_AS makes native allocation failures die by SIGSEGV: oom, saying so
    status, reason = launch.classify_death(segv, {}, {}, 2.0)
    assert status == "oom" and "memory_limit_gb = 2" in reason and "SIGSEGV" in reason
    assert launch.classify_death(segv, {}, {}, None)[0] == "failed"
    assert launch.classify_death(7, {}, {}, None)[1] == "worker exited with code 7 before reporting a result"
    # counters from a fake /proc and cgroup tree, v1 and v2
    proc, cg = tmp_path / "proc", tmp_path / "cg"
    (proc / "42").mkdir(parents=True)
    (proc / "vmstat").write_text("nr_free_pages 5\noom_kill 9\n")
    (proc / "42" / "cgroup").write_text("0::/user.slice/job\n5:memory:/slurm/job1\n")
    (cg / "user.slice" / "job").mkdir(parents=True)
    (cg / "user.slice" / "job" / "memory.events").write_text("low 0\noom 1\noom_kill 2\n")
    (cg / "memory" / "slurm" / "job1").mkdir(parents=True)
    (cg / "memory" / "slurm" / "job1" / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 4\n")
    assert launch.oom_counters(42, proc, cg) == {"vmstat": 9, "cgroup2:/user.slice/job": 2, "cgroup1:/slurm/job1": 4}


def test_unparseable_fault_injection_is_an_error(tmp_path):
    with pytest.raises(UserError, match="HWBENCH_INJECT_FAULT: expected"):
        run_suite(tmp_path, BODY, fault="mlp:tiny/*=explode")
    with pytest.raises(UserError, match="HWBENCH_INJECT_FAULT"):
        run_suite(tmp_path, BODY, fault="no-equals-sign")


def test_unsupported_cases_are_skipped_with_reason(tmp_path):
    body = '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer","train"]\nprecisions=["int8","tf32"]\ndevices=["cpu","cuda:7"]\n'
    s = load_suite(write_suite(tmp_path, body))
    reasons = {p.case.case_id: p.skip_reason for p in planning.plan(s)}
    assert reasons["mlp:tiny/infer/bs1/int8/eager/cpu"] is None
    assert "inference-only" in reasons["mlp:tiny/train/bs1/int8/eager/cpu"]
    assert "tf32 needs a CUDA GPU" in reasons["mlp:tiny/infer/bs1/tf32/eager/cpu"]
    assert "device cuda:7" in reasons["mlp:tiny/infer/bs1/int8/eager/cuda:7"]


def test_a_suite_of_which_nothing_can_run_is_a_user_error_with_grouped_reasons(tmp_path):
    body = '[[matrix]]\nmodels=["mlp:tiny","encoder:tiny"]\nbatch_sizes=[1,2,4,8]\nprecisions=["tf32"]\n'
    with pytest.raises(UserError) as e:
        run_suite(tmp_path, body)
    msg = str(e.value)
    assert "nothing can run on this machine" in msg and "(8 cases, e.g. mlp:tiny/infer/bs1/tf32/eager/cpu)" in msg
    assert msg.count("tf32 needs") == 1 and "\n" not in msg


def test_filters(tmp_path):
    s = load_suite(write_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny","encoder:tiny"]\nmodes=["infer","train"]\n'))
    ids = lambda f: [p.case.case_id for p in planning.plan(s, f)]  # noqa: E731
    assert ids(["encoder"]) == ["encoder:tiny/infer/bs1/seq32/fp32/eager/cpu", "encoder:tiny/train/bs1/seq32/fp32/eager/cpu"]
    assert ids(["family=mlp,mode=train"]) == ["mlp:tiny/train/bs1/fp32/eager/cpu"]
    assert len(ids(["mode=infer", "mode=train"])) == 4
    with pytest.raises(UserError, match="unknown field 'colour'"):
        ids(["colour=red"])
    with pytest.raises(UserError, match="matched none"):
        ids(["nothing-like-this"])


# ------------------------------------------------------------------------------ resume
@pytest.mark.e2e
def test_resume_keeps_finished_reruns_failed_in_a_new_segment(tmp_path):
    _, first = run_suite(tmp_path, BODY, fault="mlp:tiny/*=raise")
    assert {c.case.model: c.status for c in first.record.cases} == {"mlp:tiny": "failed", "encoder:tiny": "ok"}
    kept = next(c for c in first.record.cases if c.status == "ok")
    out = hwbench.run_suite(tmp_path / "suite.toml", resume=first.path)
    assert out.exit_code == 0 and out.path == first.path
    rec = read_record(first.path)
    by = {c.case.model: c for c in rec.cases}
    assert by["mlp:tiny"].status == "ok" and by["mlp:tiny"].segment == 1 and len(rec.cases) == 2
    assert by["encoder:tiny"] == kept  # untouched, still says segment 0 measured it
    assert len(rec.segments) == 2 and rec.segments[1].environment.hostname == rec.segments[0].environment.hostname
    assert rec.status == "complete"


def test_resume_of_a_complete_file_says_so_and_does_nothing(tmp_path):
    _, first = run_suite(tmp_path, BODY)
    before = first.path.read_bytes()
    out = hwbench.run_suite(tmp_path / "suite.toml", resume=first.path)
    assert out.exit_code == 0 and "complete" in out.message and "nothing to resume" in out.message
    assert first.path.read_bytes() == before


def test_resume_refuses_other_suites_machines_and_software(tmp_path):
    _, first = run_suite(tmp_path, BODY, fault="mlp:tiny/*=raise")
    s = load_suite(tmp_path / "suite.toml")
    rec = read_record(first.path)
    env = rec.environment.model_dump()
    s2 = load_suite(write_suite(tmp_path, BODY.replace("[2]", "[3]"), name="other.toml"))
    with pytest.raises(ResultsError, match="suite .* changed"):
        api.check_resume(rec, first.path, s2, env, False)
    with pytest.raises(ResultsError, match="another machine"):
        api.check_resume(rec, first.path, s, {**env, "hostname": "elsewhere"}, False)
    with pytest.raises(ResultsError, match="software changed .*torch_version: .* -> 9.9.*--allow-env-change"):
        api.check_resume(rec, first.path, s, {**env, "torch_version": "9.9"}, False)
    assert api.check_resume(rec, first.path, s, {**env, "torch_version": "9.9"}, True) == [
        f"torch_version: {env['torch_version']} -> 9.9"]
    other = tmp_path / "compile.toml"
    other.write_text((tmp_path / "suite.toml").read_text().replace('name = "t"', 'name = "compile"'))
    with pytest.raises(ResultsError, match="results file of suite 't', not 'compile'"):
        api.check_resume(rec, first.path, load_suite(other), env, False)


def test_the_suite_hash_covers_what_the_user_wrote_not_defaults(tmp_path):
    s = load_suite(write_suite(tmp_path, BODY))
    resolved = s.spec.model_dump(mode="json")
    assert "noise_threshold" in resolved["settings"]  # defaults are in the resolved copy...
    assert "noise_threshold" not in json.dumps(s.raw)  # ...but not in what the hash covers
    same = load_suite(write_suite(tmp_path, BODY + "\n# comment\n", name="b.toml"))
    assert same.suite_hash == s.suite_hash


def test_resume_with_filter_never_deletes_or_completes_what_it_did_not_run(tmp_path):
    body = '[[matrix]]\nmodels=["mlp:tiny","encoder:tiny"]\nmodes=["infer","train"]\nbatch_sizes=[2]\n'
    _, first = run_suite(tmp_path, body, fault="*=raise")
    assert [c.status for c in first.record.cases] == ["failed"] * 4
    out = hwbench.run_suite(tmp_path / "suite.toml", resume=first.path, filters=["family=mlp"])
    rec = read_record(first.path)
    st = {c.case_id: c.status for c in rec.cases}
    assert len(st) == 4  # the encoder's failed results are still there
    assert [v for k, v in st.items() if k.startswith("mlp")] == ["ok", "ok"]
    assert [v for k, v in st.items() if k.startswith("encoder")] == ["failed", "failed"]
    assert rec.status == "partial" and out.exit_code == 3
    assert rec.segments[1].filters == ["family=mlp"]
    # the rest, later
    hwbench.run_suite(tmp_path / "suite.toml", resume=first.path)
    rec = read_record(first.path)
    assert rec.status == "complete" and all(c.status == "ok" for c in rec.cases) and len(rec.segments) == 3


def test_dry_run_resume_plans_the_remaining_cases(tmp_path):
    _, first = run_suite(tmp_path, BODY, fault="mlp:tiny/*=raise")
    p = api.plan_run(tmp_path / "suite.toml", resume=first.path)
    assert [x.case.model for x in p.todo] == ["mlp:tiny"] and len(p.planned) == 2


def test_resume_through_a_symlink_writes_the_target(tmp_path):
    _, first = run_suite(tmp_path, BODY, fault="mlp:tiny/*=raise")
    link = tmp_path / "latest.json"
    link.symlink_to(first.path)
    out = hwbench.run_suite(tmp_path / "suite.toml", resume=link)
    assert link.is_symlink() and out.path == first.path.resolve()
    assert read_record(first.path).status == "complete"


def test_two_resumes_of_one_file_at_once_the_second_is_refused(tmp_path):
    _, first = run_suite(tmp_path, BODY, fault="*=raise")
    started = threading.Event()
    release = threading.Event()
    errors = []

    def hold(path):
        started.set()
        release.wait(30)

    t = threading.Thread(target=lambda: hwbench.run_suite(tmp_path / "suite.toml", resume=first.path, on_start=hold))
    t.start()
    assert started.wait(60)
    try:
        with pytest.raises(ResultsError, match="another hwbench run .* is writing this results file"):
            hwbench.run_suite(tmp_path / "suite.toml", resume=first.path)
    finally:
        release.set()
        t.join(120)
    assert read_record(first.path).status == "complete"


def test_two_runs_started_in_the_same_second_write_two_files(tmp_path):
    s = load_suite(write_suite(tmp_path, BODY))
    a = runner.default_out_path(s, tmp_path, "host", "aaaaaaaa1111")
    b = runner.default_out_path(s, tmp_path, "host", "bbbbbbbb2222")
    assert a != b and a.parent == b.parent == tmp_path


def test_cuda_workers_never_get_an_address_space_cap_and_cpu_workers_do():
    import subprocess
    import sys

    code = ("import resource, sys\nfrom hwbench import worker\n"
            "worker.cap_memory(2 * 2**30, sys.argv[1])\n"
            "print(resource.getrlimit(resource.RLIMIT_AS)[0], worker._memory_capped)")
    got = {}
    for dev in ("cuda:0", "cpu"):
        r = subprocess.run([sys.executable, "-c", code, dev], capture_output=True, text=True, timeout=120)
        got[dev] = r.stdout.split()
    assert got["cuda:0"] == [str(resource_infinity()), "False"]  # the CUDA runtime fails under RLIMIT_AS
    assert got["cpu"] == [str(2 * 2**30), "True"]


def resource_infinity():
    import resource

    return resource.RLIM_INFINITY


def test_host_rss_peak_units(monkeypatch):
    import resource
    import types

    from hwbench import worker

    monkeypatch.setattr(resource, "getrusage", lambda who: types.SimpleNamespace(ru_maxrss=1000))
    monkeypatch.setattr(worker.sys, "platform", "linux")
    assert worker.rss_peak_bytes() == 1000 * 1024  # KiB on Linux
    monkeypatch.setattr(worker.sys, "platform", "darwin")
    assert worker.rss_peak_bytes() == 1000  # bytes on macOS


def test_an_unexpected_error_keeps_finished_cases_and_marks_the_run_interrupted(tmp_path, monkeypatch):
    real = runner.Runner._run_one
    calls = []

    def flaky(self, p, probe=False):
        calls.append(p.case.case_id)
        if len(calls) == 2:
            raise RuntimeError("a bug in the runner")
        return real(self, p, probe)

    monkeypatch.setattr(runner.Runner, "_run_one", flaky)
    with pytest.raises(RuntimeError, match="a bug in the runner"):
        run_suite(tmp_path, BODY)
    (f,) = (tmp_path / "out").glob("*.json")
    rec = read_record(f)
    assert rec.status == "interrupted" and [c.status for c in rec.cases] == ["ok"]


def test_process_isolated_repeats_keep_the_largest_memory_peak_and_every_routed_token():
    from hwbench.records import Facts
    from hwbench.merge import merge_facts

    a = Facts(params=1, flops_per_sample=1.0, memory_peak_bytes=100, host_rss_peak_bytes=5000,
              router_tokens_per_expert=[[1, 2], [3, 4]])
    b = Facts(params=1, flops_per_sample=1.0, memory_peak_bytes=300, host_rss_peak_bytes=4000,
              router_tokens_per_expert=[[10, 20], [30, 40]])
    m = merge_facts([a, b])
    assert m.memory_peak_bytes == 300 and m.host_rss_peak_bytes == 5000
    assert m.router_tokens_per_expert == [[11, 22], [33, 44]]
    assert merge_facts([a, b.model_copy(update={"memory_peak_bytes": None})]).memory_peak_bytes is None
    assert merge_facts([a]) == a
